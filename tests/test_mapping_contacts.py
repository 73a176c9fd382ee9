"""Contacts mapping: golden vCards, two parsers reading every card back, determinism and escaping.

The second parser below is deliberately strict and independent of vobject: it checks the RFC 6350
framing (CRLF, 75-octet folding, BEGIN/VERSION/END, one FN and UID) and unescapes values itself,
so a mistake vobject makes symmetrically when writing and reading cannot go unnoticed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import vobject
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.contacts import (
    CONTENT_TYPE,
    ContactOptions,
    birthday_date,
    contact_to_vcard,
    contact_uid,
    contacts_mapping,
    map_contact,
)
from migrator.errors import ItemError
from migrator.model import Container, Item, ItemRef, Payload, Target
from migrator.sandbox.gen_contacts import build_contacts, tiny_png
from migrator.sandbox.people import build_users

GOLDEN = Path(__file__).parent / "golden" / "contacts"
CASES = sorted(GOLDEN.glob("*.json"))
TENANT = "contoso-overheid.example"
OPTIONS = ContactOptions.of([TENANT])
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(200))


# ----------------------------------------------------------------------------- the strict parser


@dataclass
class Line:
    name: str
    params: dict[str, list[str]]
    value: str


_NAME = re.compile(r"[A-Za-z0-9-]+")
_PARAM = re.compile(r';([A-Za-z0-9-]+)=((?:"[^"]*"|[^";:,]*)(?:,(?:"[^"]*"|[^";:,]*))*)')


def parse_strict(card: bytes) -> list[Line]:
    """One vCard 4.0 as RFC 6350 §3.2-3.3 frames it; fails on anything loose."""
    assert card.endswith(b"\r\n"), "the last line ends with CRLF"
    physical = card[:-2].split(b"\r\n")
    for raw in physical:
        assert len(raw) <= 75, f"{len(raw)} octets: {raw[:40]!r}"
        assert b"\r" not in raw and b"\n" not in raw, f"bare line break in {raw[:40]!r}"
    logical: list[bytes] = []
    for raw in physical:
        if raw.startswith(b" "):
            assert logical, "a continuation cannot come first"
            logical[-1] += raw[1:]
        else:
            assert raw, "no empty lines inside a card"
            logical.append(raw)
    lines = [_parse_line(raw.decode("utf-8")) for raw in logical]  # folding never splits a character
    assert (lines[0].name, lines[0].value) == ("BEGIN", "VCARD")
    assert (lines[1].name, lines[1].value) == ("VERSION", "4.0"), "VERSION follows BEGIN"
    assert (lines[-1].name, lines[-1].value) == ("END", "VCARD")
    names = [line.name for line in lines]
    assert names.count("FN") == 1 and names.count("UID") == 1 and names.count("BEGIN") == 1
    return lines


def _parse_line(text: str) -> Line:
    assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", text), f"control character in {text!r}"
    match = _NAME.match(text)
    assert match, text
    name, rest = match.group().upper(), text[match.end():]
    params: dict[str, list[str]] = {}
    while rest.startswith(";"):
        param = _PARAM.match(rest)
        assert param, f"bad parameter in {text!r}"
        params[param.group(1).upper()] = [v.strip('"') for v in re.findall(r'"[^"]*"|[^,]+', param.group(2))]
        rest = rest[param.end():]
    assert rest.startswith(":"), f"no value separator in {text!r}"
    return Line(name, params, rest[1:])


def split_escaped(value: str, separator: str) -> list[str]:
    """Splits at separators not preceded by a backslash escape; the parts stay escaped."""
    parts, current, index = [], "", 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            current += value[index : index + 2]
            index += 2
            continue
        if char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
        index += 1
    return parts + [current]


def unescape(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        char = match.group(1)
        assert char in "\\,;nN", f"undefined escape \\{char}"
        return "\n" if char in "nN" else char

    return re.sub(r"\\(.)", replace, value)


def text_of(line: Line) -> str:
    # A single text value has no unescaped separators (RFC 6350 §3.4).
    assert len(split_escaped(line.value, ",")) == 1 and len(split_escaped(line.value, ";")) == 1, line.value
    return unescape(line.value)


def structured(line: Line) -> list[str]:
    return [unescape(part) for part in split_escaped(line.value, ";")]


def only(lines: list[Line], name: str) -> list[Line]:
    return [line for line in lines if line.name == name]


# --------------------------------------------------------------------------------------- helpers


def _case(path: Path) -> dict[str, Any]:
    given_ = json.loads(path.read_text("utf-8"))
    photo = base64.b64decode(given_["photo_base64"]) if given_.get("photo_base64") else None
    return {"contact": given_["contact"], "photo": photo}


@cache
def _generated() -> list[dict[str, Any]]:
    """A few sandbox mailboxes' contacts, as the Graph reader hands them to the mapping."""
    users = build_users(7, 4)
    result = []
    for seed in range(6):
        user = users[seed]
        for folder in build_contacts(random.Random(seed), user, [u for u in users if u is not user]):
            result += [{"contact": c, "photo": folder.photos.get(c["id"])} for c in folder.contacts]
    return result


def _normalised(text: str) -> str:
    """What a card can carry of a Graph string: one kind of line break, no other controls."""
    text = re.sub(r"\r\n|\r|\n", "\n", text)
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text)


def _expected_birthday(value: str) -> date:
    """An oracle independent of time zones: every way Exchange stores a birthday lies within
    twelve hours before or after midnight UTC of the day it means."""
    moment = datetime.fromisoformat(value)
    return (moment + timedelta(hours=12)).astimezone(UTC).date()


def _bare_contact(**fields: Any) -> dict[str, Any]:
    empty = {
        "id": "AAMkAGI2TG93AAA=", "displayName": "", "givenName": None, "middleName": None, "surname": None,
        "title": None, "generation": None, "nickName": None, "companyName": None, "department": None,
        "jobTitle": None, "emailAddresses": [], "businessPhones": [], "homePhones": [], "mobilePhone": None,
        "homeAddress": {}, "businessAddress": {}, "otherAddress": {}, "birthday": None, "personalNotes": "",
        "categories": [], "imAddresses": [], "businessHomePage": None, "spouseName": None, "children": [],
        "lastModifiedDateTime": None,
    }
    return {**empty, **fields}


def _card(contact: dict[str, Any], photo: bytes | None = None) -> list[Line]:
    return parse_strict(contact_to_vcard({"contact": contact, "photo": photo}, OPTIONS))


# ---------------------------------------------------------------------------------------- golden


def test_the_golden_cases_cover_what_the_brief_names():
    names = {p.stem for p in CASES}
    assert {"colleague", "external_particles_three_emails", "firm_only", "address_only", "with_photo",
            "birthday_midnight_utc", "birthday_noon_utc", "birthday_amsterdam_midnight_before_1977"} <= names


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_golden_cards(case: Path):
    card = contact_to_vcard(_case(case), OPTIONS)
    expected = case.with_suffix(".vcf")
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_bytes(card)
    assert card == expected.read_bytes()
    parse_strict(card)
    vobject.readOne(card.decode("utf-8"))


def test_golden_details():
    colleague = parse_strict((GOLDEN / "colleague.vcf").read_bytes())
    assert only(colleague, "EMAIL")[0].params == {"PREF": ["1"], "TYPE": ["work"]}
    external = parse_strict((GOLDEN / "external_particles_three_emails.vcf").read_bytes())
    assert structured(only(external, "N")[0])[:3] == ["Vries", "Bram", "de"]
    assert [e.params["TYPE"] for e in only(external, "EMAIL")] == [["home"]] * 3
    assert [e.params.get("PREF") for e in only(external, "EMAIL")] == [["1"], None, None]
    firm = parse_strict((GOLDEN / "firm_only.vcf").read_bytes())
    assert text_of(only(firm, "KIND")[0]) == "org" and not only(firm, "N")
    assert text_of(only(firm, "FN")[0]) == structured(only(firm, "ORG")[0])[0] == "ICT-Diensten Oost"
    address_only = parse_strict((GOLDEN / "address_only.vcf").read_bytes())
    assert not only(address_only, "KIND") and not only(address_only, "N") and not only(address_only, "ORG")
    assert text_of(only(address_only, "FN")[0]) == only(address_only, "EMAIL")[0].value
    for stem in ("birthday_midnight_utc", "birthday_noon_utc", "birthday_amsterdam_midnight_before_1977", "birthday_amsterdam_midnight_october"):
        contact = _case(GOLDEN / f"{stem}.json")["contact"]
        lines = parse_strict((GOLDEN / f"{stem}.vcf").read_bytes())
        assert only(lines, "BDAY")[0].value == _expected_birthday(contact["birthday"]).strftime("%Y%m%d"), stem


# ------------------------------------------------------------------------------------ round trip


def test_every_generated_contact_reads_back_equal_with_both_parsers():
    contacts = _generated()
    assert len(contacts) > 100 and sum(1 for m in contacts if m["photo"]) > 10
    for metadata in contacts:
        contact, card = metadata["contact"], contact_to_vcard(metadata, OPTIONS)
        _check_strict(contact, metadata["photo"], parse_strict(card))
        _check_vobject(contact, metadata["photo"], vobject.readOne(card.decode("utf-8")))


def _check_strict(contact: dict[str, Any], photo: bytes | None, lines: list[Line]) -> None:
    emails = [e["address"] for e in contact["emailAddresses"]]
    assert [text_of(line) for line in only(lines, "EMAIL")] == emails
    phones = [*contact["businessPhones"], *contact["homePhones"], *([contact["mobilePhone"]] if contact["mobilePhone"] else [])]
    assert [text_of(line) for line in only(lines, "TEL")] == phones
    org = [contact["companyName"] or "", *([contact["department"]] if contact["department"] else [])]
    assert [structured(line) for line in only(lines, "ORG")] == ([org] if org != [""] else [])
    assert [text_of(line) for line in only(lines, "TITLE")] == ([contact["jobTitle"]] if contact["jobTitle"] else [])
    note = _normalised(contact["personalNotes"])
    assert [text_of(line) for line in only(lines, "NOTE")] == ([note] if note else [])
    assert [split_escaped(line.value, ",") for line in only(lines, "CATEGORIES")] == ([contact["categories"]] if contact["categories"] else [])
    bday = only(lines, "BDAY")
    assert [line.value for line in bday] == ([_expected_birthday(contact["birthday"]).strftime("%Y%m%d")] if contact["birthday"] else [])
    photos = only(lines, "PHOTO")
    if photo:
        media, _, data = photos[0].value.partition(";base64,")
        assert media == "data:image/png" and base64.b64decode(data) == photo
    else:
        assert not photos
    assert text_of(only(lines, "FN")[0]) == (contact["displayName"] or contact["companyName"])
    assert only(lines, "UID")[0].value == contact_uid(contact["id"]).urn
    for line in only(lines, "ADR"):
        assert len(structured(line)) == 7 and line.params["TYPE"][0] in ("work", "home", "other")


def _check_vobject(contact: dict[str, Any], photo: bytes | None, card: Any) -> None:
    assert card.version.value == "4.0"
    assert [e.value for e in card.contents.get("email", [])] == [e["address"] for e in contact["emailAddresses"]]
    if contact["surname"]:
        name = card.n.value
        assert (name.family, name.given, name.additional) == (contact["surname"], contact["givenName"], contact["middleName"] or "")
    if contact["companyName"]:
        assert card.org.value[0] == contact["companyName"]
    if contact["personalNotes"]:
        assert card.note.value == _normalised(contact["personalNotes"])
    for graph_key, kind in (("businessAddress", "work"), ("homeAddress", "home"), ("otherAddress", "other")):
        address = contact[graph_key]
        found = [a.value for a in card.contents.get("adr", []) if a.params["TYPE"] == [kind]]
        if address:
            assert (found[0].street, found[0].city, found[0].code, found[0].country) == (
                address["street"], address["city"], address["postalCode"], address["countryOrRegion"])
        else:
            assert not found
    # vobject reads PHOTO with vCard 3.0 text rules and so stops at the data URI's comma; the
    # strict parser above checks the bytes.
    assert [p.value for p in card.contents.get("photo", [])] == (["data:image/png;base64"] if photo else [])


# --------------------------------------------------------------------------------- determinism


def test_the_same_contact_gives_the_same_bytes_and_uid():
    metadata = _generated()[5]
    copy = json.loads(json.dumps(metadata["contact"]))
    assert contact_to_vcard(metadata, OPTIONS) == contact_to_vcard({"contact": copy, "photo": metadata["photo"]}, OPTIONS)
    reordered = dict(reversed(list(copy.items())))
    assert contact_to_vcard({"contact": reordered, "photo": metadata["photo"]}, OPTIONS) == contact_to_vcard(metadata, OPTIONS)
    assert contact_uid(copy["id"]) == contact_uid(copy["id"])
    # Pinned: a changed namespace would make every rerun duplicate the address book.
    assert contact_uid("AAMkAGI2TG93AAA=").urn == "urn:uuid:" + str(contact_uid("AAMkAGI2TG93AAA="))
    assert str(contact_uid("AAMkAGI2TG93AAA=")) == "52eabca6-c269-5729-a7d5-c69be926ff09"


def test_different_ids_get_different_uids():
    ids = [m["contact"]["id"] for m in _generated()]
    assert len({contact_uid(i) for i in ids}) == len(set(ids)) == len(ids)


def test_the_mapping_targets_a_vcf_named_after_the_uid():
    metadata = _generated()[0]
    contact = metadata["contact"]
    container = Container("folder-1", "Leveranciers", "contacts", ("Contactpersonen", "Leveranciers"), "")
    item = Item(ItemRef(contact["id"], contact["changeKey"], "contact", contact["displayName"]), Payload.from_bytes(b"{}"), metadata)
    mapping = contacts_mapping(OPTIONS)
    assert mapping.container_path(container) == ("Contactpersonen", "Leveranciers")
    target = mapping.item(item, container)
    assert isinstance(target, Target)
    uid = contact_uid(contact["id"])
    assert target.dest_key == f"{uid.hex}.vcf" and re.fullmatch(r"[0-9a-f]{32}\.vcf", target.dest_key)
    assert target.metadata == {"uid": uid.urn, "content_type": CONTENT_TYPE}
    data = asyncio.run(target.payload.read_all())
    assert data == contact_to_vcard(metadata, OPTIONS) and target.payload.size == len(data)


def test_the_listing_id_stands_in_for_a_missing_graph_id_and_no_json_fails_the_item():
    item = Item(ItemRef("AAMkRef=", "ck", "contact"), Payload.from_bytes(b""), {"contact": _bare_contact(id=None, displayName="Jan"), "photo": None})
    target = map_contact(item, Container("f", "Contacts", "contacts", ("Contacts",), "default"))
    assert isinstance(target, Target) and target.dest_key == f"{contact_uid('AAMkRef=').hex}.vcf"
    with pytest.raises(ItemError):
        map_contact(Item(ItemRef("x", "", "contact"), Payload.from_bytes(b""), {}), Container("f", "C", "contacts"))
    with pytest.raises(ItemError):
        contact_to_vcard({"contact": _bare_contact(id=None)})


# ------------------------------------------------------------------------------ specific values


def test_empty_graph_values_give_no_property():
    lines = _card(_bare_contact(displayName="Jan", personalNotes="  ", categories=[""], homeAddress={"street": "", "city": None}))
    assert [line.name for line in lines] == ["BEGIN", "VERSION", "PRODID", "UID", "FN", "END"]
    nameless = _card(_bare_contact())
    assert text_of(only(nameless, "FN")[0]) == ""


def test_fn_is_composed_when_there_is_no_display_name():
    lines = _card(_bare_contact(givenName="Jan", middleName="van der", surname="Berg", title="dr.", generation="jr."))
    assert text_of(only(lines, "FN")[0]) == "dr. Jan van der Berg jr."
    assert structured(only(lines, "N")[0]) == ["Berg", "Jan", "van der", "dr.", "jr."]
    assert text_of(only(_card(_bare_contact(mobilePhone="+31 6 12345678")), "FN")[0]) == "+31 6 12345678"


def test_phones_addresses_and_uris_are_typed():
    lines = _card(_bare_contact(
        displayName="Jan", businessPhones=["+31 30 123 4567"], homePhones=["030-7654321"], mobilePhone="06-12345678",
        homeAddress={"street": "Lindelaan 5\nAchterhuis", "city": "Utrecht", "state": "", "postalCode": "3511 AB", "countryOrRegion": "Nederland"},
        otherAddress={"city": "Köln"}, imAddresses=["jan@im.example", "xmpp:jan@jabber.example"],
        emailAddresses=[{"address": "jan@sub.contoso-overheid.example"}, {"address": "jan@elders.example"}, {"address": ""}],
        businessHomePage="https://www.example.org/a b", spouseName="Els", children=["Pim"],
    ))
    assert [(text_of(t), t.params["TYPE"]) for t in only(lines, "TEL")] == [
        ("+31 30 123 4567", ["work", "voice"]), ("030-7654321", ["home", "voice"]), ("06-12345678", ["cell"])]
    assert [(structured(a), a.params["TYPE"]) for a in only(lines, "ADR")] == [
        (["", "", "Lindelaan 5\nAchterhuis", "Utrecht", "", "3511 AB", "Nederland"], ["home"]),
        (["", "", "", "Köln", "", "", ""], ["other"])]
    assert [e.params["TYPE"] for e in only(lines, "EMAIL")] == [["work"], ["home"]]
    assert [i.value for i in only(lines, "IMPP")] == ["sip:jan@im.example", "xmpp:jan@jabber.example"]
    assert only(lines, "URL")[0].value == "https://www.example.org/a%20b"
    assert [(text_of(r), r.params["TYPE"]) for r in only(lines, "RELATED")] == [("Els", ["spouse"]), ("Pim", ["child"])]


@pytest.mark.parametrize("day", [date(1960, 7, 14), date(1975, 1, 31), date(1999, 3, 28), date(2004, 10, 30), date(1985, 12, 31)])
def test_each_way_exchange_stores_a_birthday_names_the_same_date(day: date):
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    offset = 2 if 4 <= day.month <= 9 else 1  # what Outlook writes: today's rules for every year
    for stored in (midnight, midnight + timedelta(hours=11, minutes=59), midnight - timedelta(hours=offset), midnight - timedelta(hours=2)):
        text = stored.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert birthday_date(text) == day, text
        assert only(_card(_bare_contact(displayName="Jan", birthday=text)), "BDAY")[0].value == day.strftime("%Y%m%d")


def test_a_yearless_birthday_and_an_unreadable_one():
    assert only(_card(_bare_contact(displayName="Jan", birthday="1604-05-06T00:00:00Z")), "BDAY")[0].value == "--0506"
    kept = only(_card(_bare_contact(displayName="Jan", birthday="ergens in mei")), "BDAY")[0]
    assert kept.params == {"VALUE": ["text"]} and text_of(kept) == "ergens in mei"


def test_rev_comes_from_the_last_modification():
    lines = _card(_bare_contact(displayName="Jan", lastModifiedDateTime="2025-10-27T12:04:33.1234567Z"))
    assert only(lines, "REV")[0].value == "20251027T120433Z"
    assert not only(_card(_bare_contact(displayName="Jan", lastModifiedDateTime="gisteren")), "REV")


def test_photo_type_follows_the_signature():
    jpeg = only(_card(_bare_contact(displayName="Jan"), JPEG), "PHOTO")[0].value
    assert jpeg.startswith("data:image/jpeg;base64,") and base64.b64decode(jpeg.partition(",")[2]) == JPEG
    png = tiny_png(random.Random(3))
    assert only(_card(_bare_contact(displayName="Jan"), png), "PHOTO")[0].value.startswith("data:image/png;base64,")
    assert not only(_card(_bare_contact(displayName="Jan"), b""), "PHOTO")


def test_a_large_photo_is_folded_and_kept_byte_for_byte():
    photo = JPEG + random.Random(5).randbytes(400_000)
    value = only(_card(_bare_contact(displayName="Jan"), photo), "PHOTO")[0].value
    assert base64.b64decode(value.partition(",")[2]) == photo


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_folding_keeps_every_line_within_75_octets_and_unfolds_to_the_same_text(value: str):
    lines = _card(_bare_contact(displayName="Jan", personalNotes="é" + value))
    assert text_of(only(lines, "NOTE")[0]) == _normalised("é" + value)


def test_an_organisation_is_a_kind_org_card_without_n():
    lines = _card(_bare_contact(displayName="Stichting Groen Erfgoed", companyName="Stichting Groen Erfgoed", department="Beheer"))
    assert text_of(only(lines, "KIND")[0]) == "org" and not only(lines, "N")
    assert structured(only(lines, "ORG")[0]) == ["Stichting Groen Erfgoed", "Beheer"]
    person = _card(_bare_contact(displayName="Jan Berg", givenName="Jan", companyName="Stichting Groen Erfgoed"))
    assert not only(person, "KIND")


# ----------------------------------------------------------------------------------- escaping


_ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)


@settings(max_examples=150, deadline=None)
@given(given_name=_ANY_TEXT, surname=_ANY_TEXT, note=_ANY_TEXT, company=_ANY_TEXT, category=_ANY_TEXT)
def test_arbitrary_text_survives_escaping_and_folding(given_name: str, surname: str, note: str, company: str, category: str):
    contact = _bare_contact(givenName=given_name, surname=surname, displayName=f"{given_name};{surname},\n",
                            personalNotes=note, companyName=company, department="Afd; 1, 2", categories=[category])
    card = contact_to_vcard({"contact": contact, "photo": None}, OPTIONS)
    lines = parse_strict(card)
    parsed = vobject.readOne(card.decode("utf-8"))

    def kept(value: str) -> str | None:
        value = _normalised(value)
        return value if value.strip() else None

    assert text_of(only(lines, "FN")[0]) == parsed.fn.value == kept(f"{given_name};{surname},\n")
    if kept(given_name) or kept(surname):
        n = structured(only(lines, "N")[0])
        assert n[:2] == [kept(surname) or "", kept(given_name) or ""]
        assert (parsed.n.value.family, parsed.n.value.given) == (n[0], n[1])
    assert [text_of(line) for line in only(lines, "NOTE")] == ([kept(note)] if kept(note) else [])
    if kept(note):
        assert parsed.note.value == kept(note)
    assert structured(only(lines, "ORG")[0]) == [kept(company) or "", "Afd; 1, 2"] == parsed.org.value
    assert [unescape(v) for line in only(lines, "CATEGORIES") for v in split_escaped(line.value, ",")] == ([kept(category)] if kept(category) else [])


@given(st.text(max_size=40))
def test_control_characters_never_reach_the_card(text: str):
    parse_strict(contact_to_vcard({"contact": _bare_contact(displayName="x" + text, personalNotes=text), "photo": None}, OPTIONS))
