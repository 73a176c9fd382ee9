"""A sink that appends mail to IMAP mailboxes (Dovecot, Cyrus, any IMAP4rev1 server).

Each message carries an `X-Migrator-Source-Id` header (the mail mapping writes it first), which is
how `find` recognises a message after a crash and `list_keys` enumerates a folder. Messages are
streamed into APPEND literals and out of FETCH literals, so memory stays bounded whatever their size.

IMAP servers hand back message bytes canonicalised: bare CR or LF become CRLF, NUL becomes 0x80,
and a zero-byte message is refused. An item whose bytes would not survive that, or that does not
begin with its source-id header, is therefore stored as a *carrier*: a small MIME message holding
the exact bytes as a base64 attachment, which `find` and `stat` decode, so size and sha256 always
describe the item as it was given. Mail from the mail mapping (CRLF, header first) is stored as is.

dest_id is "<mailbox as sent to the server>/<UIDVALIDITY>/<UID>".
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import logging
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.imap_client import (
    ImapClosed,
    ImapConnection,
    ImapError,
    Literal,
    Response,
    Selected,
    Streamed,
    astring,
    encode_mailbox,
    fetched,
    flag_list,
    list_entries,
    search_uids,
    selected,
    text_of,
    uid_set,
)
from migrator.errors import ItemError, TransientError
from migrator.model import Capabilities, DestRef, Target
from migrator.tls import ssl_context

log = logging.getLogger(__name__)

SOURCE_HEADER = "X-Migrator-Source-Id"
CARRIER_HEADER = "X-Migrator-Carrier"
SECURITY = ("tls", "starttls", "plain")
# RFC 5530 codes that say "try again later" rather than "this will never work".
TRANSIENT_CODES = {"UNAVAILABLE", "INUSE", "SERVERBUG", "EXPUNGEISSUED"}
IDLE_PROBE_SECONDS = 60.0  # an idle connection older than this gets a NOOP before reuse
LOGOUT_SECONDS = 5.0
SEND_BUFFER = 64 * 1024
SPOOL_IN_MEMORY = 1 << 20
HEAD_LIMIT = 64 * 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Draft")}
_KEYWORD = re.compile(r"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")  # an IMAP atom: no ( ) { % * " \ ]
_KEY = re.compile(r"[\x21-\x7e]+")  # source ids go into a header line and a SEARCH string
_BODY_LITERAL = re.compile(rb"BODY\[\](?:<\d+>)? ?\Z")
_CARRIER_START = re.compile(rb"X-Migrator-Source-Id: [^\r\n]*\r\nX-Migrator-Carrier: base64\r\n")
CARRIER_LINE = 57  # bytes per base64 line: 76 characters, as MIME asks


# ---------------------------------------------------------------- names, ids, dates, flags


def mailbox_levels(path: tuple[str, ...], separator: str | None) -> list[str]:
    """The server names of a folder and each of its ancestors, top first ("INBOX" stays INBOX)."""
    if not path:
        raise ItemError("a folder path needs at least one name")
    if len(path) > 1 and not separator:
        raise ItemError(f"the IMAP server has no folder hierarchy, so {'/'.join(path)!r} cannot be created")
    names: list[str] = []
    for depth, name in enumerate(path):
        if not name or any(c in name for c in "\r\n\x00") or (separator and separator in name):
            raise ItemError(f"folder name {name!r} cannot be used on this server (hierarchy separator {separator!r})")
        part = "INBOX" if depth == 0 and name.upper() == "INBOX" else encode_mailbox(name)
        names.append(part if depth == 0 else f"{names[-1]}{separator}{part}")
    return names


def make_dest_id(mailbox: str, uidvalidity: int | None, uid: int) -> str:
    return f"{mailbox}/{uidvalidity or 0}/{uid}"


def parse_dest_id(dest_id: str) -> tuple[str, int, int]:
    """(mailbox, UIDVALIDITY, UID) from a dest_id; the mailbox may itself contain '/'."""
    try:
        mailbox, uidvalidity, uid = dest_id.rsplit("/", 2)
        return mailbox, int(uidvalidity), int(uid)
    except ValueError:
        raise ItemError(f"{dest_id!r} is not an IMAP sink id (mailbox/uidvalidity/uid)") from None


def imap_date(value: Any) -> bytes | None:
    """INTERNALDATE for APPEND ("dd-Mon-yyyy hh:mm:ss +0000") from an ISO 8601 string or datetime."""
    if value in (None, ""):
        return None
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise ItemError(f"internal_date {value!r} is not an ISO 8601 date") from None
    when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    return f'"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} {when:%H:%M:%S} +0000"'.encode("ascii")


def parse_imap_date(value: str) -> datetime:
    day, month, rest = value.strip().split("-", 2)
    year, clock, zone = rest.split(" ")
    hours, minutes, seconds = (int(p) for p in clock.split(":"))
    naive = datetime(int(year), _MONTHS.index(month.capitalize()) + 1, int(day), hours, minutes, seconds)
    offset = datetime.strptime(zone, "%z").tzinfo
    return naive.replace(tzinfo=offset).astimezone(UTC)


def storable_flags(flags: Iterable[str], permanent: frozenset[str] | None) -> list[str]:
    """The flags APPEND should set: known system flags and valid keywords the folder keeps.
    \\Deleted and \\Recent are never set: a migrated message marked deleted would vanish at the
    next expunge, and \\Recent belongs to the server."""
    allowed = None if permanent is None else {p.lower() for p in permanent}
    out: list[str] = []
    for raw in flags:
        flag = str(raw).strip()
        if flag.startswith("\\"):
            name = _SYSTEM_FLAGS.get(flag.lower())
            keep = name is not None and (allowed is None or name.lower() in allowed)
        else:
            name = flag if _KEYWORD.fullmatch(flag) else None
            keep = name is not None and (allowed is None or name.lower() in allowed or "\\*" in allowed)
        if keep and name is not None and name.lower() not in {o.lower() for o in out}:
            out.append(name)
        elif not keep:
            log.debug("flag %r is not stored: the folder cannot keep it", flag)
    return out


def _source_line(key: str) -> bytes:
    if not _KEY.fullmatch(key):
        raise ItemError(f"destination key {key!r} cannot be written into a mail header")
    return f"{SOURCE_HEADER}: {key}\r\n".encode("ascii")


def header_fields(raw: Any) -> dict[str, str]:
    """Header name (lower case) -> first value, unfolded."""
    text = re.sub(r"\r?\n[ \t]+", " ", text_of(raw))
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip():
            fields.setdefault(name.strip().lower(), value.strip())
    return fields


# ---------------------------------------------------------------- bytes in, bytes out


class _LineCheck:
    """Whether bytes come back from an IMAP server as sent: every line ends in CRLF and no NUL."""

    def __init__(self) -> None:
        self.clean, self._pending_cr = True, False

    def feed(self, chunk: bytes) -> None:
        if not self.clean or not chunk:
            return
        if self._pending_cr:
            if chunk[:1] != b"\n":
                self.clean = False
                return
            chunk = chunk[1:]
        crlf = chunk.count(b"\r\n")
        ends_cr = chunk.endswith(b"\r")
        if b"\x00" in chunk or chunk.count(b"\n") != crlf or chunk.count(b"\r") != crlf + ends_cr:
            self.clean = False
        self._pending_cr = ends_cr

    def finish(self) -> bool:
        if self._pending_cr:
            self.clean = False
        return self.clean


def carrier_header(key: str) -> bytes:
    return (
        f"{SOURCE_HEADER}: {key}\r\n{CARRIER_HEADER}: base64\r\nMIME-Version: 1.0\r\n"
        f"Subject: Migrated item {key}, kept byte for byte as an attachment\r\n"
        'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="original.eml"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii")


def carrier_size(header_size: int, size: int) -> int:
    full, rest = divmod(size, CARRIER_LINE)
    return header_size + full * 78 + ((rest + 2) // 3 * 4 + 2 if rest else 0)


class _CarrierEncoder:
    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        whole = len(data) - len(data) % CARRIER_LINE
        self._pending = data[whole:]
        return b"".join(binascii.b2a_base64(data[i : i + CARRIER_LINE], newline=False) + b"\r\n" for i in range(0, whole, CARRIER_LINE))

    def finish(self) -> bytes:
        return binascii.b2a_base64(self._pending, newline=False) + b"\r\n" if self._pending else b""


class _StoredDigest:
    """Size and sha256 of a stored message as the item it holds: its bytes, or a carrier's cargo."""

    def __init__(self) -> None:
        self._head: bytearray | None = bytearray()
        self._carrier = False
        self._base64 = b""
        self._sha, self.size = hashlib.sha256(), 0

    def feed(self, chunk: bytes) -> None:
        if self._head is not None:
            self._head += chunk
            if self._head.find(b"\r\n\r\n") < 0 and len(self._head) < HEAD_LIMIT:
                return
            chunk = self._decide()
        self._take(chunk)

    def _decide(self) -> bytes:
        head, self._head = bytes(self._head or b""), None
        end = head.find(b"\r\n\r\n")
        self._carrier = end >= 0 and _CARRIER_START.match(head) is not None
        return head[end + 4 :] if self._carrier else head

    def _take(self, chunk: bytes) -> None:
        if not self._carrier:
            self._sha.update(chunk)
            self.size += len(chunk)
            return
        data = self._base64 + chunk.translate(None, b"\r\n")
        whole = len(data) - len(data) % 4
        self._base64 = data[whole:]
        self._take_decoded(binascii.a2b_base64(data[:whole]))

    def _take_decoded(self, data: bytes) -> None:
        self._sha.update(data)
        self.size += len(data)

    def finish(self) -> tuple[int, str]:
        if self._head is not None:
            self._take(self._decide())
        if self._carrier and self._base64:
            self._take_decoded(binascii.a2b_base64(self._base64 + b"=" * (-len(self._base64) % 4)))
        return self.size, self._sha.hexdigest()


class _SourceFailed(Exception):
    """The item's own content stream failed mid-APPEND; re-raised as the original error."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


class _Outgoing:
    """An item on its way into an APPEND literal, measured as it goes: byte count, sha256, and
    whether the server will hand back exactly these bytes."""

    def __init__(self, chunks: AsyncIterator[bytes], size: int, key: str, carrier: bool) -> None:
        self._chunks, self.size, self.carrier = chunks, size, carrier
        self._header = carrier_header(key) if carrier else b""
        self._lines = _LineCheck()
        self._sha, self.count = hashlib.sha256(), 0
        self.literal = Literal(carrier_size(len(self._header), size) if carrier else size, self._write)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def exact(self) -> bool:
        return self.carrier or self._lines.clean

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None
        except Exception as exc:
            raise _SourceFailed(exc) from exc

    async def _write(self, send: Callable[[bytes], Any]) -> None:
        encoder = _CarrierEncoder() if self.carrier else None
        buffer = bytearray(self._header)
        while (chunk := await self._next()) is not None:
            self.count += len(chunk)
            if self.count > self.size:
                raise ItemError(f"the item gave more than the {self.size} bytes it declared")
            self._sha.update(chunk)
            if encoder is None:
                self._lines.feed(chunk)
            buffer += encoder.feed(chunk) if encoder else chunk
            if len(buffer) >= SEND_BUFFER:
                await send(bytes(buffer))
                buffer.clear()
        if self.count != self.size:
            raise ItemError(f"the item gave {self.count} bytes, not the {self.size} it declared")
        self._lines.finish()
        buffer += encoder.finish() if encoder else b""
        if buffer:
            await send(bytes(buffer))


class _Spool:
    """An item of unknown size, kept in a temporary file (in memory below 1 MiB) so the APPEND
    literal can announce its size; it also learns whether the bytes can be stored verbatim."""

    def __init__(self) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - owned by the spool, closed in close()
        self.size, self.head, self.lines = 0, b"", _LineCheck()

    @classmethod
    async def fill(cls, chunks: AsyncIterator[bytes]) -> _Spool:
        spool = cls()
        try:
            async for chunk in chunks:
                spool.file.write(chunk)
                spool.size += len(chunk)
                spool.lines.feed(chunk)
                if len(spool.head) < HEAD_LIMIT:
                    spool.head += chunk[:HEAD_LIMIT]
        except BaseException:
            spool.file.close()
            raise
        spool.lines.finish()
        return spool

    async def chunks(self) -> AsyncIterator[bytes]:
        self.file.seek(0)
        while block := self.file.read(SPOOL_IN_MEMORY):
            yield block

    def close(self) -> None:
        self.file.close()


@dataclass
class _Prepared:
    chunks: AsyncIterator[bytes]
    size: int
    verbatim: bool
    spool: _Spool | None = None
    source: AsyncIterator[bytes] | None = None  # the payload's own stream, closed after the put

    async def close(self) -> None:
        # A source stream may hold a connection or a concurrency slot until it is closed.
        for stream in (self.chunks, self.source):
            await _aclose(stream)
        if self.spool is not None:
            self.spool.close()


async def _aclose(stream: AsyncIterator[bytes] | None) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception as exc:  # noqa: BLE001 - closing is tidying up; the put's own outcome matters more
            log.debug("closing a payload stream failed: %s", exc)


async def _prepend(head: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if head:
        yield head
    async for chunk in chunks:
        yield chunk


async def _prepare(target: Target, key_line: bytes) -> _Prepared:
    """Reads what must be known before APPEND announces a size: the first line, or for an item of
    unknown size all of it (into a spool)."""
    payload = target.payload
    if payload.size is None:
        spool = await _Spool.fill(payload.chunks())
        verbatim = spool.head.startswith(key_line) and spool.lines.clean
        return _Prepared(spool.chunks(), spool.size, verbatim, spool)
    chunks = payload.chunks()
    head = b""
    while len(head) < len(key_line):
        try:
            head += await chunks.__anext__()
        except StopAsyncIteration:
            break
    return _Prepared(_prepend(head, chunks), payload.size, head.startswith(key_line), source=chunks)


# ---------------------------------------------------------------- errors and connections


@contextmanager
def _errors(what: str) -> Iterator[None]:
    """IMAP failures as the engine's errors: a lost link is transient, a refusal is the item's."""
    try:
        yield
    except ImapClosed as exc:
        raise TransientError(f"{what}: {exc}") from None
    except ImapError as exc:
        if exc.code_name in TRANSIENT_CODES:
            raise TransientError(f"{what}: {exc}") from None
        raise ItemError(f"{what}: {exc}") from None
    except _SourceFailed as exc:
        raise exc.original from None


@dataclass
class _Pool:
    slots: asyncio.Semaphore
    idle: list[ImapConnection] = field(default_factory=list)


class _LoopState:
    """Connections belong to the event loop that opened them; a new loop starts a new pool."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pools: dict[str, _Pool] = {}
        self.guard: AsyncIterator[None] | None = None

    def pool(self, owner: str, size: int) -> _Pool:
        if owner not in self.pools:
            self.pools[owner] = _Pool(asyncio.Semaphore(size))
        return self.pools[owner]

    async def close(self) -> None:
        idle = [conn for pool in self.pools.values() for conn in pool.idle]
        for pool in self.pools.values():
            pool.idle.clear()
        for conn in idle:
            try:
                await asyncio.wait_for(conn.logout(), LOGOUT_SECONDS)
            except (TimeoutError, OSError):
                conn.abort()

    def abandon(self) -> None:
        for pool in self.pools.values():
            for conn in pool.idle:
                conn.abort()
            pool.idle.clear()


async def _logout_when_loop_ends(state: _LoopState) -> AsyncIterator[None]:
    # asyncio.run() closes every async generator before it closes the loop, so this `finally`
    # logs out whatever is still pooled even when nobody calls close().
    try:
        yield
    finally:
        await state.close()


# ---------------------------------------------------------------- the sink


class ImapSink:
    caps = Capabilities(hashes=("sha256",), cheap_find=False, listing=True, delete=True)

    def __init__(
        self,
        host: str,
        port: int,
        security: str = "tls",
        login: Callable[[str], tuple[str, str]] | None = None,
        ca_file: str | None = None,
        special_use: Callable[[tuple[str, ...]], str | None] | None = None,
        connections_per_owner: int = 2,
        timeout: float = 60.0,
        skip_tls_verify: bool = False,
    ) -> None:
        if security not in SECURITY:
            raise ValueError(f"security must be one of {', '.join(SECURITY)}, not {security!r}")
        if login is None:
            raise ValueError("login is required: owner -> (username, password)")
        self.host, self.port, self.security, self.timeout = host, port, security, timeout
        self._login, self._special_use = login, special_use
        self._per_owner = max(1, connections_per_owner)
        self._ssl = ssl_context(ca_file, skip_tls_verify) if security != "plain" else None
        self._state: _LoopState | None = None
        self._separators: dict[str, str | None] = {}
        self._permanent: dict[tuple[str, str], frozenset[str] | None] = {}

    # -- connections

    async def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None or state.loop is not loop:
            if state is not None:
                state.abandon()  # its loop has ended; the sockets cannot be used from this one
            state = self._state = _LoopState(loop)
            state.guard = _logout_when_loop_ends(state)
            await state.guard.__anext__()
        return state

    @asynccontextmanager
    async def _connection(self, owner: str) -> AsyncIterator[ImapConnection]:
        state = await self._loop_state()
        pool = state.pool(owner, self._per_owner)
        async with pool.slots:
            conn = await self._reuse(pool) or await self._open(owner)
            try:
                yield conn
            finally:
                if conn.usable and not conn.closed:
                    pool.idle.append(conn)
                else:
                    conn.abort()

    async def _reuse(self, pool: _Pool) -> ImapConnection | None:
        now = asyncio.get_running_loop().time()
        while pool.idle:
            conn = pool.idle.pop()
            if not conn.usable or conn.closed:
                conn.abort()
                continue
            if now - conn.last_used > IDLE_PROBE_SECONDS:
                try:
                    await conn.command(b"NOOP")
                except (ImapClosed, ImapError):
                    conn.abort()
                    continue
            return conn
        return None

    async def _open(self, owner: str) -> ImapConnection:
        username, password = self._login(owner)
        conn = await ImapConnection.open(self.host, self.port, self.security, self._ssl, self.timeout)
        try:
            await conn.login(username, password)
        except ImapError as exc:
            conn.abort()
            raise ImapError(exc.status, exc.code, f"login as {username} refused: {exc.text}") from None
        except BaseException:
            conn.abort()
            raise
        return conn

    async def probe(self, owner: str) -> str:
        """Logs in as `owner` (what preflight checks before any data moves)."""
        async with self._connection(owner):
            return f"logged in to {self.host}:{self.port} as {self._login(owner)[0]}"

    async def close(self) -> None:
        """Logs out every pooled connection of the running event loop."""
        state = self._state
        if state is not None and state.loop is asyncio.get_running_loop():
            await state.close()

    # -- mailboxes

    async def _separator(self, conn: ImapConnection, owner: str) -> str | None:
        if owner not in self._separators:
            entries = list_entries(await conn.command(b"LIST", b'""', b'""'))
            self._separators[owner] = entries[0].separator if entries else "/"
        return self._separators[owner]

    async def _mailbox(self, conn: ImapConnection, owner: str, path: tuple[str, ...]) -> str:
        return mailbox_levels(path, await self._separator(conn, owner))[-1]

    async def _select(self, conn: ImapConnection, mailbox: str, readonly: bool) -> Selected | None:
        """The opened folder, or None when it does not exist (any refusal that is not temporary)."""
        try:
            response = await conn.command(b"EXAMINE" if readonly else b"SELECT", astring(mailbox))
        except ImapError as exc:
            if exc.code_name in TRANSIENT_CODES:
                raise
            return None
        return selected(mailbox, response)

    async def _permanent_flags(self, conn: ImapConnection, owner: str, mailbox: str) -> frozenset[str] | None:
        if (owner, mailbox) not in self._permanent:
            response = await conn.command(b"SELECT", astring(mailbox))
            self._permanent[(owner, mailbox)] = selected(mailbox, response).permanent_flags
        return self._permanent[(owner, mailbox)]

    async def ensure_container(self, owner: str, path: tuple[str, ...]) -> str:
        with _errors(f"cannot create folder {'/'.join(path)} for {owner}"):
            async with self._connection(owner) as conn:
                levels = mailbox_levels(path, await self._separator(conn, owner))
                existing = list_entries(await conn.command(b"LIST", b'""', astring(levels[-1])))
                if not any(e.name == levels[-1] and "\\noselect" not in e.flags and "\\nonexistent" not in e.flags for e in existing):
                    for depth, name in enumerate(levels):
                        if name != "INBOX":
                            use = self._special_use(path[: depth + 1]) if self._special_use else None
                            await self._create(conn, name, use)
                for name in levels:
                    await conn.command(b"SUBSCRIBE", astring(name), check=False)
                return levels[-1]

    async def _create(self, conn: ImapConnection, name: str, use: str | None) -> None:
        args = [b"CREATE", astring(name)]
        if use and "CREATE-SPECIAL-USE" in conn.capabilities and re.fullmatch(r"\\[A-Za-z]+", use):
            args.append(b"(USE (" + use.encode("ascii") + b"))")
        try:
            await conn.command(*args)
        except ImapError as exc:
            if exc.code_name == "ALREADYEXISTS" or "already exists" in exc.text.lower():
                return
            if len(args) == 3 and exc.code_name == "USEATTR":
                log.info("the server refused special use %s for %s; creating it without", use, name)
                await self._create(conn, name, None)
                return
            raise

    # -- finding and measuring

    async def _header_values(self, conn: ImapConnection, uids: Iterable[int] | bytes, names: tuple[str, ...]) -> dict[int, dict[str, str]]:
        """uid -> header fields, for messages not marked \\Deleted."""
        wanted = uids if isinstance(uids, bytes) else uid_set(uids)
        items = f"(FLAGS BODY.PEEK[HEADER.FIELDS ({' '.join(names)})])".encode("ascii")
        response = await conn.command(b"UID", b"FETCH", wanted, items)
        out: dict[int, dict[str, str]] = {}
        for attrs in fetched(response):
            if "\\deleted" in {str(f).lower() for f in attrs.get("FLAGS") or ()}:
                continue
            raw = next((v for k, v in attrs.items() if k.startswith("BODY[HEADER.FIELDS")), None)
            out[int(attrs["UID"])] = header_fields(raw)
        return out

    async def _uid_by_key(self, conn: ImapConnection, key: str) -> int | None:
        # SEARCH HEADER matches substrings, so candidates are checked against the exact value.
        response = await conn.command(b"UID", b"SEARCH", b"UNDELETED", b"HEADER", SOURCE_HEADER.encode(), astring(key))
        uids = search_uids(response)
        if not uids:
            return None
        headers = await self._header_values(conn, uids, (SOURCE_HEADER,))
        exact = [uid for uid, fields in headers.items() if fields.get(SOURCE_HEADER.lower()) == key]
        return max(exact) if exact else None

    async def _uid_by_message_id(self, conn: ImapConnection, key: str, message_id: str) -> int | None:
        """A message stored without our header (or with ours) that has the same Message-ID."""
        wanted = message_id.strip()
        if not _KEY.fullmatch(wanted):
            return None
        response = await conn.command(b"UID", b"SEARCH", b"UNDELETED", b"HEADER", b"Message-ID", astring(wanted))
        uids = search_uids(response)
        if not uids:
            return None
        headers = await self._header_values(conn, uids, ("Message-ID", SOURCE_HEADER))
        for uid in sorted(headers, reverse=True):
            fields = headers[uid]
            if fields.get("message-id") == wanted and fields.get(SOURCE_HEADER.lower()) in (None, key):
                return uid
        return None

    async def _measure(self, conn: ImapConnection, uid: int) -> tuple[int, str] | None:
        """(size, sha256) of a message, streamed; None when it is gone or marked \\Deleted."""
        digest = _StoredDigest()

        def body_to_digest(text: bytes, size: int) -> Callable[[bytes], None] | None:
            return digest.feed if _BODY_LITERAL.search(text) else None

        response = await conn.command(b"UID", b"FETCH", str(uid).encode(), b"(FLAGS RFC822.SIZE BODY.PEEK[])", on_literal=body_to_digest)
        rows = [a for a in fetched(response) if str(a.get("UID")) == str(uid) and "BODY[]" in a]
        if not rows or "\\deleted" in {str(f).lower() for f in rows[0].get("FLAGS") or ()}:
            return None
        body = rows[0]["BODY[]"]
        if not isinstance(body, Streamed):
            digest.feed(body or b"")  # a server may send a short body as a quoted string
        return digest.finish()

    async def find(self, owner: str, path: tuple[str, ...], target: Target) -> DestRef | None:
        key = target.dest_key
        _source_line(key)
        with _errors(f"cannot look for {key} in {'/'.join(path)} of {owner}"):
            async with self._connection(owner) as conn:
                mailbox = await self._mailbox(conn, owner, path)
                info = await self._select(conn, mailbox, readonly=True)
                if info is None or info.exists == 0:
                    return None
                uid = await self._uid_by_key(conn, key)
                message_id = target.metadata.get("message_id")
                if uid is None and message_id:
                    uid = await self._uid_by_message_id(conn, key, str(message_id))
                measured = await self._measure(conn, uid) if uid is not None else None
                if uid is None or measured is None:
                    return None
                await self._align_flags(conn, owner, mailbox, uid, target)
                return DestRef(key, make_dest_id(mailbox, info.uidvalidity, uid), *measured)

    async def _align_flags(self, conn: ImapConnection, owner: str, mailbox: str, uid: int, target: Target) -> None:
        """A message found again takes the source's current flags: a read or flagged mark set in
        Outlook after the copy changes nothing else, so the copy is kept and only its flags move."""
        if "flags" not in target.metadata:
            return
        wanted = set(storable_flags(target.metadata.get("flags") or (), await self._permanent_flags(conn, owner, mailbox)))
        response = await conn.command(b"UID", b"FETCH", str(uid).encode(), b"(FLAGS)")
        current = {str(f) for a in fetched(response) if str(a["UID"]) == str(uid) for f in (a.get("FLAGS") or ())} - {"\\Recent"}
        if current != wanted:
            await self._select(conn, mailbox, readonly=False)
            await conn.command(b"UID", b"STORE", str(uid).encode(), b"FLAGS.SILENT", flag_list(sorted(wanted)))

    async def stat(self, owner: str, ref: DestRef) -> DestRef | None:
        mailbox, uidvalidity, uid = parse_dest_id(ref.dest_id)
        with _errors(f"cannot read {ref.dest_id} of {owner}"):
            async with self._connection(owner) as conn:
                info = await self._select(conn, mailbox, readonly=True)
                if info is None or info.uidvalidity != uidvalidity:
                    return None  # a new UIDVALIDITY means every old UID now names nothing
                measured = await self._measure(conn, uid)
                return None if measured is None else DestRef(ref.dest_key, ref.dest_id, *measured)

    async def list_keys(self, owner: str, path: tuple[str, ...]) -> set[str]:
        return set(await self.source_ids(owner, path))

    async def delete(self, owner: str, ref: DestRef) -> bool:
        """Expunges a stored message; False when it was gone already."""
        mailbox, uidvalidity, uid = parse_dest_id(ref.dest_id)
        with _errors(f"cannot delete {ref.dest_id} of {owner}"):
            async with self._connection(owner) as conn:
                info = await self._select(conn, mailbox, readonly=True)
                if info is None or (uidvalidity and info.uidvalidity != uidvalidity) or await self._measure(conn, uid) is None:
                    return False
                await self._remove(conn, mailbox, uidvalidity, uid)
                return True

    async def source_ids(self, owner: str, path: tuple[str, ...]) -> list[str]:
        """The source id of every message in a folder, repeats kept: a duplicate shows twice."""
        with _errors(f"cannot list {'/'.join(path)} of {owner}"):
            async with self._connection(owner) as conn:
                mailbox = await self._mailbox(conn, owner, path)
                info = await self._select(conn, mailbox, readonly=True)
                if info is None or info.exists == 0:
                    return []
                headers = await self._header_values(conn, b"1:*", (SOURCE_HEADER,))
                return [fields[SOURCE_HEADER.lower()] for fields in headers.values() if fields.get(SOURCE_HEADER.lower())]

    # -- storing

    async def put(self, owner: str, path: tuple[str, ...], target: Target, replace: DestRef | None = None) -> DestRef:
        key_line = _source_line(target.dest_key)
        date = imap_date(target.metadata.get("internal_date"))
        with _errors(f"cannot store {target.dest_key} in {'/'.join(path)} of {owner}"):
            prepared = await _prepare(target, key_line)
            try:
                async with self._connection(owner) as conn:
                    mailbox = await self._mailbox(conn, owner, path)
                    flags = storable_flags(target.metadata.get("flags") or (), await self._permanent_flags(conn, owner, mailbox))
                    stored = await self._store(conn, mailbox, target, prepared, flags, date)
                    if replace is not None and replace.dest_id != stored.dest_id:
                        await self._remove(conn, *parse_dest_id(replace.dest_id))
            finally:
                await prepared.close()
        return stored

    async def _store(self, conn: ImapConnection, mailbox: str, target: Target, prepared: _Prepared, flags: list[str], date: bytes | None) -> DestRef:
        key = target.dest_key
        out = _Outgoing(prepared.chunks, prepared.size, key, carrier=not prepared.verbatim)
        uidvalidity, uid = await self._append(conn, mailbox, key, flags, date, out)
        if not out.exact:
            # The server will hand these bytes back altered (bare CR/LF, NUL): carry them instead.
            log.info("%s has bytes IMAP would rewrite; storing it as a carrier message", key)
            await self._remove(conn, mailbox, uidvalidity, uid)
            again = target.payload.chunks()
            try:
                out = _Outgoing(again, prepared.size, key, carrier=True)
                uidvalidity, uid = await self._append(conn, mailbox, key, flags, date, out)
            finally:
                await _aclose(again)
        return DestRef(key, make_dest_id(mailbox, uidvalidity, uid), out.count, out.sha256)

    async def _append(self, conn: ImapConnection, mailbox: str, key: str, flags: list[str], date: bytes | None, out: _Outgoing) -> tuple[int | None, int]:
        args: list[bytes | Literal] = [b"APPEND", astring(mailbox)]
        if flags:
            args.append(flag_list(flags))
        if date:
            args.append(date)
        args.append(out.literal)
        response = await conn.command(*args)
        appended = _appenduid(response)
        if appended is not None:
            return appended
        return await self._locate(conn, mailbox, key)

    async def _locate(self, conn: ImapConnection, mailbox: str, key: str) -> tuple[int | None, int]:
        """Without UIDPLUS the new message is found by its header, the newest match winning."""
        info = await self._select(conn, mailbox, readonly=True)
        uid = await self._uid_by_key(conn, key) if info is not None else None
        if info is None or uid is None:
            raise ImapClosed(f"the message was appended to {mailbox} but cannot be found there")
        return info.uidvalidity, uid

    async def _remove(self, conn: ImapConnection, mailbox: str, uidvalidity: int | None, uid: int) -> None:
        info = await self._select(conn, mailbox, readonly=False)
        if info is None or (uidvalidity and info.uidvalidity != uidvalidity):
            return  # that folder or that message generation is already gone
        await conn.command(b"UID", b"STORE", str(uid).encode(), b"+FLAGS.SILENT", b"(\\Deleted)")
        if "UIDPLUS" in conn.capabilities:
            await conn.command(b"UID", b"EXPUNGE", str(uid).encode())
        else:
            await conn.command(b"EXPUNGE")  # also removes others marked \Deleted: none are ours to keep

    # -- verification helpers

    async def _fetch_one(self, owner: str, path: tuple[str, ...], uid: int, item: bytes) -> dict[str, Any] | None:
        with _errors(f"cannot read message {uid} in {'/'.join(path)} of {owner}"):
            async with self._connection(owner) as conn:
                mailbox = await self._mailbox(conn, owner, path)
                if await self._select(conn, mailbox, readonly=True) is None:
                    return None
                response = await conn.command(b"UID", b"FETCH", str(uid).encode(), b"(" + item + b")")
                return next((a for a in fetched(response) if str(a["UID"]) == str(uid)), None)

    async def flags_of(self, owner: str, path: tuple[str, ...], uid: int) -> set[str]:
        attrs = await self._fetch_one(owner, path, uid, b"FLAGS")
        return {str(f) for f in (attrs or {}).get("FLAGS") or ()}

    async def internal_date_of(self, owner: str, path: tuple[str, ...], uid: int) -> datetime | None:
        attrs = await self._fetch_one(owner, path, uid, b"INTERNALDATE")
        value = (attrs or {}).get("INTERNALDATE")
        return parse_imap_date(text_of(value)) if value else None


def _appenduid(response: Response) -> tuple[int, int] | None:
    for code in response.codes():
        parts = code.split()
        if len(parts) == 3 and parts[0].upper() == "APPENDUID" and parts[1].isdigit() and parts[2].isdigit():
            return int(parts[1]), int(parts[2])
    return None
