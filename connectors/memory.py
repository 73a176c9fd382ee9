"""In-memory source and sink: the reference implementations of the contracts, used by the engine's
tests and as the backing store of the example data set."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from migrator.errors import CursorExpired, ItemError
from migrator.model import (
    Capabilities,
    Change,
    Container,
    Cursor,
    DestRef,
    Item,
    ItemRef,
    Payload,
    Removed,
    Target,
    User,
)


@dataclass
class _SourceItem:
    ref: ItemRef
    data: bytes
    metadata: dict
    version: int


@dataclass
class _SourceContainer:
    container: Container
    items: dict[str, _SourceItem] = field(default_factory=dict)
    tombstones: dict[str, int] = field(default_factory=dict)


class MemorySource:
    """A mutable source whose cursors are version numbers, so tests can drive delta passes."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._containers: dict[tuple[str, str], list[_SourceContainer]] = {}
        self._version = 0
        self.oldest_cursor = 0  # cursors below this answer CursorExpired, like Graph's 410

    def add_user(self, user: User) -> None:
        self._users[user.upn.lower()] = user

    def add_container(self, upn: str, container: Container) -> None:
        self._containers.setdefault((upn.lower(), container.workload), []).append(_SourceContainer(container))

    def _find(self, upn: str, container_id: str) -> _SourceContainer:
        for (owner, _), boxes in self._containers.items():
            if owner == upn.lower():
                for box in boxes:
                    if box.container.source_id == container_id:
                        return box
        raise KeyError(container_id)

    def put_item(self, upn: str, container_id: str, source_id: str, data: bytes, kind: str = "blob", name: str = "", metadata: dict | None = None) -> None:
        box = self._find(upn, container_id)
        self._version += 1
        change_key = hashlib.sha256(data).hexdigest()[:16] + f".{self._version}"
        ref = ItemRef(source_id=source_id, change_key=change_key, kind=kind, name=name or source_id, size=len(data))
        box.items[source_id] = _SourceItem(ref, data, metadata or {}, self._version)
        box.tombstones.pop(source_id, None)

    def delete_item(self, upn: str, container_id: str, source_id: str) -> None:
        box = self._find(upn, container_id)
        self._version += 1
        del box.items[source_id]
        box.tombstones[source_id] = self._version

    def items_of(self, upn: str, workload: str) -> dict[tuple[str, str], bytes]:
        """(container id, item id) -> content, for comparing a sink against its source."""
        return {
            (box.container.source_id, sid): item.data
            for box in self._containers.get((upn.lower(), workload), [])
            for sid, item in box.items.items()
        }

    def all_users(self) -> list[User]:
        return list(self._users.values())

    async def users(self, department: str | None = None, upns: Iterable[str] | None = None) -> list[User]:
        if upns is not None:
            return [self._users[u.lower()] for u in upns if u.lower() in self._users]
        return [u for u in self._users.values() if department is None or u.department == department]

    async def containers(self, user: User, workload: str) -> AsyncIterator[Container]:
        for box in self._containers.get((user.upn.lower(), workload), []):
            yield box.container

    async def changes(self, user: User, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        box = self._find(user.upn, container.source_id)
        since = int(cursor) if cursor is not None else 0
        if cursor is not None and since < self.oldest_cursor:
            raise CursorExpired(f"cursor {cursor} of {container.name} has expired")
        for item in sorted(box.items.values(), key=lambda i: i.version):
            if item.version > since:
                yield item.ref
        if cursor is not None:
            for source_id, version in box.tombstones.items():
                if version > since:
                    yield Removed(source_id)
        yield Cursor(str(self._version))

    async def fetch(self, user: User, container: Container, ref: ItemRef) -> Item:
        box = self._find(user.upn, container.source_id)
        stored = box.items.get(ref.source_id)
        if stored is None:
            raise ItemError(f"{ref.name} no longer exists at the source")
        if stored.metadata.get("fetch_error"):
            raise ItemError(stored.metadata["fetch_error"])
        chunk_size = stored.metadata.get("chunk_size", 64 * 1024)
        return Item(stored.ref, Payload.from_bytes(stored.data, chunk_size=chunk_size), dict(stored.metadata))


@dataclass
class _Stored:
    dest_id: str
    dest_key: str
    data: bytes


class MemorySink:
    """Stores like a mailbox: put always adds, so a second put of one key is a visible duplicate."""

    def __init__(self, cheap_find: bool = True) -> None:
        # cheap_find=False makes it behave like a remote mailbox, where the engine probes sparingly.
        self.caps = Capabilities(hashes=("sha256",), cheap_find=cheap_find, listing=True, delete=True)
        self.folders: dict[tuple[str, tuple[str, ...]], list[_Stored]] = {}
        self._ids = itertools.count(1)
        self.puts = 0

    async def ensure_container(self, owner: str, path: tuple[str, ...]) -> str:
        self.folders.setdefault((owner, path), [])
        return "/".join(path)

    def _folder(self, owner: str, path: tuple[str, ...]) -> list[_Stored]:
        try:
            return self.folders[(owner, path)]
        except KeyError:
            raise ItemError(f"folder {'/'.join(path)} of {owner} does not exist") from None

    async def find(self, owner: str, path: tuple[str, ...], target: Target) -> DestRef | None:
        for stored in self._folder(owner, path):
            if stored.dest_key == target.dest_key:
                return self._ref(stored)
        return None

    async def put(self, owner: str, path: tuple[str, ...], target: Target, replace: DestRef | None = None) -> DestRef:
        folder = self._folder(owner, path)
        data = await target.payload.read_all()
        stored = _Stored(f"{owner}:{next(self._ids)}", target.dest_key, data)
        folder.append(stored)
        self.puts += 1
        if replace is not None:
            folder[:] = [s for s in folder if s.dest_id != replace.dest_id]
        return self._ref(stored)

    async def stat(self, owner: str, ref: DestRef) -> DestRef | None:
        for (folder_owner, _), folder in self.folders.items():
            if folder_owner == owner:
                for stored in folder:
                    if stored.dest_id == ref.dest_id:
                        return self._ref(stored)
        return None

    async def list_keys(self, owner: str, path: tuple[str, ...]) -> set[str]:
        return {s.dest_key for s in self.folders.get((owner, path), [])}

    async def delete(self, owner: str, ref: DestRef) -> bool:
        for (folder_owner, _), folder in self.folders.items():
            if folder_owner == owner:
                for stored in folder:
                    if stored.dest_id == ref.dest_id:
                        folder.remove(stored)
                        return True
        return False

    def contents(self, owner: str) -> list[tuple[tuple[str, ...], str, bytes]]:
        return [(path, s.dest_key, s.data) for (o, path), folder in self.folders.items() if o == owner for s in folder]

    @staticmethod
    def _ref(stored: _Stored) -> DestRef:
        return DestRef(stored.dest_key, stored.dest_id, len(stored.data), hashlib.sha256(stored.data).hexdigest())
