"""Contacts: a Graph contact becomes one vCard 4.0 (RFC 6350) for a CardDAV address book.

The card's UID is derived from the Graph contact id, so a rerun (with or without the ledger)
replaces the card it wrote before instead of adding a second one; dest_key is the same UUID as
hex, which is safe in a CardDAV URL. Only what Graph holds goes into the card: an empty Graph value
(null, "", [] or {}) gives no property, and nothing is invented except FN, which vCard requires.

Exchange stores a birthday as a timestamp, written differently by different clients (midnight UTC,
11:59 UTC, or local midnight); the date is read in one time zone, Europe/Amsterdam by default.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import vobject
from vobject.behavior import Behavior
from vobject.vcard import Address, Name

from migrator.contracts import WorkloadMapping
from migrator.errors import ItemError
from migrator.model import Container, Item, Payload, Skip, Target

# Fixed for good: changing it would give every migrated contact a new UID, and a rerun would then
# duplicate the whole address book instead of updating it.
UID_NAMESPACE = uuid.UUID("a20083c2-dffa-47f0-8aa8-de566b60b8ac")
CONTENT_TYPE = "text/vcard; charset=utf-8"
PRODID = "-//m365-migrator//contacts//EN"

_ADDRESSES = (("businessAddress", "work"), ("homeAddress", "home"), ("otherAddress", "other"))
_PERSONAL_NAMES = ("givenName", "middleName", "surname", "nickName")
# Outlook and iOS save a birthday without a year in 1604, which vCard 4.0 writes as --MMDD.
_YEARLESS = 1604
# Characters a vCard text value cannot carry (RFC 6350 §3.3 allows HTAB and no other control).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_LINE_OCTETS = 75  # RFC 6350 §3.2, not counting the CRLF
_UNFOLDED = 1 << 62  # vobject counts characters, not octets, when it folds, so it is left to fold()
_GRAPH_FRACTION = re.compile(r"(\.\d{1,6})\d*")  # Graph sends up to 7 fraction digits


@dataclass(frozen=True)
class ContactOptions:
    """`work_domains`: the tenant's mail domains; an email there is TYPE=work, any other TYPE=home."""

    work_domains: frozenset[str] = frozenset()
    birthday_zone: str = "Europe/Amsterdam"

    @classmethod
    def of(cls, work_domains: Iterable[str] = (), birthday_zone: str = "Europe/Amsterdam") -> ContactOptions:
        return cls(frozenset(d.strip().lower().lstrip("@") for d in work_domains if d.strip()), birthday_zone)


def contacts_mapping(options: ContactOptions = ContactOptions()) -> WorkloadMapping:
    """Every contact folder keeps its path (the sink turns it into an address book name)."""
    return WorkloadMapping(
        container_path=lambda container: container.path or (container.name,),
        item=lambda item, container: map_contact(item, container, options),
    )


def map_contact(item: Item, container: Container, options: ContactOptions = ContactOptions()) -> Target | Skip:
    contact = item.metadata.get("contact")
    if not isinstance(contact, dict):
        raise ItemError(f"contact {item.ref.source_id} came without its Graph JSON")
    metadata = {**item.metadata, "contact": {**contact, "id": contact.get("id") or item.ref.source_id}}
    card = contact_to_vcard(metadata, options)
    uid = contact_uid(metadata["contact"]["id"])
    return Target(dest_key=f"{uid.hex}.vcf", payload=Payload.from_bytes(card), metadata={"uid": uid.urn, "content_type": CONTENT_TYPE})


def contact_uid(graph_id: str) -> uuid.UUID:
    return uuid.uuid5(UID_NAMESPACE, graph_id)


def contact_to_vcard(metadata: dict[str, Any], options: ContactOptions = ContactOptions()) -> bytes:
    """The vCard of `{"contact": <Graph contact>, "photo": <bytes or None>}`: UTF-8, CRLF, folded
    at 75 octets, and the same bytes for the same input (vobject orders properties by name)."""
    contact: dict[str, Any] = metadata.get("contact") or {}
    graph_id = contact.get("id")
    if not graph_id or not isinstance(graph_id, str):
        raise ItemError("a contact without a Graph id cannot get a stable UID")
    card = vobject.vCard()
    card.add("version").value = "4.0"
    card.add("prodid").value = PRODID
    card.add("uid").value = contact_uid(graph_id).urn
    is_org = _is_organisation(contact)
    if is_org:
        card.add("kind").value = "org"
    card.add("fn").value = _formatted_name(contact)
    if not is_org:
        _add_name(card, contact)
    _add_text(card, "nickname", contact.get("nickName"))
    _add_org(card, contact)
    _add_text(card, "title", contact.get("jobTitle"))
    _add_emails(card, contact.get("emailAddresses"), options.work_domains)
    _add_phones(card, contact)
    _add_addresses(card, contact)
    _add_birthday(card, contact.get("birthday"), options.birthday_zone)
    _add_text(card, "note", contact.get("personalNotes"))
    categories = [c for c in map(_text, _as_list(contact.get("categories"))) if c]
    if categories:
        card.add("categories").value = categories
    for address in _as_list(contact.get("imAddresses")):
        _add_uri(card, "impp", _im_uri(address))
    _add_uri(card, "url", _web_uri(contact.get("businessHomePage")), ("work",))
    _add_related(card, contact)
    _add_uri(card, "photo", _photo_uri(metadata.get("photo")))
    _add_rev(card, contact.get("lastModifiedDateTime"))
    return fold(card.serialize(lineLength=_UNFOLDED))


def fold(text: str) -> bytes:
    """UTF-8 with every line at most 75 octets, continued on lines that start with one space, and
    never split inside a character (RFC 6350 §3.2 asks for that so each line stays valid UTF-8)."""
    out = bytearray()
    for line in text.split("\r\n")[:-1]:  # serialize() ends every line, the last one too, in CRLF
        if line.isascii():  # one octet a character: slices will do, which matters for photos
            out += b"\r\n ".join(_ascii_pieces(line)) + b"\r\n"
            continue
        room = _LINE_OCTETS
        for char in line:
            encoded = char.encode("utf-8")
            if len(encoded) > room:
                out += b"\r\n "
                room = _LINE_OCTETS - 1
            out += encoded
            room -= len(encoded)
        out += b"\r\n"
    return bytes(out)


def _ascii_pieces(line: str) -> list[bytes]:
    first, rest = line[:_LINE_OCTETS], line[_LINE_OCTETS:]
    step = _LINE_OCTETS - 1
    return [first.encode("ascii")] + [rest[i : i + step].encode("ascii") for i in range(0, len(rest), step)]


# ------------------------------------------------------------------------------------ text values


def _text(value: Any) -> str | None:
    """A value fit for a vCard text property, or None when Graph's value is empty.

    Line breaks of any kind become LF (vCard has one escape, \\n, for all of them), other control
    characters are dropped because RFC 6350 text cannot carry them, and unpaired surrogates (which
    JSON allows) become U+FFFD so the card can be UTF-8.
    """
    if value is None or isinstance(value, (dict, list)):
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    text = _CONTROL.sub("", _LINE_BREAK.sub("\n", text))
    return text if text.strip() else None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _add_text(card: Any, name: str, value: Any, types: tuple[str, ...] = ()) -> None:
    text = _text(value)
    if text is not None:
        line = card.add(name)
        line.value = text
        if types:
            line.params["TYPE"] = list(types)


def _formatted_name(contact: dict[str, Any]) -> str:
    """FN is mandatory: the display name, else the name composed as Outlook shows it, else
    whatever identifies the contact (company, email, phone); empty only for an empty contact."""
    composed = " ".join(p for p in map(_text, (contact.get(k) for k in ("title", "givenName", "middleName", "surname", "generation"))) if p)
    emails = [e.get("address") for e in _as_list(contact.get("emailAddresses")) if isinstance(e, dict)]
    phones = [contact.get("mobilePhone"), *_as_list(contact.get("businessPhones")), *_as_list(contact.get("homePhones"))]
    for candidate in (contact.get("displayName"), composed, contact.get("companyName"), contact.get("nickName"), *emails, *phones):
        if (text := _text(candidate)) is not None:
            return text
    return ""


def _is_organisation(contact: dict[str, Any]) -> bool:
    """A firm saved as a contact: a company name and no person's name (Outlook then shows the firm)."""
    company = _text(contact.get("companyName"))
    if company is None or any(_text(contact.get(k)) for k in _PERSONAL_NAMES):
        return False
    display = _text(contact.get("displayName"))
    return display is None or display == company


def _add_name(card: Any, contact: dict[str, Any]) -> None:
    parts = {field: _text(contact.get(key)) or "" for field, key in (
        ("family", "surname"), ("given", "givenName"), ("additional", "middleName"), ("prefix", "title"), ("suffix", "generation"))}
    if any(parts.values()):
        card.add("n").value = Name(**parts)


def _add_org(card: Any, contact: dict[str, Any]) -> None:
    company, department = _text(contact.get("companyName")), _text(contact.get("department"))
    if company or department:
        card.add("org").value = [company or ""] + ([department] if department else [])


# ------------------------------------------------------------------------------ emails and phones


def _add_emails(card: Any, entries: Any, work_domains: frozenset[str]) -> None:
    addresses = [a for a in (_text(e.get("address")) for e in _as_list(entries) if isinstance(e, dict)) if a]
    for index, address in enumerate(addresses):
        line = card.add("email")
        line.value = address.strip()
        line.params["TYPE"] = ["work" if _in_domains(address, work_domains) else "home"]
        if index == 0:
            line.params["PREF"] = ["1"]


def _in_domains(address: str, domains: frozenset[str]) -> bool:
    domain = address.strip().rpartition("@")[2].lower()
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _add_phones(card: Any, contact: dict[str, Any]) -> None:
    for number in _as_list(contact.get("businessPhones")):
        _add_text(card, "tel", number, ("work", "voice"))
    for number in _as_list(contact.get("homePhones")):
        _add_text(card, "tel", number, ("home", "voice"))
    _add_text(card, "tel", contact.get("mobilePhone"), ("cell",))


def _add_addresses(card: Any, contact: dict[str, Any]) -> None:
    for key, kind in _ADDRESSES:
        address = contact.get(key)
        if not isinstance(address, dict):
            continue
        parts = {field: _text(address.get(graph)) or "" for field, graph in (
            ("street", "street"), ("city", "city"), ("region", "state"), ("code", "postalCode"), ("country", "countryOrRegion"))}
        if any(parts.values()):
            line = card.add("adr")
            line.value = Address(**parts)
            line.params["TYPE"] = [kind]


def _add_related(card: Any, contact: dict[str, Any]) -> None:
    """Spouse and children are names, not cards, hence VALUE=text (RFC 6350 §6.6.6)."""
    for name, kind in [(contact.get("spouseName"), "spouse")] + [(c, "child") for c in _as_list(contact.get("children"))]:
        text = _text(name)
        if text is not None:
            line = card.add("related")
            line.value = text
            line.params["VALUE"] = ["text"]
            line.params["TYPE"] = [kind]


# ------------------------------------------------------------------------------------------- dates


def _add_birthday(card: Any, value: Any, zone: str) -> None:
    text = _text(value)
    if text is None:
        return
    day = birthday_date(text, zone)
    line = card.add("bday")
    if day is None:  # keep what Graph said rather than lose it: vCard 4.0 allows a text birthday
        line.value = text
        line.params["VALUE"] = ["text"]
    elif day.year == _YEARLESS:
        line.value = f"--{day.month:02d}{day.day:02d}"
    else:
        line.value = f"{day.year:04d}{day.month:02d}{day.day:02d}"


def birthday_date(value: str, zone: str = "Europe/Amsterdam") -> date | None:
    """The calendar date a Graph birthday names when read in `zone`; None if it is no timestamp.

    Outlook writes local midnight with today's daylight-saving rules for every year, while zoneinfo
    knows history (the Netherlands had no summer time 1946-1976), so such a birthday can read as
    22:00 or 23:00 the evening before; a time in the last two hours of a day is taken as the
    midnight that follows. No client stores a birthday in those hours for that day itself.
    """
    moment = _timestamp(value)
    if moment is None:
        return None
    local = moment.astimezone(ZoneInfo(zone))
    return (local + timedelta(hours=2)).date() if local.hour >= 22 else local.date()


def _timestamp(value: str) -> datetime | None:
    text = _GRAPH_FRACTION.sub(r"\1", value.strip())
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # Graph times are UTC


def _add_rev(card: Any, value: Any) -> None:
    """REV is when the contact last changed at the source; omitted when Graph's value is unreadable."""
    text = _text(value)
    moment = _timestamp(text) if text else None
    if moment is not None:
        card.add("rev").value = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


# -------------------------------------------------------------------------------------------- URIs


class _UriValue(Behavior):
    """URI values take no backslash escapes in RFC 6350 (a data: URI needs its ';' and ',' as they
    are), and vobject's PHOTO behaviour would also leave the line unfolded; this one does neither."""

    name = "URI"


def _add_uri(card: Any, name: str, uri: str | None, types: tuple[str, ...] = ()) -> None:
    if uri is None:
        return
    line = card.add(name)
    line.behavior = _UriValue
    line.value = uri
    if types:
        line.params["TYPE"] = list(types)


def _uri_safe(text: str) -> str:
    """Percent-encodes what a URI cannot hold (spaces, controls, non-ASCII); keeps the rest."""
    return quote(text, safe="!#$%&'()*+,/:;=?@[]~-._")


def _im_uri(value: Any) -> str | None:
    """Exchange keeps IM addresses as SIP addresses, with or without the scheme."""
    text = _text(value)
    if text is None:
        return None
    text = text.strip()
    return _uri_safe(text if _SCHEME.match(text) else "sip:" + text)


def _web_uri(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else _uri_safe(text.strip())


def photo_media_type(photo: bytes) -> str:
    """Graph serves whatever the user uploaded; the signature tells what it is."""
    if photo.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if photo.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if photo.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return "application/octet-stream"  # kept byte for byte rather than dropped


def _photo_uri(photo: Any) -> str | None:
    if not isinstance(photo, (bytes, bytearray)) or not photo:
        return None
    return f"data:{photo_media_type(bytes(photo))};base64,{base64.b64encode(bytes(photo)).decode('ascii')}"

