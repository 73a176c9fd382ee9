"""WebDAV XML as Nextcloud writes it: multistatus answers with the d:, oc:, nc: and s: prefixes
clients (nc-py-api among them) match literally, and the property requests clients send."""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterable
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from migrator.sandbox.nextcloud.http import bad_request

DAV, OC, NC = "DAV:", "http://owncloud.org/ns", "http://nextcloud.org/ns"
PREFIXES = {DAV: "d", OC: "oc", NC: "nc", "http://sabredav.org/ns": "s"}
OPEN = ('<?xml version="1.0"?>\n<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" '
        'xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">')
CLOSE = "</d:multistatus>\n"

Prop = tuple[str, str]  # (namespace, local name)
# what a property handler gives: an XML fragment, or None when the node has no such property
PropValue = str | None
PropSource = Callable[[Prop], PropValue]


def href(*segments: str, folder: bool = False) -> str:
    """Percent-encoded as Sabre's encodePath does; folders end with a slash."""
    path = "/".join(s.strip("/") for s in segments if s.strip("/"))
    encoded = "/" + quote(path, safe="/:@()~")
    return encoded + "/" if folder and not encoded.endswith("/") else encoded


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(int(timestamp), usegmt=True)


def parse_propfind(body: bytes) -> list[Prop] | None:
    """The properties asked for, or None for allprop (also an empty body)."""
    if not body.strip():
        return None
    root = _parse(body)
    prop = root.find(f"{{{DAV}}}prop")
    if prop is None:
        return None  # allprop or propname
    return [_split(child.tag) for child in prop]


def parse_proppatch(body: bytes) -> list[tuple[Prop, str | None]]:
    """(property, new text) for each set, (property, None) for each remove."""
    root = _parse(body)
    changes: list[tuple[Prop, str | None]] = []
    for action in root:
        removing = _split(action.tag) == (DAV, "remove")
        for prop in action.iter(f"{{{DAV}}}prop"):
            for child in prop:
                changes.append((_split(child.tag), None if removing else (child.text or "")))
    return changes


def _parse(body: bytes) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise bad_request(f"The request body had an invalid XML body. (message: {exc})") from None


def _split(tag: str) -> Prop:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def element(prop: Prop, content: str = "") -> str:
    namespace, local = prop
    prefix = PREFIXES.get(namespace)
    if prefix:
        name, declaration = f"{prefix}:{local}", ""
    else:
        name, declaration = f"x1:{local}", f' xmlns:x1="{escape(namespace)}"'
    return f"<{name}{declaration}>{content}</{name}>" if content else f"<{name}{declaration}/>"


def response(target: str, asked: Iterable[Prop], source: PropSource) -> str:
    found, missing = [], []
    for prop in asked:
        value = source(prop)
        if value is None:
            missing.append(element(prop))
        else:
            found.append(element(prop, value))
    parts = [f"<d:response><d:href>{escape(target)}</d:href>"]
    if found:
        parts.append(f"<d:propstat><d:prop>{''.join(found)}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>")
    if missing:
        parts.append(f"<d:propstat><d:prop>{''.join(missing)}</d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>")
    parts.append("</d:response>")
    return "".join(parts)


def statuses(target: str, results: list[tuple[Prop, int]]) -> str:
    """One response for PROPPATCH: each property with the status its change got."""
    by_status: dict[int, list[str]] = {}
    for prop, status in results:
        by_status.setdefault(status, []).append(element(prop))
    reasons = {200: "OK", 403: "Forbidden", 424: "Failed Dependency"}
    parts = [f"<d:response><d:href>{escape(target)}</d:href>"]
    for status, props in by_status.items():
        parts.append(f"<d:propstat><d:prop>{''.join(props)}</d:prop><d:status>HTTP/1.1 {status} {reasons[status]}</d:status></d:propstat>")
    parts.append("</d:response>")
    return "".join(parts)
