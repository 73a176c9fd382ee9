"""A small HTTPS framework for the sandbox: requests, responses, Graph's error body, and the
threaded TLS server that streams large bodies and can drop connections on purpose."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class GraphError(Exception):
    """Answered as Graph does: {"error": {"code", "message", "innerError"}}."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class DropConnection(Exception):
    """Closes the socket without an answer, as a failing load balancer would."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str
    params: dict[str, str] = field(default_factory=dict)
    principal: Any = None  # set by authentication: who is calling

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise GraphError(400, "BadRequest", "The request body is not valid JSON.") from None

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None  # for streamed bodies

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        data = json.dumps(payload, ensure_ascii=False).encode()
        return cls(status, data, {"Content-Type": "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8", **(headers or {})})


def error_body(code: str, message: str, client_request_id: str = "") -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
                "client-request-id": client_request_id or str(uuid.uuid4()),
            },
        }
    }


Handler = Callable[[Request], Response]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """`pattern` uses {name} for one path segment and {name:path} for the rest of the path."""
        pieces = re.split(r"({\w+(?::path)?})", pattern)
        regex = "".join(
            (f"(?P<{p[1:-1].split(':')[0]}>.+)" if p.endswith(":path}") else f"(?P<{p[1:-1]}>[^/]+)") if p.startswith("{") else re.escape(p)
            for p in pieces
        )
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed = False
        for route_method, regex, handler in self._routes:
            found = regex.match(path)
            if found:
                if route_method == method:
                    return handler, {k: unquote(v) for k, v in found.groupdict().items()}
                allowed = True
        if allowed:
            raise GraphError(405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed on this resource.")
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{path.rsplit('/', 1)[-1]}'.")


def parse_request_target(target: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return parts.path, query


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], dispatch: Callable[[Request], Response], tls: ssl.SSLContext | None) -> None:
        super().__init__(address, _Handler)
        self.dispatch = dispatch
        self.tls = tls

    def get_request(self):
        conn, addr = super().get_request()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: don't wait 40 ms between them
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and the demo read stdout
        return

    def _handle(self) -> None:
        try:
            if isinstance(self.connection, ssl.SSLSocket):
                self.connection.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, query = parse_request_target(self.path)
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        scheme = "https" if self.server.tls is not None else "http"
        request = Request(self.command, path, query, {k.lower(): v for k, v in self.headers.items()}, body, f"{scheme}://{host}")
        try:
            response = self.server.dispatch(request)
        except DropConnection:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if isinstance(response.body, (bytes, bytearray)):
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            return
        self.send_header("Content-Length", str(response.length))
        self.end_headers()
        try:
            for chunk in response.body:
                if isinstance(chunk, DropConnection):
                    raise chunk
                self.wfile.write(chunk)
        except (DropConnection, BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class ServerThread:
    """Runs a SandboxHTTPServer in a background thread; usable from pytest fixtures."""

    def __init__(self, server: SandboxHTTPServer) -> None:
        self.server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
