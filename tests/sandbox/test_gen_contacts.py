from __future__ import annotations

import base64
import json
import random
import re
import struct
import time
import zlib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.contact_folder import ContactFolder

from migrator.sandbox.gen_contacts import (
    ContactFolderData,
    build_contacts,
    make_contact,
    tiny_png,
)
from migrator.sandbox.names import DOMAIN, guid
from tests.sandbox.graph_models import assert_parses

USERS = [
    {"id": guid(random.Random(n)), "displayName": name, "givenName": name.split()[0], "surname": name.split(" ", 1)[1],
     "userPrincipalName": f"{name.split()[0].lower()}@{DOMAIN}", "mail": f"{name.split()[0].lower()}@{DOMAIN}",
     "department": "Financiën", "jobTitle": "Controller", "businessPhones": ["+31 70 123 4567"], "officeLocation": "Utrecht"}
    for n, name in enumerate(("Anna de Vries", "Bram Jansen", "Chloë Bakker", "Daan van Dijk", "Eva Smit"))
]
ID = re.compile(r"^[A-Za-z0-9_-]+=*$")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.fixture(scope="module")
def folders() -> list[ContactFolderData]:
    return build_contacts(random.Random("contacts"), USERS[0], USERS[1:])


def all_contacts(folders: list[ContactFolderData]) -> list[dict]:
    return [c for f in folders for c in f.contacts]


def test_everything_parses_with_the_sdk_models(folders):
    for folder in folders:
        assert_parses(ContactFolder, folder.folder)
        for contact in folder.contacts:
            assert_parses(Contact, contact)


def test_folders(folders):
    default, sub = folders
    assert default.folder["displayName"] == "Contactpersonen"
    assert sub.folder["parentFolderId"] == default.folder["id"]
    assert default.folder["parentFolderId"] not in (default.folder["id"], sub.folder["id"])
    assert 20 <= len(all_contacts(folders)) <= 30
    for folder in folders:
        assert all(c["parentFolderId"] == folder.folder["id"] for c in folder.contacts)


def test_ids_look_like_exchange_ids(folders):
    contacts = all_contacts(folders)
    ids = [c["id"] for c in contacts]
    assert len(set(ids)) == len(ids)
    for contact_id in ids:
        assert ID.match(contact_id) and contact_id.startswith("AAMkA") and len(contact_id) == 152
        base64.urlsafe_b64decode(contact_id)
    assert len({i[:40] for i in ids}) == 1  # ids of one mailbox share a long prefix
    for contact in contacts:
        assert contact["@odata.etag"] == f'W/"{contact["changeKey"]}"'
        assert contact["changeKey"].startswith("EQAAABYAAA") and len(base64.b64decode(contact["changeKey"])) == 30
        assert contact["createdDateTime"] <= contact["lastModifiedDateTime"]


def test_every_property_is_present_as_exchange_sends_it(folders):
    keys = {frozenset(c) for c in all_contacts(folders)}
    assert len(keys) == 1
    for contact in all_contacts(folders):
        for name in ("homeAddress", "businessAddress", "otherAddress"):
            assert isinstance(contact[name], dict)
        for name in ("emailAddresses", "businessPhones", "homePhones", "imAddresses", "categories", "children"):
            assert isinstance(contact[name], list)


def test_content_covers_the_awkward_cases(folders):
    contacts = all_contacts(folders)
    assert any(c["middleName"] in ("van", "de", "van der", "van den", "ter", "te", "den") for c in contacts)
    counts = {len(c["emailAddresses"]) for c in contacts}
    assert {0, 1, 2} <= counts and max(counts) <= 3
    assert any(c["givenName"] is None and "@" in c["displayName"] for c in contacts)  # address only
    assert any(c["givenName"] is None and c["companyName"] == c["displayName"] for c in contacts)  # firm only
    countries = {a.get("countryOrRegion") for c in contacts for a in (c["businessAddress"], c["homeAddress"], c["otherAddress"])}
    assert {"Nederland", "Deutschland"} <= countries
    nl = [a for c in contacts for a in (c["businessAddress"], c["homeAddress"]) if a.get("countryOrRegion") == "Nederland"]
    assert all(re.fullmatch(r"\d{4} [A-Z]{2}", a["postalCode"]) for a in nl)
    assert any(c["birthday"] for c in contacts) and any(c["birthday"] is None for c in contacts)
    assert any(c["personalNotes"] for c in contacts) and any(c["categories"] for c in contacts)
    assert any(c["mobilePhone"] for c in contacts) and any(c["businessPhones"] for c in contacts)
    assert any(c["title"] for c in contacts) and any(c["jobTitle"] for c in contacts)
    assert any(not c["fileAs"] for c in contacts) and any("," in c["fileAs"] for c in contacts)
    colleague_mail = {u["mail"] for u in USERS[1:]}
    assert any(e["address"] in colleague_mail for c in contacts for e in c["emailAddresses"])


def test_a_duplicate_person_is_present(folders):
    seen: dict[tuple, str] = {}
    duplicates = 0
    for contact in all_contacts(folders):
        key = (contact["displayName"], tuple(e["address"] for e in contact["emailAddresses"]))
        if key in seen and contact["givenName"]:
            duplicates += 1
        seen[key] = contact["id"]
    assert duplicates >= 1


def test_birthdays_name_the_same_date_in_amsterdam(folders):
    """Whatever time of day Exchange stored, the date in Dutch local time is a plain calendar date."""
    for contact in all_contacts(folders):
        if contact["birthday"]:
            moment = datetime.fromisoformat(contact["birthday"])
            assert moment.astimezone(AMSTERDAM).hour in (0, 1, 2, 12, 13), contact["birthday"]


def _decode_png(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = body
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    return width, height, zlib.decompress(chunks[b"IDAT"])


def test_photos_are_valid_pngs(folders):
    photos = {cid: data for f in folders for cid, data in f.photos.items()}
    assert 3 <= len(photos) < len(all_contacts(folders))
    ids = {c["id"] for c in all_contacts(folders)}
    for contact_id, data in photos.items():
        assert contact_id in ids
        width, height, pixels = _decode_png(data)
        assert len(pixels) == height * (1 + 3 * width) and len(data) < 4096


def test_tiny_png_is_deterministic():
    assert tiny_png(random.Random(1)) == tiny_png(random.Random(1)) != tiny_png(random.Random(2))


def test_deterministic_and_fast():
    started = time.perf_counter()
    first = build_contacts(random.Random(9), USERS[1], USERS)
    assert time.perf_counter() - started < 0.2
    second = build_contacts(random.Random(9), USERS[1], USERS)
    other = build_contacts(random.Random(10), USERS[1], USERS)

    def dump(folders):
        return json.dumps([[f.folder, f.contacts, sorted(f.photos)] for f in folders], sort_keys=True)

    assert dump(first) == dump(second) != dump(other)


def test_works_without_colleagues():
    folders = build_contacts(random.Random(3), USERS[0], [])
    assert len(all_contacts(folders)) >= 18


def test_make_contact(folders):
    sub = folders[1]
    contact = make_contact(random.Random(4), sub.folder["id"])
    assert_parses(Contact, contact)
    assert contact["parentFolderId"] == sub.folder["id"]
    assert contact["id"][:40] == sub.contacts[0]["id"][:40]  # same mailbox
    assert contact["createdDateTime"] > max(c["lastModifiedDateTime"] for c in all_contacts(folders))
    assert contact["id"] not in {c["id"] for c in all_contacts(folders)}
    assert make_contact(random.Random(4), sub.folder["id"]) == contact
    foreign = make_contact(random.Random(5), "folder-made-up-by-a-server")
    assert foreign["parentFolderId"] == "folder-made-up-by-a-server" and len(foreign["id"]) == 152
