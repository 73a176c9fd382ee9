"""WebDAV SEARCH (RFC 5323) at /remote.php/dav, as Nextcloud offers it over a user's files:
`basicsearch` with a select, a scope /files/<user>/<path>, and a where of eq, gt, gte, lt, lte,
like, is-collection, and, or, not on file id, name, content type, size, modification time and
favorite. Clients use it to find a node by file id (nc-py-api does after MOVE and COPY)."""

from __future__ import annotations

import datetime as dt
import email.utils
import fnmatch
import re
from collections.abc import Callable
from xml.etree import ElementTree

from migrator.sandbox.nextcloud import davxml
from migrator.sandbox.nextcloud.dav import FilesDav, files_href
from migrator.sandbox.nextcloud.davxml import DAV, NC, OC
from migrator.sandbox.nextcloud.http import Request, Response, bad_request, forbidden
from migrator.sandbox.nextcloud.namespace import Entry
from migrator.sandbox.nextcloud.properties import NodeProperties

Test = Callable[[Entry, NodeProperties], bool]


def _literal_time(text: str) -> float:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return float(text)
    try:
        return dt.datetime.fromisoformat(text).timestamp()  # 3.11 reads a trailing Z
    except ValueError:
        return email.utils.parsedate_to_datetime(text).timestamp()


def _number(text: str) -> float:
    """PHP's numeric cast: the leading number of the text ("00000012ocabc" is 12), 0 if none."""
    match = re.match(r"\s*-?\d+(\.\d+)?", text)
    return float(match.group(0)) if match else 0.0


def _value(prop: tuple[str, str], entry: Entry, props: NodeProperties) -> str | float | None:
    namespace, name = prop
    if prop == (OC, "fileid"):
        return float(props.meta.fileid)
    if prop == (DAV, "displayname"):
        return entry.location.name
    if prop == (DAV, "getcontenttype"):
        return "httpd/unix-directory" if entry.is_dir else props((DAV, "getcontenttype"))
    if prop in ((OC, "size"), (DAV, "getcontentlength")):
        return float(props.size)
    if prop in ((DAV, "getlastmodified"), (DAV, "creationdate"), (NC, "upload_time"), (NC, "creation_time")):
        return entry.mtime if prop == (DAV, "getlastmodified") else 0.0
    if prop == (OC, "favorite"):
        return 0.0
    raise bad_request(f"Unsupported search property {{{namespace}}}{name}")


def _condition(node: ElementTree.Element) -> Test:
    operator = node.tag.split("}")[-1]
    children = list(node)
    if operator in ("and", "or"):
        tests = [_condition(c) for c in children]
        if operator == "and":
            return lambda e, p: all(t(e, p) for t in tests)
        return lambda e, p: any(t(e, p) for t in tests)
    if operator == "not":
        inner = _condition(children[0])
        return lambda e, p: not inner(e, p)
    if operator == "is-collection":
        return lambda e, p: e.is_dir
    prop_element = node.find(f"{{{DAV}}}prop")
    if prop_element is None or len(prop_element) == 0:
        raise bad_request(f"A {operator} condition needs a property")
    tag = prop_element[0].tag
    prop = (tag[1:].split("}")[0], tag.split("}")[-1])
    literal = node.findtext(f"{{{DAV}}}literal") or ""

    def compare(entry: Entry, props: NodeProperties) -> bool:
        value = _value(prop, entry, props)
        if operator == "like":
            return fnmatch.fnmatchcase(str(value).lower(), literal.lower().replace("%", "*"))
        if isinstance(value, float):
            wanted: str | float = _literal_time(literal) if prop[1] in ("getlastmodified", "creationdate") else _number(literal)
        else:
            wanted = literal
        if operator == "eq":
            return value == wanted
        if operator in ("gt", "gte", "lt", "lte") and isinstance(value, float) and isinstance(wanted, float):
            return {"gt": value > wanted, "gte": value >= wanted, "lt": value < wanted, "lte": value <= wanted}[operator]
        raise bad_request(f"Unsupported search operator {operator}")
    return compare


def search(files: FilesDav, request: Request) -> Response:
    try:
        root = ElementTree.fromstring(request.body())
    except ElementTree.ParseError as exc:
        raise bad_request(f"The request body had an invalid XML body. (message: {exc})") from None
    basic = root.find(f"{{{DAV}}}basicsearch")
    if basic is None:
        raise bad_request("Only basicsearch is supported")
    select = basic.find(f"{{{DAV}}}select/{{{DAV}}}prop")
    asked = [(c.tag[1:].split("}")[0], c.tag.split("}")[-1]) for c in select] if select is not None else [(DAV, "getetag")]
    scope = basic.findtext(f"{{{DAV}}}from/{{{DAV}}}scope/{{{DAV}}}href") or ""
    parts = scope.strip("/").split("/", 2)
    if len(parts) < 2 or parts[0] != "files":
        raise bad_request("The search scope must be a folder under /files/<user>")
    if parts[1] != request.user:
        raise forbidden("Searching another user's files is not allowed")
    assert request.user is not None
    start = files.existing(files.namespace.locate(request.user, parts[2] if len(parts) > 2 else ""))
    where = basic.find(f"{{{DAV}}}where")
    test: Test = _condition(where[0]) if where is not None and len(where) else (lambda e, p: True)
    depth = basic.findtext(f"{{{DAV}}}from/{{{DAV}}}scope/{{{DAV}}}depth") or "infinity"
    candidates = files.walk(start) if depth == "infinity" else iter(files.namespace.children(start))
    body = [davxml.OPEN]
    for entry in candidates:
        props = NodeProperties(files.instance, entry)
        if test(entry, props):
            body.append(davxml.response(files_href(entry.location, entry.is_dir), asked, props))
    body.append(davxml.CLOSE)
    return Response.xml("".join(body), 207)
