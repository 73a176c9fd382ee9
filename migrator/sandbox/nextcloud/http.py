"""WSGI plumbing for the Nextcloud stand-in: the request as handlers see it, the response they
return, and errors answered in Sabre's XML error format (what Nextcloud's WebDAV server sends)."""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

PIECE = 1 << 20  # bodies move in 1 MiB pieces, never whole
REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content", 207: "Multi-Status",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 412: "Precondition Failed", 415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
    423: "Locked", 500: "Internal Server Error", 501: "Not Implemented", 507: "Insufficient Storage",
}
SABRE = "Sabre\\DAV\\Exception\\"


class DavError(Exception):
    """A WebDAV failure, answered with Sabre's `<d:error>` body naming the PHP exception class."""

    def __init__(self, status: int, exception: str, message: str, headers: dict[str, str] | None = None,
                 reason: bool = False) -> None:
        super().__init__(message)
        self.status, self.exception, self.message = status, exception, message
        self.headers = headers or {}
        self.reason = reason  # Nextcloud's own exceptions add <o:retry> and <o:reason>

    def response(self) -> Response:
        extra = ""
        if self.reason:
            extra = ('  <o:retry xmlns:o="o:">false</o:retry>\n'
                     f'  <o:reason xmlns:o="o:">{escape(self.message)}</o:reason>\n')
        body = ('<?xml version="1.0" encoding="utf-8"?>\n'
                '<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns">\n'
                f"  <s:exception>{escape(self.exception)}</s:exception>\n"
                f"  <s:message>{escape(self.message)}</s:message>\n{extra}</d:error>\n").encode()
        return Response(self.status, body, {"Content-Type": "application/xml; charset=utf-8", **self.headers})


def not_found(message: str) -> DavError:
    return DavError(404, SABRE + "NotFound", message)


def forbidden(message: str) -> DavError:
    return DavError(403, SABRE + "Forbidden", message)


def bad_request(message: str) -> DavError:
    return DavError(400, SABRE + "BadRequest", message)


def conflict(message: str) -> DavError:
    return DavError(409, SABRE + "Conflict", message)


def precondition_failed(message: str) -> DavError:
    return DavError(412, SABRE + "PreconditionFailed", message)


def invalid_path(message: str) -> DavError:
    return DavError(400, "OCA\\DAV\\Connector\\Sabre\\Exception\\InvalidPath", message, reason=True)


def insufficient_storage(message: str) -> DavError:
    return DavError(507, SABRE + "InsufficientStorage", message)


class ConnectionCut(Exception):
    """Raised after the connection was shut down on purpose; the server answers nothing."""


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    @classmethod
    def xml(cls, text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, text.encode(), {"Content-Type": "application/xml; charset=utf-8", **(headers or {})})


class Request:
    """One request; the body stays in `wsgi.input` until a handler streams or reads it."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = environ["REQUEST_METHOD"].upper()
        raw_path = environ.get("PATH_INFO", "")
        # PEP 3333 hands the path over as latin-1 decoded bytes; URLs carry UTF-8
        # and Nextcloud keeps names in Unicode NFC, whatever form the client sent
        self.path = unicodedata.normalize("NFC", raw_path.encode("latin-1").decode("utf-8", "replace"))
        self.query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        self.user: str | None = None
        scheme = environ.get("wsgi.url_scheme", "http")
        self.base_url = f"{scheme}://{environ.get('HTTP_HOST') or environ.get('SERVER_NAME', '')}"
        self._body: bytes | None = None
        self.read_bytes = 0

    def header(self, name: str, default: str = "") -> str:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            return self.environ.get(key) or default
        return self.environ.get("HTTP_" + key, default)

    @property
    def content_length(self) -> int | None:
        value = self.header("Content-Length")
        return int(value) if value.isdigit() else None

    def pieces(self) -> Iterator[bytes]:
        """The body in pieces of at most PIECE bytes, never more than Content-Length."""
        stream = self.environ["wsgi.input"]
        remaining = self.content_length
        if remaining is None and self.header("Transfer-Encoding").lower() != "chunked":
            return
        while remaining is None or remaining > 0:
            piece = stream.read(PIECE if remaining is None else min(PIECE, remaining))
            if not piece:
                return
            if remaining is not None:
                remaining -= len(piece)
            self.read_bytes += len(piece)
            yield piece

    def body(self, limit: int = 8 << 20) -> bytes:
        """A small body (XML, form or JSON) read whole; larger ones are refused."""
        if self._body is None:
            data = bytearray()
            for piece in self.pieces():
                data += piece
                if len(data) > limit:
                    raise bad_request("Request body too large")
            self._body = bytes(data)
        return self._body

    def params(self) -> dict[str, str]:
        """Query, form and JSON parameters merged, as PHP's request object does."""
        params = dict(self.query)
        content_type = self.header("Content-Type").lower()
        body = self.body()
        if body and "json" in content_type:
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = {}
            if isinstance(decoded, dict):
                params.update({k: _text(v) for k, v in decoded.items() if v is not None})
        elif body:
            params.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()})
        return params

    def destination_path(self) -> str | None:
        """The path part of the Destination header (an absolute URL or an absolute path), decoded."""
        destination = self.header("Destination")
        if not destination:
            return None
        path = unicodedata.normalize("NFC", unquote(urlsplit(destination).path))
        check_segments(path)
        return path


def check_segments(path: str) -> None:
    """A path naming "." or ".." never reaches the disk."""
    if any(segment.strip() in (".", "..") for segment in path.split("/")):
        raise invalid_path("Dot files are not allowed")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def basic_credentials(environ: dict[str, Any]) -> tuple[str, str] | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
