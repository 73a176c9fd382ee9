"""A small asyncio IMAP4rev1 client: what a mail sink needs and no more, with message bodies streamed
in both directions so a 30 MB message never sits in memory (imaplib is synchronous and reads every
literal whole). One command runs at a time per connection; the caller owns the connection."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mappings.imap_utf7 import decode as decode_mailbox  # noqa: F401 - part of this module's API
from mappings.imap_utf7 import encode as encode_mailbox  # noqa: F401 - part of this module's API
from migrator.tls import UntrustedCertificate

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
MAX_LINE = 64 * 1024 * 1024  # SEARCH answers arrive as one line; even a long one is bounded
READ_AHEAD = 64 * 1024  # the stream reader pauses the socket beyond twice this
STATUS_KINDS = {"OK", "NO", "BAD", "BYE", "PREAUTH"}
# A line announcing a literal ends with {n} (or ~{n} for BINARY); the literal follows the CRLF.
_LITERAL_AT_END = re.compile(rb"~?\{(\d+)\+?\}\r\n\Z")
_UNTAGGED = re.compile(rb"\* (?:(\d+) )?([A-Za-z0-9.=-]+) ?")
_TAGGED = re.compile(rb"(\S+) (OK|NO|BAD|BYE)\b ?", re.IGNORECASE)
_CODE = re.compile(r"\[([^\]]*)\] ?(.*)", re.DOTALL)


# ---------------------------------------------------------------- errors


class ImapError(Exception):
    """A tagged NO or BAD: the command failed, the connection is fine."""

    def __init__(self, status: str, code: str | None, text: str) -> None:
        super().__init__(f"[{code}] {text}" if code else text)
        self.status, self.code, self.text = status, code, text

    @property
    def code_name(self) -> str:
        return (self.code or "").split(" ", 1)[0].upper()


class ImapClosed(Exception):
    """The connection is gone or unusable: dropped, timed out, BYE, or left mid-command."""


# ---------------------------------------------------------------- arguments


@dataclass
class Literal:
    """A command argument sent as a literal; `write` must send exactly `size` bytes through `send`."""

    size: int
    write: Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]]

    @classmethod
    def of(cls, data: bytes) -> Literal:
        async def write(send: Callable[[bytes], Awaitable[None]]) -> None:
            await send(data)

        return cls(len(data), write)


Arg = bytes | Literal


def astring(value: str) -> Arg:
    """A quoted string where IMAP allows one, else a literal (8-bit text, CR, LF)."""
    raw = value.encode("utf-8")
    if any(byte > 0x7E or byte < 0x20 for byte in raw):
        return Literal.of(raw)
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(flags).encode("ascii") + b")"


# ---------------------------------------------------------------- responses


@dataclass(frozen=True)
class Streamed:
    """Stands in a parsed response for a literal that went to a consumer instead of memory."""

    size: int


@dataclass
class Untagged:
    kind: str
    number: int | None = None
    data: list[Any] = field(default_factory=list)
    code: str | None = None
    text: str = ""


@dataclass
class Response:
    status: str
    code: str | None
    text: str
    untagged: list[Untagged]

    def of_kind(self, kind: str) -> list[Untagged]:
        return [u for u in self.untagged if u.kind == kind]

    def codes(self) -> list[str]:
        """Response codes of the tagged line and of untagged OKs, e.g. 'UIDVALIDITY 42'."""
        found = [u.code for u in self.untagged if u.kind == "OK" and u.code]
        return found + ([self.code] if self.code else [])


def text_of(token: Any) -> str:
    if isinstance(token, bytes):
        return token.decode("utf-8", "replace")
    return "" if token is None else str(token)


def _split_code(rest: bytes) -> tuple[str | None, str]:
    text = rest.decode("utf-8", "replace").strip()
    match = _CODE.match(text)
    return (match.group(1), match.group(2)) if match else (None, text)


def _quoted(text: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    pos += 1
    while pos < len(text):
        byte = text[pos]
        if byte == 0x5C and pos + 1 < len(text):  # backslash escapes the next character
            out.append(text[pos + 1])
            pos += 2
        elif byte == 0x22:
            return bytes(out), pos + 1
        else:
            out.append(byte)
            pos += 1
    return bytes(out), pos


def _atom(text: bytes, pos: int) -> tuple[str, int]:
    """An atom, keeping a section such as BODY[HEADER.FIELDS (A B)]<0> whole despite its spaces."""
    start = pos
    while pos < len(text) and text[pos] not in b" ()":
        if text[pos] == 0x5B:  # "["
            close = text.find(b"]", pos)
            pos = len(text) if close < 0 else close + 1
        else:
            pos += 1
    return text[start:pos].decode("utf-8", "replace"), pos


def tokenize(texts: list[bytes], literals: list[Any], start: int = 0) -> list[Any]:
    """Nested lists of atoms (str), strings (bytes), NIL (None); literal i follows text i."""
    stack: list[list[Any]] = [[]]
    for index, text in enumerate(texts):
        pos = start if index == 0 else 0
        while pos < len(text):
            char = text[pos : pos + 1]
            if char == b" ":
                pos += 1
            elif char == b"(":
                stack[-1].append([])
                stack.append(stack[-1][-1])
                pos += 1
            elif char == b")":
                if len(stack) > 1:
                    stack.pop()
                pos += 1
            elif char == b'"':
                value, pos = _quoted(text, pos)
                stack[-1].append(value)
            else:
                atom, pos = _atom(text, pos)
                stack[-1].append(None if atom.upper() == "NIL" else atom)
        if index < len(literals):
            stack[-1].append(literals[index])
    return stack[0]


def _parse_untagged(texts: list[bytes], literals: list[Any]) -> Untagged:
    match = _UNTAGGED.match(texts[0])
    if match is None:
        return Untagged("?", text=texts[0].decode("utf-8", "replace"))
    number = int(match.group(1)) if match.group(1) else None
    kind = match.group(2).decode("ascii").upper()
    if kind in STATUS_KINDS and number is None:
        code, text = _split_code(texts[0][match.end() :])
        return Untagged(kind, code=code, text=text)
    return Untagged(kind, number, tokenize(texts, literals, match.end()))


def pairs(items: list[Any]) -> dict[str, Any]:
    """FETCH attributes as a dict keyed by upper-cased name."""
    return {str(items[i]).upper(): items[i + 1] for i in range(0, len(items) - 1, 2)}


# ---------------------------------------------------------------- the connection

LiteralHandler = Callable[[bytes, int], Callable[[bytes], None] | None]


class ImapConnection:
    """One IMAP session. Every command either completes or leaves the connection marked unusable."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> None:
        self._reader, self._writer, self.timeout = reader, writer, timeout
        self._tags = itertools.count(1)
        self.capabilities: set[str] = set()
        self.usable = True
        self.last_used = 0.0

    # -- opening

    @classmethod
    async def open(cls, host: str, port: int, security: str, context: ssl.SSLContext | None, timeout: float) -> ImapConnection:
        tls = context if security == "tls" else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None, limit=READ_AHEAD), timeout
            )
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, ssl.SSLCertVerificationError):
                raise UntrustedCertificate(f"the IMAP server {host}:{port}", exc.verify_message) from None
            raise ImapClosed(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from None
        conn = cls(reader, writer, timeout)
        try:
            await conn._greeting()
            if security == "starttls":
                await conn._starttls(context, host)
        except BaseException as exc:
            conn.abort()
            if isinstance(exc, TimeoutError):
                raise ImapClosed(f"{host}:{port} sent no greeting within {timeout:g} s") from None
            if isinstance(exc, asyncio.IncompleteReadError | ConnectionError):
                raise ImapClosed(f"{host}:{port} closed the connection before greeting") from None
            raise
        return conn

    async def _greeting(self) -> None:
        texts, literals = await self._read_logical(None)
        greeting = _parse_untagged(texts, literals)
        if greeting.kind not in ("OK", "PREAUTH"):
            raise ImapClosed(f"server refused the connection: {greeting.text}")
        self._take_capabilities(greeting.code)

    async def _starttls(self, context: ssl.SSLContext | None, host: str) -> None:
        if not self.capabilities:
            await self.capability()
        if "STARTTLS" not in self.capabilities:
            raise ImapError("NO", None, "the server does not offer STARTTLS")
        await self.command(b"STARTTLS")
        try:
            await asyncio.wait_for(self._writer.start_tls(context or ssl.create_default_context(), server_hostname=host), self.timeout)
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, ssl.SSLCertVerificationError):
                raise UntrustedCertificate(f"the IMAP server {host}", exc.verify_message) from None
            raise ImapClosed(f"TLS negotiation failed: {exc or 'timed out'}") from None
        self.capabilities = set()  # what was said in clear text may have been tampered with
        await self.capability()

    def _take_capabilities(self, code: str | None) -> bool:
        if code and code.upper().startswith("CAPABILITY "):
            self.capabilities = {c.upper() for c in code.split()[1:]}
            return True
        return False

    # -- commands

    async def command(self, *args: Arg, on_literal: LiteralHandler | None = None, check: bool = True) -> Response:
        """Runs one command; raises ImapError on NO/BAD when `check`, ImapClosed when the link fails."""
        if not self.usable:
            raise ImapClosed("the connection was left unusable by an earlier failure")
        tag = b"A%04d" % next(self._tags)
        self._trace(tag, args)
        self.usable = False  # until the tagged answer arrives, the stream is mid-command
        untagged: list[Untagged] = []
        try:
            response = await self._send(tag, args, untagged) or await self._collect(tag, untagged, on_literal)
        except TimeoutError:
            raise ImapClosed(f"no answer from the server within {self.timeout:g} s") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            bye = next((u.text for u in untagged if u.kind == "BYE"), None)
            raise ImapClosed(f"server said BYE: {bye}" if bye else f"connection lost: {exc or type(exc).__name__}") from None
        self.usable = not any(u.kind == "BYE" for u in untagged) and response.status != "BYE"
        self.last_used = asyncio.get_running_loop().time()
        if check and response.status != "OK":
            raise ImapError(response.status, response.code, response.text)
        return response

    def _trace(self, tag: bytes, args: tuple[Arg, ...]) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        shown = [a.decode("ascii", "replace") if isinstance(a, bytes) else f"{{{a.size}}}" for a in args]
        if shown and shown[0] == "LOGIN":
            shown = ["LOGIN", shown[1], "<password>"]
        log.debug("C: %s %s", tag.decode(), " ".join(shown))

    def _nonsync(self, size: int) -> bool:
        return "LITERAL+" in self.capabilities or ("LITERAL-" in self.capabilities and size <= 4096)

    async def _send(self, tag: bytes, args: tuple[Arg, ...], untagged: list[Untagged]) -> Response | None:
        """Sends the command; a tagged answer instead of a literal's continuation is returned."""
        line = bytearray(tag)
        for arg in args:
            line += b" "
            if isinstance(arg, bytes):
                line += arg
                continue
            nonsync = self._nonsync(arg.size)
            line += b"{%d%s}\r\n" % (arg.size, b"+" if nonsync else b"")
            await self._send_bytes(bytes(line))
            line.clear()
            if not nonsync:
                refused = await self._continuation(tag, untagged)
                if refused is not None:
                    return refused
            await arg.write(self._send_bytes)
        line += b"\r\n"
        await self._send_bytes(bytes(line))
        return None

    async def _send_bytes(self, data: bytes) -> None:
        self._writer.write(data)
        await asyncio.wait_for(self._writer.drain(), self.timeout)

    async def _continuation(self, tag: bytes, untagged: list[Untagged]) -> Response | None:
        while True:
            texts, literals = await self._read_logical(None)
            if texts[0].startswith(b"+"):
                return None
            response = self._classify(tag, texts, literals, untagged)
            if response is not None:
                return response

    async def _collect(self, tag: bytes, untagged: list[Untagged], on_literal: LiteralHandler | None) -> Response:
        while True:
            texts, literals = await self._read_logical(on_literal)
            response = self._classify(tag, texts, literals, untagged)
            if response is not None:
                return response

    def _classify(self, tag: bytes, texts: list[bytes], literals: list[Any], untagged: list[Untagged]) -> Response | None:
        first = texts[0]
        if first.startswith(b"* "):
            untagged.append(_parse_untagged(texts, literals))
            return None
        match = _TAGGED.match(first)
        if match is not None and match.group(1) == tag:
            code, text = _split_code(first[match.end() :])
            response = Response(match.group(2).decode().upper(), code, text, untagged)
            self._take_capabilities(code)
            return response
        log.debug("S: ignored %r", first[:200])
        return None

    # -- reading

    async def _readline(self) -> bytes:
        """One line however long (up to MAX_LINE): the reader's own limit stays small because it is
        also how much the reader buffers ahead while a literal is being streamed."""
        parts: list[bytes] = []
        total = 0
        while True:
            try:
                parts.append(await asyncio.wait_for(self._reader.readuntil(b"\r\n"), self.timeout))
                return b"".join(parts)
            except asyncio.LimitOverrunError as exc:
                part = await asyncio.wait_for(self._reader.readexactly(exc.consumed), self.timeout)
            total += len(part)
            if total > MAX_LINE:
                raise ImapClosed(f"a response line exceeded {MAX_LINE} bytes")
            parts.append(part)

    async def _read_logical(self, on_literal: LiteralHandler | None) -> tuple[list[bytes], list[Any]]:
        """One response: its text pieces and the literals between them (bytes, or Streamed)."""
        texts: list[bytes] = []
        literals: list[Any] = []
        while True:
            line = await self._readline()
            match = _LITERAL_AT_END.search(line)
            if match is None:
                texts.append(line[:-2])
                return texts, literals
            texts.append(line[: match.start()])
            size = int(match.group(1))
            feed = on_literal(texts[-1], size) if on_literal is not None else None
            if feed is None:
                literals.append(await self._read_literal(size))
            else:
                await self._stream_literal(size, feed)
                literals.append(Streamed(size))

    async def _read_literal(self, size: int) -> bytes:
        parts: list[bytes] = []
        await self._stream_literal(size, parts.append)
        return b"".join(parts)

    async def _stream_literal(self, size: int, feed: Callable[[bytes], None]) -> None:
        remaining = size
        while remaining:
            chunk = await asyncio.wait_for(self._reader.read(min(remaining, READ_CHUNK)), self.timeout)
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(chunk)
            feed(chunk)

    # -- the commands a sink uses

    async def capability(self) -> set[str]:
        response = await self.command(b"CAPABILITY")
        for item in response.of_kind("CAPABILITY"):
            self.capabilities = {str(c).upper() for c in item.data}
        return self.capabilities

    async def login(self, username: str, password: str) -> None:
        response = await self.command(b"LOGIN", astring(username), astring(password))
        if not self._take_capabilities(response.code):
            await self.capability()  # servers may offer more once logged in (UIDPLUS, SPECIAL-USE)

    async def logout(self) -> None:
        try:
            await self.command(b"LOGOUT", check=False)
        except (ImapClosed, ImapError):
            pass
        finally:
            self.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)
        except (OSError, TimeoutError):
            pass

    def close(self) -> None:
        self.usable = False
        self._writer.close()

    def abort(self) -> None:
        """Drops the connection without a word, also when its event loop is already gone."""
        self.usable = False
        transport = self._writer.transport
        try:
            transport.abort()
        except RuntimeError:  # the loop that owned it has closed; free the socket ourselves
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.shutdown(2)
                except OSError:
                    pass

    @property
    def closed(self) -> bool:
        return self._writer.transport.is_closing() or self._reader.at_eof()


@dataclass(frozen=True)
class ListEntry:
    flags: frozenset[str]
    separator: str | None
    name: str


def list_entries(response: Response) -> list[ListEntry]:
    entries = []
    for item in response.of_kind("LIST"):
        if len(item.data) >= 3:
            flags, separator, name = item.data[0], item.data[1], item.data[2]
            entries.append(ListEntry(frozenset(str(f).lower() for f in flags or ()), text_of(separator) or None, text_of(name)))
    return entries


@dataclass(frozen=True)
class Selected:
    name: str
    uidvalidity: int | None
    exists: int
    permanent_flags: frozenset[str] | None  # None when the server did not say: all flags are kept


def selected(name: str, response: Response) -> Selected:
    uidvalidity, permanent = None, None
    for code in response.codes():
        word, _, rest = code.partition(" ")
        if word.upper() == "UIDVALIDITY" and rest.strip().isdigit():
            uidvalidity = int(rest)
        elif word.upper() == "PERMANENTFLAGS":
            permanent = frozenset(f for f in rest.strip().strip("()").split())
    exists = next((u.number for u in reversed(response.untagged) if u.kind == "EXISTS" and u.number is not None), 0)
    return Selected(name, uidvalidity, exists, permanent)


def search_uids(response: Response) -> list[int]:
    return [int(n) for item in response.of_kind("SEARCH") for n in item.data if isinstance(n, str) and n.isdigit()]


def fetched(response: Response) -> list[dict[str, Any]]:
    """The attribute dicts of FETCH answers that carry a UID (unsolicited flag updates may not)."""
    out = []
    for item in response.of_kind("FETCH"):
        if item.data and isinstance(item.data[0], list):
            attrs = pairs(item.data[0])
            if "UID" in attrs:
                out.append(attrs)
    return out


def uid_set(uids: Iterable[int]) -> bytes:
    return ",".join(str(u) for u in sorted(set(uids))).encode("ascii")
