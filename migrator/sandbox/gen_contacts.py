"""Outlook contacts for the synthetic tenant: a default "Contactpersonen" folder and one subfolder.

Contacts mix colleagues from the directory with invented outside people and firms, and carry what
trips up a conversion to vCard: Dutch name particles in middleName, missing names, several email
addresses, Dutch and German addresses, birthdays stored the three ways Exchange ends up with, notes
with markup characters, a duplicate, and photos. Every property Graph returns is present, with null,
[] or {} where empty, as Exchange sends them.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from migrator.sandbox.names import GIVEN, guid, local_part, person

HISTORY_START = datetime(2019, 3, 4, tzinfo=UTC)
HISTORY_END = datetime(2026, 3, 27, 17, 0, tzinfo=UTC)
DEFAULT_FOLDER = "Contactpersonen"
SUBFOLDER = "Leveranciers"

# Exchange REST ids are base64url of a binary entry id: a fixed head, the mailbox GUID as text, the
# store key, then folder and item keys. Building them that way gives ids the right length (152
# characters for an item) and lets all ids of one mailbox share a long prefix, as real ones do.
_HEAD = b"\x00\x03\x24\x00"  # encodes to "AAMkA"
_WELL_KNOWN_HEAD = b"\x01\x03\x24\x00"  # "AQMkA", as system-created folders have

PARTICLES = ("van", "de", "van der", "van den", "den", "ter", "te", "op de", "in 't")
FAMILY_PLAIN = ("Vries", "Dijk", "Berg", "Linden", "Heuvel", "Brink", "Wal", "Horst", "Laan", "Bosch", "Meer")
TITLES = ("dhr.", "mevr.", "dr.", "mr.", "ir.", "drs.", "prof. dr.")
FIRMS = (
    ("Adviesbureau Kanaalzicht", "kanaalzicht"), ("Bouwbedrijf Noorderlicht B.V.", "noorderlicht-bouw"),
    ("Drukkerij De Lindeboom", "lindeboom-druk"), ("Schäfer & Partner Rechtsanwälte", "schaefer-partner"),
    ("Vertaalbureau Babel & Co", "babel-vertalingen"), ("Stichting Groen Erfgoed", "groen-erfgoed"),
    ("Müller Gebäudetechnik GmbH", "mueller-gebaeude"), ("ICT-Diensten Oost", "ictdiensten-oost"),
)
JOBS = ("Accountmanager", "Projectleider", "Directeur", "Adviseur", "Rechtsanwältin", "Vertaler", "Office manager", "Aannemer")
NL_CITIES = (("Utrecht", "Utrecht", "3511"), ("Zwolle", "Overijssel", "8011"), ("Den Haag", "Zuid-Holland", "2511"),
             ("Amersfoort", "Utrecht", "3811"), ("Groningen", "Groningen", "9711"), ("Maastricht", "Limburg", "6211"))
DE_CITIES = (("Berlin", "Berlin", "10115"), ("Köln", "Nordrhein-Westfalen", "50667"), ("Düsseldorf", "Nordrhein-Westfalen", "40213"),
             ("Münster", "Nordrhein-Westfalen", "48143"), ("Hamburg", "Hamburg", "20095"))
NL_STREETS = ("Lindelaan", "Stationsstraat", "Kerkweg", "Molenpad", "Havenkade", "Beukenlaan", "Oude Gracht", "Dorpsstraat")
DE_STREETS = ("Lindenstraße", "Bahnhofstraße", "Kirchweg", "Am Markt", "Goethestraße", "Mühlenweg", "Schillerplatz")
CATEGORIES = ("Leveranciers", "Familie", "Blauwe categorie", "Oranje categorie", "VIP", "Kerstkaart")
NOTES = (
    "Ontmoet op het ketenoverleg.\nVoorkeur voor contact per e-mail.",
    "Contract loopt tot eind 2026 – verlenging bespreken.",
    "Let op: <geen> bellen na 17:00 & niet op vrijdag.",
    "Spricht Deutsch und Niederländisch.\r\nAnsprechpartnerin für Rechnungen.",
    "Verjaardag niet vergeten 🎂",
    "",
)


@dataclass
class ContactFolderData:
    folder: dict[str, Any]  # Graph `contactFolder` JSON
    contacts: list[dict[str, Any]]  # Graph `contact` JSON
    photos: dict[str, bytes] = field(default_factory=dict)  # contact id -> PNG bytes


# --------------------------------------------------------------------------------------------- ids


@dataclass(frozen=True)
class _Mailbox:
    text: bytes  # the mailbox GUID as 36 ASCII characters
    store: bytes  # 16 bytes

    @classmethod
    def of(cls, user: dict[str, Any]) -> _Mailbox:
        """Derived from the user id, so ids do not depend on how the generator consumed `rng`."""
        digest = hashlib.sha256(("contacts-mailbox:" + user["id"]).encode()).digest()
        h = digest[:16].hex()
        return cls(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}".encode(), digest[16:32])

    def folder_id(self, folder_key: bytes, well_known: bool = False) -> str:
        head = _WELL_KNOWN_HEAD if well_known else _HEAD
        raw = head + self.text + b"\x00\x2e" + bytes(5) + self.store + b"\x01\x00" + folder_key + bytes(2)
        return base64.urlsafe_b64encode(raw).decode()

    def item_id(self, folder_key: bytes, item_key: bytes) -> str:
        raw = _HEAD + self.text + b"\x00\x46" + bytes(5) + self.store + b"\x07\x00" + folder_key + bytes(2) + item_key + bytes(2)
        return base64.urlsafe_b64encode(raw).decode()


def _folder_parts(folder_id: str) -> tuple[_Mailbox, bytes] | None:
    """Recovers mailbox and folder key from a folder id made here, so make_contact needs no user."""
    try:
        raw = base64.urlsafe_b64decode(folder_id)
    except (ValueError, TypeError):
        return None
    if len(raw) != 89 or raw[1:4] != _HEAD[1:]:
        return None
    return _Mailbox(raw[4:40], raw[47:63]), raw[65:87]


def _change_key(rng: Random, mailbox: _Mailbox) -> str:
    """30 bytes in standard base64 ("+" and "/" occur): a length-prefixed 22-byte value made of the
    mailbox's replica GUID and a change counter, which is why they all start "EQAAABYAAA"."""
    counter = rng.randrange(0x10000, 0x1000000).to_bytes(6, "big")
    return base64.b64encode(b"\x11\x00\x00\x00\x16\x00\x00\x00" + mailbox.store + counter).decode()


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _between(rng: Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.randrange(max(int((end - start).total_seconds()), 1)))


# ------------------------------------------------------------------------------------------ photos


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def tiny_png(rng: Random) -> bytes:
    """A small valid RGB PNG: a coloured square with a diagonal band, different per contact."""
    size = rng.randint(16, 48)
    base = bytes(rng.randrange(40, 220) for _ in range(3))
    band = bytes(255 - c for c in base)
    rows = b"".join(
        b"\x00" + b"".join(band if abs(x - y) < size // 6 else base for x in range(size)) for y in range(size)
    )
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows, 9)) + _png_chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------- contacts


def _empty_contact(contact_id: str, folder_id: str, created: datetime, modified: datetime, change_key: str) -> dict[str, Any]:
    """Every property a default GET returns, empty; callers fill in what the person has."""
    return {
        "@odata.etag": f'W/"{change_key}"',
        "id": contact_id,
        "createdDateTime": _ts(created),
        "lastModifiedDateTime": _ts(modified),
        "changeKey": change_key,
        "categories": [],
        "parentFolderId": folder_id,
        "birthday": None,
        "fileAs": "",
        "displayName": "",
        "givenName": None,
        "initials": None,
        "middleName": None,
        "nickName": None,
        "surname": None,
        "title": None,
        "yomiGivenName": None,
        "yomiSurname": None,
        "yomiCompanyName": None,
        "generation": None,
        "imAddresses": [],
        "jobTitle": None,
        "companyName": None,
        "department": None,
        "officeLocation": None,
        "profession": None,
        "businessHomePage": None,
        "assistantName": None,
        "manager": None,
        "homePhones": [],
        "mobilePhone": None,
        "businessPhones": [],
        "spouseName": None,
        "personalNotes": "",
        "children": [],
        "emailAddresses": [],
        "homeAddress": {},
        "businessAddress": {},
        "otherAddress": {},
    }


def _birthday(rng: Random) -> str:
    """Exchange holds a birthday as a timestamp, and which one depends on the client that saved it:
    midnight UTC, 11:59 UTC, or local midnight in Amsterdam (the previous evening in UTC). Each
    names the same calendar date when read in Europe/Amsterdam."""
    day = datetime(rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28), tzinfo=UTC)
    style = rng.randrange(3)
    if style == 0:
        return _ts(day)
    if style == 1:
        return _ts(day + timedelta(hours=11, minutes=59))
    offset = 2 if 4 <= day.month <= 9 else 1  # CEST roughly April–September, CET otherwise
    return _ts(day - timedelta(hours=offset))


def _phone(rng: Random, german: bool, mobile: bool) -> str:
    if german:
        return f"+49 {rng.choice(('151', '160', '171'))} {rng.randint(1000000, 9999999)}" if mobile else f"+49 {rng.choice(('30', '221', '211'))} {rng.randint(100000, 999999)}"
    if mobile:
        return rng.choice((f"+31 6 {rng.randint(10000000, 99999999)}", f"06-{rng.randint(10000000, 99999999)}"))
    return rng.choice((f"+31 {rng.choice(('30', '38', '70'))} {rng.randint(100, 999)} {rng.randint(1000, 9999)}", f"030-{rng.randint(1000000, 9999999)}"))


def _address(rng: Random, german: bool) -> dict[str, Any]:
    if german:
        city, state, postal = rng.choice(DE_CITIES)
        return {"street": f"{rng.choice(DE_STREETS)} {rng.randint(1, 140)}", "city": city, "state": state,
                "countryOrRegion": "Deutschland", "postalCode": postal}
    city, state, digits = rng.choice(NL_CITIES)
    letters = "".join(rng.choice("ABCDEGHJKLMNPRSTVXZ") for _ in range(2))
    street = f"{rng.choice(NL_STREETS)} {rng.randint(1, 250)}{rng.choice(('', '', 'a', 'b', '-II'))}"
    return {"street": street, "city": city, "state": state if rng.random() < 0.5 else "",
            "countryOrRegion": "Nederland", "postalCode": f"{digits} {letters}"}


def _split_family(rng: Random) -> tuple[str | None, str]:
    """Dutch surnames with a particle: Outlook keeps "van der" in middleName and "Linden" as surname."""
    if rng.random() < 0.55:
        return rng.choice(PARTICLES), rng.choice(FAMILY_PLAIN)
    _, family = person(rng)
    particle, _, surname = family.rpartition(" ")
    return particle or None, surname


def _file_as(rng: Random, given: str, middle: str | None, surname: str) -> str:
    middle_part = f" {middle}" if middle else ""
    return rng.choice((f"{surname}, {given}{middle_part}", f"{given}{middle_part} {surname}", ""))


def _outside_person(rng: Random, contact: dict[str, Any], german: bool) -> None:
    given = rng.choice(GIVEN)
    middle, surname = (None, rng.choice(("Müller", "Schäfer", "Weiß", "Groß", "Köhler"))) if german else _split_family(rng)
    firm, firm_domain = rng.choice(FIRMS)
    display = " ".join(p for p in (given, middle, surname) if p)
    local = local_part(given, f"{middle or ''}{surname}").replace("ß", "ss").replace("'", "")
    addresses = [f"{local}@{firm_domain}.example", f"{local}@mail.example", f"{given.lower()}.prive@post.example"]
    count = rng.choice((0, 1, 1, 1, 2, 3))
    contact.update(
        givenName=given, middleName=middle, surname=surname, displayName=display,
        fileAs=_file_as(rng, given, middle, surname),
        initials=f"{given[0]}.{middle[0] + '.' if middle else ''}{surname[0]}.",
        title=rng.choice(TITLES) if rng.random() < 0.4 else None,
        companyName=firm, jobTitle=rng.choice(JOBS), department=rng.choice((None, "Verkoop", "Juridisch", "Inkoop")),
        emailAddresses=[{"name": display if i == 0 else addresses[i], "address": addresses[i]} for i in range(count)],
        businessPhones=[_phone(rng, german, False)] if rng.random() < 0.8 else [],
        mobilePhone=_phone(rng, german, True) if rng.random() < 0.6 else None,
        homePhones=[_phone(rng, german, False)] if rng.random() < 0.2 else [],
        businessAddress=_address(rng, german) if rng.random() < 0.7 else {},
        homeAddress=_address(rng, german) if rng.random() < 0.3 else {},
        otherAddress=_address(rng, not german) if rng.random() < 0.1 else {},
        businessHomePage=f"https://www.{firm_domain}.example/" if rng.random() < 0.3 else None,
        personalNotes=rng.choice(NOTES),
        categories=rng.sample(CATEGORIES, rng.choice((0, 0, 1, 2))),
    )
    if rng.random() < 0.3:
        contact["nickName"] = rng.choice((given[:3], f"{given} 🚲", "De Baas"))
    if rng.random() < 0.35:
        contact["birthday"] = _birthday(rng)
    if rng.random() < 0.15:
        contact["imAddresses"] = [f"sip:{local}@{firm_domain}.example"]
    if rng.random() < 0.1:
        contact["generation"] = rng.choice(("jr.", "sr."))
    if rng.random() < 0.15:
        contact["spouseName"] = rng.choice(GIVEN)
        contact["children"] = rng.sample(GIVEN, rng.randint(1, 3))
    if rng.random() < 0.1:
        contact["assistantName"] = " ".join(person(rng))
        contact["manager"] = " ".join(person(rng))


def _colleague(rng: Random, contact: dict[str, Any], user: dict[str, Any]) -> None:
    """A colleague saved as a contact, with the directory's address so it can be matched."""
    given = user.get("givenName") or user["displayName"].split(" ", 1)[0]
    surname = user.get("surname") or user["displayName"].split(" ", 1)[-1]
    mail = user.get("mail") or user["userPrincipalName"]
    contact.update(
        givenName=given, surname=surname, displayName=user["displayName"], fileAs=_file_as(rng, given, None, surname),
        companyName="Contoso Overheid", department=user.get("department"), jobTitle=user.get("jobTitle"),
        officeLocation=user.get("officeLocation"),
        emailAddresses=[{"name": user["displayName"], "address": mail}],
        businessPhones=list(user.get("businessPhones") or []),
        categories=["Collega's"] if rng.random() < 0.5 else [],
    )


def _address_only(rng: Random, contact: dict[str, Any]) -> None:
    """Saved from an email with nothing but the address: no names, displayName is the address."""
    address = f"info@{rng.choice(FIRMS)[1]}.example"
    contact.update(displayName=address, emailAddresses=[{"name": address, "address": address}])


def _firm_only(rng: Random, contact: dict[str, Any]) -> None:
    firm, domain = rng.choice(FIRMS)
    contact.update(
        displayName=firm, fileAs=firm, companyName=firm, businessPhones=[_phone(rng, "GmbH" in firm, False)],
        emailAddresses=[{"name": f"receptie@{domain}.example", "address": f"receptie@{domain}.example"}],
        businessAddress=_address(rng, "GmbH" in firm or "Rechtsanw" in firm),
    )


class _Builder:
    def __init__(self, rng: Random, mailbox: _Mailbox) -> None:
        self.rng, self.mailbox = rng, mailbox

    def new(self, folder_id: str, folder_key: bytes, start: datetime = HISTORY_START, end: datetime = HISTORY_END) -> dict[str, Any]:
        created = _between(self.rng, start, end)
        modified = created if self.rng.random() < 0.4 else _between(self.rng, created, end)
        contact_id = self.mailbox.item_id(folder_key, self.rng.randbytes(16) + bytes(4) + b"\x00\x02")
        return _empty_contact(contact_id, folder_id, created, modified, _change_key(self.rng, self.mailbox))


def _folder_key(rng: Random) -> bytes:
    return rng.randbytes(16) + bytes(2) + struct.pack(">I", rng.randrange(1 << 20))


def build_contacts(rng: Random, user: dict[str, Any], colleagues: list[dict[str, Any]]) -> list[ContactFolderData]:
    """The default folder first (about 20 contacts), then its subfolder (about 6)."""
    mailbox = _Mailbox.of(user)
    root_id = mailbox.folder_id(_folder_key(rng), well_known=True)
    default_key, sub_key = _folder_key(rng), _folder_key(rng)
    default_id = mailbox.folder_id(default_key, well_known=True)
    sub_id = mailbox.folder_id(sub_key)
    builder = _Builder(rng, mailbox)

    default = ContactFolderData({"id": default_id, "displayName": DEFAULT_FOLDER, "parentFolderId": root_id}, [])
    for colleague in colleagues[: rng.randint(2, 4)]:
        contact = builder.new(default_id, default_key)
        _colleague(rng, contact, colleague)
        default.contacts.append(contact)
    for _ in range(rng.randint(13, 17)):
        contact = builder.new(default_id, default_key)
        _outside_person(rng, contact, german=rng.random() < 0.3)
        default.contacts.append(contact)
    for special in (_address_only, _firm_only):
        contact = builder.new(default_id, default_key)
        special(rng, contact)
        default.contacts.append(contact)
    default.contacts.append(_duplicate(builder, default.contacts, default_id, default_key))

    sub = ContactFolderData({"id": sub_id, "displayName": SUBFOLDER, "parentFolderId": default_id}, [])
    for _ in range(rng.randint(5, 7)):
        contact = builder.new(sub_id, sub_key)
        _outside_person(rng, contact, german=rng.random() < 0.4)
        contact["categories"] = ["Leveranciers"]
        sub.contacts.append(contact)

    for folder in (default, sub):
        for contact in folder.contacts:
            if contact["givenName"] and rng.random() < 0.3:
                folder.photos[contact["id"]] = tiny_png(rng)
    return [default, sub]


def _duplicate(builder: _Builder, contacts: list[dict[str, Any]], folder_id: str, folder_key: bytes) -> dict[str, Any]:
    """The same person saved twice (a common address-book wart), later and with a new phone."""
    original = next(c for c in reversed(contacts) if c["givenName"] and c["emailAddresses"])
    copy = builder.new(folder_id, folder_key, start=datetime.fromisoformat(original["createdDateTime"]))
    fresh = {k: copy[k] for k in ("@odata.etag", "id", "createdDateTime", "lastModifiedDateTime", "changeKey")}
    return {**original, **fresh, "mobilePhone": _phone(builder.rng, False, True)}


def make_contact(rng: Random, folder_id: str) -> dict[str, Any]:
    """A new contact in `folder_id`, created just after the generated history, for tests that
    change the tenant. Uses the folder's mailbox in its id when the folder id came from here."""
    parts = _folder_parts(folder_id)
    if parts is None:
        parts = _Mailbox.of({"id": guid(rng)}), _folder_key(rng)
    mailbox, folder_key = parts
    start = HISTORY_END + timedelta(minutes=1)
    contact = _Builder(rng, mailbox).new(folder_id, folder_key, start, start + timedelta(hours=2))
    contact["lastModifiedDateTime"] = contact["createdDateTime"]
    _outside_person(rng, contact, german=rng.random() < 0.3)
    return contact

