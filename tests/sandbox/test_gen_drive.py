from __future__ import annotations

import json
import random
import re
import time
import unicodedata
from urllib.parse import unquote

import pytest
from msgraph.generated.models.drive import Drive
from msgraph.generated.models.drive_item import DriveItem
from msgraph.generated.models.permission import Permission
from msgraph.generated.models.site import Site

from migrator.sandbox import gen_drive
from migrator.sandbox.gen_drive import (
    DriveData,
    build_library,
    build_onedrive,
    graph_path,
    make_file,
)
from migrator.sandbox.names import DOMAIN, guid, local_part, person
from migrator.sandbox.quickxor import quick_xor_hash
from tests.sandbox.graph_models import assert_parses

ITEM_ID = re.compile(r"^01[A-Z2-7]{32}$")
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def make_users(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    users = []
    for index in range(count):
        given, family = person(rng)
        upn = f"{local_part(given, family)}{index}@{DOMAIN}"
        users.append({"id": guid(rng), "displayName": f"{given} {family}", "userPrincipalName": upn, "mail": upn})
    return users


USERS = make_users(1, 8)


def onedrive(seed: object = "drive", large: int = 0) -> DriveData:
    return build_onedrive(random.Random(seed), USERS[0], USERS[1:], large_file_size=large)


@pytest.fixture(scope="module")
def drive() -> DriveData:
    return onedrive()


@pytest.fixture(scope="module")
def library() -> tuple[dict, DriveData]:
    return build_library(random.Random("lib"), "Financiën", USERS[:5])


def files(data: DriveData) -> list[dict]:
    return [item for item in data.items.values() if "file" in item]


def by_name(data: DriveData, name: str) -> dict:
    found = [item for item in data.items.values() if item["name"] == name]
    assert len(found) == 1, name
    return found[0]


# --- Graph shape --------------------------------------------------------------------------------


def test_everything_parses_with_the_sdk_models(drive, library):
    site, lib = library
    assert_parses(Site, site)
    distinct: dict[str, dict] = {}  # inherited copies repeat; parsing each shape once keeps this quick
    for data in (drive, lib):
        assert_parses(Drive, data.drive)
        for item_id in data.items:
            assert_parses(DriveItem, data.item_json(item_id))
            for permission in data.permissions[item_id]:
                distinct[json.dumps(permission, sort_keys=True)] = permission
    for permission in distinct.values():
        assert_parses(Permission, permission)


def test_drive_and_site_ids_look_like_graphs(drive, library):
    site, lib = library
    for data in (drive, lib):
        assert re.fullmatch(r"b![A-Za-z0-9_-]{64}", data.drive["id"])
        assert all(ITEM_ID.match(item_id) for item_id in data.items)
        assert len({item_id[:8] for item_id in data.items}) == 1  # one prefix per drive, as observed
    assert drive.drive["driveType"] == "business" and drive.drive["name"] == "OneDrive"
    assert lib.drive["driveType"] == "documentLibrary" and lib.drive["name"] == "Documenten"
    assert re.fullmatch(rf"[a-z.-]+,{GUID},{GUID}", site["id"])
    assert site["displayName"] == "Financiën" and site["webUrl"].endswith("/sites/Financien")
    assert lib.drive["webUrl"].startswith(site["webUrl"])
    quota = drive.drive["quota"]
    assert quota["used"] == drive.items[drive.root_id]["size"]
    assert quota["used"] + quota["remaining"] + quota["deleted"] == quota["total"]


def test_root_item(drive):
    root = drive.items[drive.root_id]
    assert root["root"] == {} and root["name"] == "root"
    assert root["parentReference"] == {"driveType": "business", "driveId": drive.drive["id"], "siteId": drive.layout.site_id}
    assert root["webUrl"] == drive.drive["webUrl"]


# --- Tree invariants ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["onedrive", "library"])
def test_tree_is_consistent(which, drive, library):
    data = drive if which == "onedrive" else library[1]
    for item_id, item in data.items.items():
        if item_id == data.root_id:
            continue
        ref = item["parentReference"]
        parent = data.items[ref["id"]]
        assert "folder" in parent
        assert ref["driveId"] == data.drive["id"] and ref["driveType"] == data.drive["driveType"]
        parent_path = data.path_of(parent["id"])
        assert ref["path"] == graph_path(parent_path.split("/") if parent_path else [])
        assert unquote(ref["path"]) == "/drive/root:" + (f"/{parent_path}" if parent_path else "")
        assert data.path_of(item_id) == (f"{parent_path}/{item['name']}" if parent_path else item["name"])
        assert item["id"] in {child["id"] for child in data.children(parent["id"])}
    for item_id, item in data.items.items():
        if "folder" in item:
            kids = data.children(item_id)
            assert item["folder"]["childCount"] == len(kids)
            assert item["size"] == sum(kid["size"] for kid in kids)
        else:
            assert item["size"] == data.contents[item_id].size
            assert item_id not in data._children
    assert set(data.permissions) == set(data.items)


def test_tree_is_deep_and_has_empty_folders(drive):
    depths = [drive.path_of(i).count("/") + 1 for i, item in drive.items.items() if "folder" in item and i != drive.root_id]
    assert max(depths) >= 5
    empty = [item for item in drive.items.values() if item.get("folder") == {"childCount": 0}]
    assert len(empty) >= 2


def test_file_mix(drive):
    sizes = [item["size"] for item in files(drive)]
    assert 30 <= len(sizes) <= 50
    assert all(0 < size <= 200_000 for size in sizes)
    assert sum(size < 10_000 for size in sizes) >= 10
    mimes = {item["file"]["mimeType"] for item in files(drive)}
    assert {"text/plain", "application/pdf", "image/jpeg"} <= mimes
    assert any(m.startswith("application/vnd.openxmlformats") for m in mimes)


def test_awkward_names_are_present(drive):
    names = [item["name"] for item in drive.items.values()]
    nfc = "Overzicht begroting – concept ü.docx"
    assert nfc in names and unicodedata.is_normalized("NFC", nfc)
    nfd = [n for n in names if not unicodedata.is_normalized("NFC", n)]
    assert len(nfd) == 1 and unicodedata.is_normalized("NFD", nfd[0])
    assert "日本語メモ.txt" in names
    assert any(any(ord(ch) > 0xFFFF for ch in n) for n in names)  # emoji outside the BMP
    for name in (".htaccess", "desktop.ini", "download.part", "rapport\\2026.txt", "Versie 2.", "Archief ", "100% klaar #1.txt"):
        assert name in names, name
    assert any(n.endswith(" ") for n in names) and any(n.endswith(".") for n in names)
    long = [n for n in names if len(n) > 250]
    assert len(long) == 1 and len(long[0].encode()) > 255
    assert len(drive.path_of(by_name(drive, long[0])["id"])) < 400


def test_case_twins_share_a_folder(drive):
    twins = [item for item in drive.items.values() if item["name"].casefold() == "rapport.docx"]
    assert len(twins) == 2 and twins[0]["name"] != twins[1]["name"]
    assert twins[0]["parentReference"]["id"] == twins[1]["parentReference"]["id"]


def test_item_by_path(drive):
    twin = drive.items[drive.item_by_path("Documenten/Projecten").get("id")]
    assert twin["name"] == "Projecten"
    year = drive.children(twin["id"])[0]["name"]
    assert drive.item_by_path(f"/Documenten/Projecten/{year}/rapport.docx")["name"] == "rapport.docx"
    assert drive.item_by_path(f"Documenten/Projecten/{year}/RAPPORT.DOCX")["name"].casefold() == "rapport.docx"
    assert drive.item_by_path("/")["id"] == drive.root_id
    assert drive.item_by_path("Documenten/nope") is None


def test_file_timestamps_look_uploaded(drive):
    for item in files(drive):
        fs = item["fileSystemInfo"]
        assert fs["lastModifiedDateTime"] != item["lastModifiedDateTime"]
        assert fs["createdDateTime"] <= fs["lastModifiedDateTime"] < item["createdDateTime"] <= item["lastModifiedDateTime"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", item["createdDateTime"])
        assert re.fullmatch(r'"\{[0-9A-F-]{36}\},\d+"', item["eTag"]) and item["cTag"].startswith('"c:{')


def test_authors_are_identity_sets(drive):
    for item in files(drive):
        for key in ("createdBy", "lastModifiedBy"):
            assert set(item[key]["user"]) == {"id", "displayName"}
    authors = {item["createdBy"]["user"]["id"] for item in files(drive)}
    assert USERS[0]["id"] in authors and len(authors) > 1  # colleagues wrote in the shared folder


# --- Sharing ------------------------------------------------------------------------------------


def test_owner_is_listed_on_every_item(drive):
    for item_id in drive.items:
        owners = [p for p in drive.permissions[item_id] if p["roles"] == ["owner"]]
        assert len(owners) == 1 and "inheritedFrom" not in owners[0]
        assert owners[0]["grantedToV2"]["user"]["id"] == USERS[0]["id"]


def test_direct_grants_links_and_inheritance(drive):
    direct = {item_id: [p for p in perms if p["roles"] != ["owner"] and "inheritedFrom" not in p] for item_id, perms in drive.permissions.items()}
    shared_ids = {item_id for item_id, perms in direct.items() if perms}
    assert shared_ids == {item_id for item_id, item in drive.items.items() if "shared" in item}
    grants = [p for perms in direct.values() for p in perms if "grantedToV2" in p]
    assert {p["roles"][0] for p in grants} == {"read", "write"}
    colleague_ids = {u["id"] for u in USERS[1:]}
    for grant in grants:
        user = grant["grantedToV2"]["user"]
        assert user["id"] in colleague_ids and user["email"].endswith(DOMAIN)
        assert grant["grantedToV2"]["siteUser"]["loginName"].endswith(user["email"])
    links = [p for perms in direct.values() for p in perms if "link" in p]
    assert {p["link"]["type"] for p in links} == {"view", "edit"}
    assert all(p["link"]["scope"] == "organization" and p["link"]["webUrl"].startswith("https://") for p in links)
    assert {drive.items[i]["shared"]["scope"] for i in shared_ids} == {"users", "organization"}

    folder = by_name(drive, "Gedeeld met team")
    folder_grants = direct[folder["id"]]
    assert folder_grants
    below = [i for i in drive.items if drive.path_of(i).startswith("Gedeeld met team/")]
    assert len(below) >= 4
    for item_id in below:
        inherited = [p for p in drive.permissions[item_id] if "inheritedFrom" in p]
        assert [p["id"] for p in inherited] == [p["id"] for p in folder_grants]
        assert all(p["inheritedFrom"]["id"] == folder["id"] for p in inherited)
        assert all(unquote(p["inheritedFrom"]["path"]) == "/drive/root:/Gedeeld met team" for p in inherited)
    outside = [i for i in drive.items if i not in below and i != folder["id"]]
    assert not any("inheritedFrom" in p for i in outside for p in drive.permissions[i])


def test_library_permissions_come_from_site_groups(library):
    _, lib = library
    root_perms = lib.permissions[lib.root_id]
    assert [p["roles"] for p in root_perms] == [["owner"], ["write"], ["read"]]
    assert all("siteGroup" in p["grantedToV2"] for p in root_perms)
    confidential = by_name(lib, "Vertrouwelijk")
    inside = {i for i in lib.items if lib.path_of(i).startswith("Vertrouwelijk/")}
    for item_id, perms in lib.permissions.items():
        if item_id in (lib.root_id, confidential["id"]):
            continue
        origin = confidential["id"] if item_id in inside else lib.root_id
        assert {p["inheritedFrom"]["id"] for p in perms} == {origin}
    own = lib.permissions[confidential["id"]]
    assert [p["roles"] for p in own] == [["owner"], ["write"]] and "user" in own[1]["grantedToV2"]
    assert 12 <= len(files(lib)) <= 18


# --- Content and hashes -------------------------------------------------------------------------


def test_item_json_hash_equals_hash_of_streamed_content(drive):
    for item in files(drive)[:12]:
        served = drive.item_json(item["id"])
        blob = drive.contents[item["id"]]
        assert served["file"]["hashes"]["quickXorHash"] == quick_xor_hash([blob.read_all()])
        assert served["size"] == len(blob.read_all())


def test_children_are_served_with_hashes(drive):
    for child in drive.children(drive.root_id):
        if "file" in child:
            assert child["file"]["hashes"]["quickXorHash"]


def test_content_starts_like_its_format(drive):
    pdf = next(item for item in files(drive) if item["name"].endswith(".pdf"))
    assert next(drive.contents[pdf["id"]].chunks(0, 5)) == b"%PDF-"
    text = by_name(drive, "日本語メモ.txt")
    assert drive.contents[text["id"]].read_all().decode().strip()


def test_large_file_is_lazy(monkeypatch):
    size = 200 * 1024 * 1024
    started = time.perf_counter()
    data = onedrive("large", large=size)
    assert time.perf_counter() - started < 0.5
    assert not any("quickXorHash" in item["file"]["hashes"] for item in files(data))
    big = next(item for item in files(data) if item["size"] == size)
    assert data.drive["quota"]["used"] >= size

    calls = []
    real = gen_drive.quick_xor_hash
    monkeypatch.setattr(gen_drive, "quick_xor_hash", lambda chunks: calls.append(1) or real(chunks))
    digest = data.item_json(big["id"])["file"]["hashes"]["quickXorHash"]
    assert data.item_json(big["id"])["file"]["hashes"]["quickXorHash"] == digest
    assert len(calls) == 1


def test_large_file_hash_matches_its_content():
    data = onedrive("large-small", large=5 * 1024 * 1024 + 3)
    big = next(item for item in files(data) if item["size"] == 5 * 1024 * 1024 + 3)
    blob = data.contents[big["id"]]
    expected = quick_xor_hash(blob.chunks(chunk_size=7777))
    assert data.item_json(big["id"])["file"]["hashes"]["quickXorHash"] == expected


# --- Determinism and speed ----------------------------------------------------------------------


def _snapshot(data: DriveData) -> str:
    return json.dumps([data.drive, data.items, data.permissions], sort_keys=True)


def test_same_seed_same_drive_other_seed_other_drive():
    first, second, other = onedrive("same"), onedrive("same"), onedrive("other")
    assert _snapshot(first) == _snapshot(second) != _snapshot(other)
    some = files(first)[3]["id"]
    assert first.contents[some].read_all() == second.contents[some].read_all()
    site_a, lib_a = build_library(random.Random(3), "Communicatie", USERS[:3])
    site_b, lib_b = build_library(random.Random(3), "Communicatie", USERS[:3])
    assert site_a == site_b and _snapshot(lib_a) == _snapshot(lib_b)


def test_builds_fast():
    started = time.perf_counter()
    for index in range(10):
        build_onedrive(random.Random(index), USERS[index % 8], USERS, large_file_size=0)
    assert (time.perf_counter() - started) / 10 < 0.2


def test_works_without_colleagues_or_members():
    data = build_onedrive(random.Random(5), USERS[0], [])
    assert not any("grantedToV2" in p and p["roles"] != ["owner"] for perms in data.permissions.values() for p in perms)
    site, lib = build_library(random.Random(5), "Juridische Zaken", [])
    assert_parses(Site, site)
    assert files(lib)


# --- Changes ------------------------------------------------------------------------------------


def test_make_file_updates_the_tree():
    data = onedrive("mutate")
    folder = by_name(data, "Gedeeld met team")
    before_count, before_size = folder["folder"]["childCount"], folder["size"]
    before_root, before_etag = data.items[data.root_id]["size"], folder["eTag"]
    latest = max(item["lastModifiedDateTime"] for item in data.items.values())
    served_before = data.item_json(folder["id"])
    content = "Nieuw bestand ✓\n".encode()

    served = make_file(random.Random(1), data, folder["id"], "Nieuw bestand.txt", content)
    assert_parses(DriveItem, served)
    assert served["file"]["hashes"]["quickXorHash"] == quick_xor_hash([content])
    assert served["size"] == len(content) and served["createdDateTime"] > latest
    assert served["parentReference"]["id"] == folder["id"]
    folder = data.items[folder["id"]]
    assert folder["folder"]["childCount"] == before_count + 1 and folder["size"] == before_size + len(content)
    assert served_before["folder"]["childCount"] == before_count  # what was served earlier stays as it was
    assert data.items[data.root_id]["size"] == before_root + len(content) and folder["eTag"] != before_etag
    assert data.drive["quota"]["used"] == data.items[data.root_id]["size"]
    assert any("inheritedFrom" in p for p in data.permissions[served["id"]])  # the folder is shared
    assert data.item_by_path("Gedeeld met team/Nieuw bestand.txt")["id"] == served["id"]
    with pytest.raises(ValueError):
        make_file(random.Random(2), data, folder["id"], "Nieuw bestand.txt", b"again")
    with pytest.raises(ValueError):
        make_file(random.Random(2), data, served["id"], "x.txt", b"not a folder")
