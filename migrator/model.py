"""The values that flow from a Source through a mapping into a Sink."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

WORKLOADS = ("mail", "calendar", "contacts", "files", "chat")


SITE_PREFIX = "site:"  # a SharePoint site migrated with a batch stands in the user list as "site:<name>"


@dataclass(frozen=True)
class User:
    upn: str
    display_name: str = ""
    department: str = ""
    source_id: str = ""

    @property
    def is_site(self) -> bool:
        return self.upn.startswith(SITE_PREFIX)


@dataclass(frozen=True)
class Container:
    """A mail folder, calendar, address book, drive or chat at the source."""

    source_id: str
    name: str
    workload: str
    path: tuple[str, ...] = ()
    role: str = ""


@dataclass(frozen=True)
class ItemRef:
    """What a source's change listing says about one item, before its content is fetched."""

    source_id: str
    change_key: str
    kind: str
    name: str = ""
    size: int | None = None
    # The item as the listing gave it, where that is all `fetch` would read again (kept by the ledger until copied).
    listed: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Removed:
    """The source says this item no longer exists."""

    source_id: str


@dataclass(frozen=True)
class Cursor:
    """Where the next change listing of a container should start."""

    value: str


Change = ItemRef | Removed | Cursor


class Payload:
    """Item content read in chunks, so no sink needs the whole of a large item in memory."""

    def __init__(self, open_chunks: Callable[[], AsyncIterator[bytes]], size: int | None = None) -> None:
        self._open_chunks = open_chunks
        self.size = size

    @classmethod
    def from_bytes(cls, data: bytes, chunk_size: int = 1 << 20) -> Payload:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), chunk_size):
                yield data[start : start + chunk_size]

        return cls(chunks, size=len(data))

    def chunks(self) -> AsyncIterator[bytes]:
        return self._open_chunks()

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])


class HashingPayload(Payload):
    """Wraps a payload and measures the bytes a sink actually consumed."""

    def __init__(self, inner: Payload, on_chunk: Callable[[], None] | None = None) -> None:
        super().__init__(self._measured, size=inner.size)
        self._inner = inner
        self._on_chunk = on_chunk
        self.sha256: str | None = None
        self.bytes_read = 0

    async def _measured(self) -> AsyncIterator[bytes]:
        digest = hashlib.sha256()
        count = 0
        async for chunk in self._inner.chunks():
            digest.update(chunk)
            count += len(chunk)
            if self._on_chunk is not None:
                self._on_chunk()
            yield chunk
        self.sha256 = digest.hexdigest()
        self.bytes_read = count


@dataclass
class Item:
    """A fetched source item: its listing entry, its content and whatever metadata mappings need."""

    ref: ItemRef
    payload: Payload
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Target:
    """A mapped item, ready for a sink. `dest_key` is deterministic so that a rerun finds it again."""

    dest_key: str
    payload: Payload
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    """A mapping's decision not to move an item, with the reason the report shows."""

    reason: str
    # The source still lists the item but marks it deleted (a Teams message keeps its place with
    # deletedDateTime): a copy made earlier is then handled like one of a deleted item.
    deleted_at_source: bool = False


@dataclass(frozen=True)
class DestRef:
    """Where an item landed in a sink and what the sink can tell about it."""

    dest_key: str
    dest_id: str
    size: int | None = None
    content_hash: str | None = None
    etag: str | None = None
    mtime: float | None = None  # seconds since the epoch, where the sink keeps modification times
    notes: tuple[str, ...] = ()  # what the sink could not carry over for this item (e.g. a share)


@dataclass(frozen=True)
class Capabilities:
    """What a sink declares about itself, so the engine never has to probe."""

    hashes: tuple[str, ...] = ()  # content hashes stat() reports, e.g. ("sha256",)
    mtime_precision: float | None = None  # seconds; None when mtimes are not kept
    cheap_find: bool = False  # find() costs about as much as a ledger read
    listing: bool = False  # list_keys() can enumerate a container for reconciliation
    delete: bool = False
    ordered: bool = False  # items of one source container must be written one at a time, in ledger order
