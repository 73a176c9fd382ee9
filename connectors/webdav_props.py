"""PROPFIND for files: the request body and what each answered resource says about itself."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlsplit

from migrator.errors import TransientError

DAV = "{DAV:}"
OC = "{http://owncloud.org/ns}"

# oc: properties are Nextcloud's and ownCloud's; other servers answer them 404 within the 207.
PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
    b"<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/>"
    b"<oc:checksums/><oc:fileid/>"
    b"</d:prop></d:propfind>"
)


@dataclass(frozen=True)
class Resource:
    path: str  # decoded absolute path on the server, without a trailing slash
    is_folder: bool
    size: int | None = None
    etag: str | None = None
    mtime: float | None = None
    checksums: dict[str, str] = field(default_factory=dict)  # "SHA256" -> hex, as the server stores them
    file_id: str | None = None


def _found_props(response: ET.Element) -> ET.Element:
    """The <prop> of the 200 propstat (unknown properties come back in a 404 propstat)."""
    merged = ET.Element(f"{DAV}prop")
    for propstat in response.iter(f"{DAV}propstat"):
        status = propstat.findtext(f"{DAV}status") or ""
        if " 200 " in status or status.endswith(" 200"):
            for prop in propstat.iter(f"{DAV}prop"):
                merged.extend(list(prop))
    return merged


def _mtime(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


def _checksums(prop: ET.Element) -> dict[str, str]:
    found: dict[str, str] = {}
    for element in prop.iter(f"{OC}checksum"):
        for token in (element.text or "").split():
            kind, _, value = token.partition(":")
            if value:
                found[kind.upper()] = value.lower()
    return found


def parse_multistatus(content: bytes) -> list[Resource]:
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise TransientError(f"unreadable PROPFIND answer: {exc}") from None
    resources = []
    for response in root.iter(f"{DAV}response"):
        href = response.findtext(f"{DAV}href") or ""
        prop = _found_props(response)
        is_folder = prop.find(f"{DAV}resourcetype/{DAV}collection") is not None
        length = prop.findtext(f"{DAV}getcontentlength")
        resources.append(Resource(
            path=unquote(urlsplit(href).path).rstrip("/"),
            is_folder=is_folder,
            size=int(length) if length and length.strip().isdigit() else None,
            etag=prop.findtext(f"{DAV}getetag"),
            mtime=_mtime(prop.findtext(f"{DAV}getlastmodified")),
            checksums=_checksums(prop),
            file_id=prop.findtext(f"{OC}fileid"),
        ))
    return resources
