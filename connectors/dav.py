"""A sink that writes calendar objects to CalDAV and contacts to CardDAV (Radicale, Nextcloud/sabre).

Every write is a plain WebDAV PUT sent by this module, because caldav's `add_event` never sends
preconditions: `If-None-Match: *` makes a create atomic (a second create of one name answers 412),
`If-Match: <etag>` makes a replace refuse an object someone changed meanwhile.

Bytes kept exactly. A DAV server parses what it is given and may store it re-serialised: Radicale
writes vobject's rendering, which re-orders properties and folds lines, so the stored body is not
the body sent. The engine compares size and sha256 of what it sent with what `stat` reports, so:

* a valid object (a payload beginning with BEGIN:VCALENDAR / BEGIN:VCARD) is stored as sent plus
  one property, `X-MIGRATOR-SENT;SIZE=n;CANONICAL=<sha256 of its canonical form>:<sha256 of the
  bytes sent>`. `find` and `stat` report that size and sha256 only when the stored object, brought
  to canonical form (vobject's parse and serialise, the rendering Radicale itself stores), still
  equals what was sent; an object edited on the server reports the hash of its stored body instead.
* anything else (the engine's own probes, bytes that are not iCalendar/vCard at all) is wrapped in
  a minimal valid object, the same bytes for the same input, carrying them base64-encoded in
  `X-MIGRATOR-CARRIER`; `find` and `stat` decode it.

dest_id is the object's URL path on the server (its href), e.g. "/ada/agenda/<uid>.ics".
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import quote, unquote

import vobject

from connectors.dav_http import Answer, DavConnection, Login, probe_home, said
from migrator.errors import ItemError, TransientError
from migrator.model import Capabilities, DestRef, Target

KINDS = {
    "caldav": ("VCALENDAR", "text/calendar; charset=utf-8"),
    "carddav": ("VCARD", "text/vcard; charset=utf-8"),
}
SENT_PROPERTY = "X-MIGRATOR-SENT"
CARRIER_PROPERTY = "X-MIGRATOR-CARRIER"
DAV = "{DAV:}"
_FOLD = re.compile(r"\r?\n[ \t]")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MKCALENDAR = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:set><D:prop><D:displayname>{name}</D:displayname></D:prop></D:set></C:mkcalendar>"
)
_MKADDRESSBOOK = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
    "<D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>"
    "<D:displayname>{name}</D:displayname></D:prop></D:set></D:mkcol>"
)
_PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getetag/></D:prop></D:propfind>'
)
_COLLECTION_TYPES = {"caldav": "{urn:ietf:params:xml:ns:caldav}calendar", "carddav": "{urn:ietf:params:xml:ns:carddav}addressbook"}


# ---------------------------------------------------------------- names


def collection_slug(path: tuple[str, ...]) -> str:
    """A URL-safe collection name for a calendar or address book path, the same on every run.

    Names that survive as they are stay readable; any other gets its letters without accents plus
    a short hash of the whole name, so "Agenda", "Agénda" and "Agenda 2" stay three collections.
    """
    if not path or any(not part for part in path):
        raise ItemError("a calendar or address book needs a non-empty name")
    name = "/".join(path)
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG_UNSAFE.sub("-", ascii_name).strip("-.")[:60]
    if slug == name:
        return slug
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return f"{slug}-{digest}" if slug else digest


def display_name(path: tuple[str, ...]) -> str:
    return "/".join(path)


def _object_segment(dest_key: str) -> str:
    if not dest_key or dest_key in (".", "..") or "/" in dest_key or any(ord(c) < 0x20 for c in dest_key):
        raise ItemError(f"{dest_key!r} cannot be a calendar or contact object name")
    return quote(dest_key, safe="@:+,=~")


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------- carriers and stamps


def _unfold(text: str) -> list[str]:
    return _FOLD.sub("", text).splitlines()


def _property(lines: list[str], name: str) -> tuple[dict[str, str], str] | None:
    """(parameters, value) of the first content line called `name`, or None."""
    for line in lines:
        head, sep, value = line.partition(":")
        if not sep:
            continue
        prop, *params = head.split(";")
        if prop.strip().upper() == name:
            parsed = {}
            for param in params:
                key, _, val = param.partition("=")
                parsed[key.strip().upper()] = val.strip().strip('"')
            return parsed, value
    return None


def canonical_digest(text: str) -> str | None:
    """sha256 of an object as vobject renders it without our stamp, or None when it will not parse.

    Radicale stores exactly that rendering, and rendering a rendering changes nothing, so an object
    stored unchanged has the canonical digest it had when sent, whatever the server did to its bytes.
    """
    kept = [line for line in _unfold(text) if not line.upper().startswith((SENT_PROPERTY + ";", SENT_PROPERTY + ":"))]
    try:
        rendered = vobject.readOne("\r\n".join(kept) + "\r\n").serialize()
    except (vobject.base.VObjectError, ValueError, TypeError, AttributeError, KeyError, IndexError):
        # vobject raises all of these for text it cannot parse or render
        return None
    return hashlib.sha256(rendered.encode("utf-8")).hexdigest()


def _is_native(data: bytes, tag: str) -> bool:
    """Whether the bytes are an object the server can hold as it is (cheap: the caller's word)."""
    if not data[:32].upper().startswith(f"BEGIN:{tag}".encode()):
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    upper = text.upper()
    return CARRIER_PROPERTY not in upper and SENT_PROPERTY not in upper


def _carrier(data: bytes, kind: str, dest_key: str) -> bytes:
    """A minimal valid object holding `data`; the same bytes always give the same object."""
    uid = "migrator-carrier-" + hashlib.sha256(dest_key.encode("utf-8")).hexdigest()[:32]
    encoded = base64.b64encode(data).decode("ascii")
    if kind == "caldav":
        lines = [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//m365-migrator//carrier//EN",
            "BEGIN:VJOURNAL",
            f"UID:{uid}",
            "DTSTAMP:19700101T000000Z",
            "SUMMARY:Migrated item kept as data",
            f"{CARRIER_PROPERTY};SIZE={len(data)}:{encoded}",
            "END:VJOURNAL",
            "END:VCALENDAR",
        ]
    else:
        lines = [
            "BEGIN:VCARD",
            "VERSION:3.0",
            f"UID:{uid}",
            "FN:Migrated item kept as data",
            "N:;;;;",
            f"{CARRIER_PROPERTY};SIZE={len(data)}:{encoded}",
            "END:VCARD",
        ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _stamped(data: bytes, canonical: str) -> bytes:
    """`data` with the stamp as the first property, in the line ending the object already uses."""
    newline = b"\r\n" if b"\r\n" in data[:200] else b"\n"
    first_end = data.index(b"\n") + 1
    stamp = f"{SENT_PROPERTY};SIZE={len(data)};CANONICAL={canonical}:{hashlib.sha256(data).hexdigest()}".encode("ascii")
    return data[:first_end] + stamp + newline + data[first_end:]


def encode_object(data: bytes, kind: str, dest_key: str) -> bytes:
    """What is PUT for the item bytes `data`."""
    tag = KINDS[kind][0]
    if not _is_native(data, tag):
        return _carrier(data, kind, dest_key)
    canonical = canonical_digest(data.decode("utf-8"))
    if canonical is None:
        return data  # the server will judge it and refuse it in its own words
    return _stamped(data, canonical)


def described(stored: bytes) -> tuple[int, str]:
    """(size, sha256) of the item a stored body stands for: carried bytes, the stamped original, or itself."""
    own = (len(stored), hashlib.sha256(stored).hexdigest())
    try:
        text = stored.decode("utf-8")
    except UnicodeDecodeError:
        return own
    lines = _unfold(text)
    carried = _property(lines, CARRIER_PROPERTY)
    if carried is not None:
        try:
            data = base64.b64decode(carried[1].strip(), validate=True)
        except ValueError:  # binascii.Error is one
            return own
        return len(data), hashlib.sha256(data).hexdigest()
    stamp = _property(lines, SENT_PROPERTY)
    if stamp is None:
        return own
    params, sha = stamp
    try:
        size = int(params.get("SIZE", ""))
    except ValueError:
        return own
    if params.get("CANONICAL") and canonical_digest(text) == params["CANONICAL"]:
        return size, sha.strip()
    return own


# ---------------------------------------------------------------- the sink


class DavSink:
    """Calendars (kind="caldav") or address books (kind="carddav") of each owner on one DAV server."""

    caps = Capabilities(hashes=("sha256",), cheap_find=True, listing=True, delete=True)

    def __init__(
        self,
        base_url: str,
        kind: str = "caldav",
        login: Login | None = None,
        home: Callable[[str], str] | None = None,
        ca_file: str | None = None,
        timeout: float = 60,
        skip_tls_verify: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if login is None:
            raise ValueError("a DAV sink needs login: owner -> (user, password)")
        self.kind = kind
        self.tag, self.content_type = KINDS[kind]
        self._home = home
        self.http = DavConnection(base_url, login, ca_file, timeout, skip_tls_verify=skip_tls_verify)

    async def close(self) -> None:
        await self.http.close()

    # ------------------------------------------------------------ paths and requests

    def home_path(self, owner: str) -> str:
        """The owner's home collection as a URL path below the base URL, with a trailing slash."""
        user, _ = self.http.account(owner)
        home = self._home(owner) if self._home is not None else f"/{quote(user, safe='@')}/"
        return "/" + home.strip("/") + "/"

    def collection_path(self, owner: str, path: tuple[str, ...]) -> str:
        return f"{self.home_path(owner)}{collection_slug(path)}/"

    def _href(self, url_path: str) -> str:
        return self.http.href(url_path)

    def _relative(self, href: str) -> str:
        return self.http.relative(href)

    async def _request(self, owner: str, method: str, url_path: str, **kwargs) -> Answer:
        return await self.http.request(owner, method, url_path, **kwargs)

    # ------------------------------------------------------------ Sink

    async def probe(self, owner: str) -> str:
        """The owner's home collection answers (what preflight checks before any data moves)."""
        return await probe_home(self.http, owner, self.home_path(owner), _PROPFIND.encode(), self.kind)

    async def ensure_container(self, owner: str, path: tuple[str, ...]) -> str:
        collection = self.collection_path(owner, path)
        # Looking first spares an error answer when it exists (Radicale delays 403s by a second).
        if await self._collection_type(owner, collection) == _COLLECTION_TYPES[self.kind]:
            return collection
        name = _xml_text(display_name(path))
        if self.kind == "caldav":
            answer = await self._request(owner, "MKCALENDAR", collection, content=_MKCALENDAR.format(name=name).encode("utf-8"), headers=_XML)
        else:
            answer = await self._request(owner, "MKCOL", collection, content=_MKADDRESSBOOK.format(name=name).encode("utf-8"), headers=_XML)
        if answer.status in (200, 201, 204):
            return collection
        # Servers say "it exists" differently: 405 (sabre, RFC 4791), 409 or 403 (Radicale).
        existing = await self._collection_type(owner, collection)
        if existing is None:
            raise ItemError(f"cannot create {display_name(path)!r} at {collection}: {said(answer)}")
        if existing != _COLLECTION_TYPES[self.kind]:
            raise ItemError(f"{collection} exists but is not {'a calendar' if self.kind == 'caldav' else 'an address book'}")
        return collection

    async def find(self, owner: str, path: tuple[str, ...], target: Target) -> DestRef | None:
        url_path = self.collection_path(owner, path) + _object_segment(target.dest_key)
        return await self._read(owner, target.dest_key, url_path)

    async def put(self, owner: str, path: tuple[str, ...], target: Target, replace: DestRef | None = None) -> DestRef:
        """Creates (If-None-Match: *) or replaces (If-Match: replace.etag) one object.

        A `replace` without an etag overwrites unconditionally: there is nothing to compare with.
        """
        collection = self.collection_path(owner, path)
        url_path = collection + _object_segment(target.dest_key)
        data = await target.payload.read_all()  # objects are small (servers cap them near 10 MB)
        body = encode_object(data, self.kind, target.dest_key)
        headers = {"Content-Type": str(target.metadata.get("content_type") or self.content_type)}
        if replace is None:
            headers["If-None-Match"] = "*"
        elif replace.etag:
            headers["If-Match"] = replace.etag
        answer = await self._request(owner, "PUT", url_path, content=body, headers=headers)
        if answer.status == 409:
            # The collection is missing (removed, or never ensured): create it and try once more.
            await self.ensure_container(owner, path)
            answer = await self._request(owner, "PUT", url_path, content=body, headers=headers)
        if answer.status == 412:
            raise await self._precondition_failed(owner, target.dest_key, url_path, replace, answer)
        if answer.status not in (200, 201, 204):
            raise ItemError(f"the server refused {target.dest_key}: {said(answer)}")
        etag = answer.headers.get("ETag") or await self._etag(owner, url_path)
        return DestRef(target.dest_key, self._href(url_path), len(data), hashlib.sha256(data).hexdigest(), etag)

    async def stat(self, owner: str, ref: DestRef) -> DestRef | None:
        return await self._read(owner, ref.dest_key, self._relative(ref.dest_id))

    async def read(self, owner: str, ref: DestRef) -> bytes | None:
        """The stored object as the server returns it, for checks beyond its hash."""
        answer = await self._request(owner, "GET", self._relative(ref.dest_id))
        if answer.status in (404, 410):
            return None
        if answer.status != 200:
            raise ItemError(f"cannot read {ref.dest_key}: {said(answer)}")
        return answer.content

    async def list_keys(self, owner: str, path: tuple[str, ...]) -> set[str]:
        collection = self.collection_path(owner, path)
        answer = await self._request(owner, "PROPFIND", collection, content=_PROPFIND.encode(), headers={**_XML, "Depth": "1"})
        if answer.status == 404:
            return set()
        if answer.status != 207:
            raise ItemError(f"cannot list {collection}: {said(answer)}")
        keys = set()
        for href, types in _multistatus(answer.content):
            relative = self._relative(href)
            if "{DAV:}collection" in types or relative.rstrip("/") == collection.rstrip("/"):
                continue
            keys.add(unquote(relative.rstrip("/").rsplit("/", 1)[-1]))
        return keys

    async def delete(self, owner: str, ref: DestRef) -> bool:
        """Removes a stored object; False when it was already gone."""
        answer = await self._request(owner, "DELETE", self._relative(ref.dest_id))
        if answer.status == 404:
            return False
        if answer.status not in (200, 204):
            raise ItemError(f"cannot delete {ref.dest_key}: {said(answer)}")
        return True

    # ------------------------------------------------------------ helpers

    async def _read(self, owner: str, dest_key: str, url_path: str) -> DestRef | None:
        answer = await self._request(owner, "GET", url_path)
        if answer.status in (404, 410):
            return None
        if answer.status != 200:
            raise ItemError(f"cannot read {dest_key}: {said(answer)}")
        size, sha = described(answer.content)
        return DestRef(dest_key, self._href(url_path), size, sha, answer.headers.get("ETag"))

    async def _etag(self, owner: str, url_path: str) -> str | None:
        answer = await self._request(owner, "HEAD", url_path)
        return answer.headers.get("ETag") if answer.status == 200 else None

    async def _precondition_failed(self, owner: str, dest_key: str, url_path: str, replace: DestRef | None, answer: Answer) -> ItemError:
        """Why a 412 happened: the object exists / changed / vanished, or the server refused it otherwise."""
        current = await self._etag_or_none(owner, url_path)
        if replace is None and current is not None:
            return ItemError(f"{dest_key} already exists on the server ({said(answer)})")
        if replace is not None and current is None:
            return ItemError(f"{dest_key} was removed on the server meanwhile ({said(answer)})")
        if replace is not None and current != replace.etag:
            return ItemError(f"{dest_key} changed on the server meanwhile ({said(answer)})")
        # Radicale answers 412 for an object above its max_resource_size, too.
        return ItemError(f"the server refused {dest_key}: {said(answer)} (not a conflict: it may exceed the server's size limit)")

    async def _etag_or_none(self, owner: str, url_path: str) -> str | None:
        answer = await self._request(owner, "HEAD", url_path)
        if answer.status in (404, 410):
            return None
        return answer.headers.get("ETag") or "(no etag)"

    async def _collection_type(self, owner: str, collection: str) -> str | None:
        """The DAV collection type (calendar, addressbook, or plain) of an existing collection, or None."""
        answer = await self._request(owner, "PROPFIND", collection, content=_PROPFIND.encode(), headers={**_XML, "Depth": "0"})
        if answer.status != 207:
            return None
        for _, types in _multistatus(answer.content):
            for kind in _COLLECTION_TYPES.values():
                if kind in types:
                    return kind
            return "{DAV:}collection" if "{DAV:}collection" in types else "(not a collection)"
        return None


_XML = {"Content-Type": "application/xml; charset=utf-8"}


def _multistatus(content: bytes) -> list[tuple[str, set[str]]]:
    """(href, resourcetype element names) for every response of a 207 body."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise TransientError(f"unreadable multistatus answer: {exc}") from None
    rows = []
    for response in root.iter(f"{DAV}response"):
        href = response.findtext(f"{DAV}href") or ""
        types = {child.tag for rt in response.iter(f"{DAV}resourcetype") for child in rt}
        rows.append((href, types))
    return rows
