"""Versioned collections: every add, change and removal gets a tenant-wide version number, which is
what delta tokens remember. An entity's latest state is all that is kept, as in Graph: a delta
reports the current state of what changed, not each intermediate edit."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class Clock:
    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.now = 0

    def tick(self) -> int:
        with self._lock:
            self.now = next(self._counter)
            return self.now


@dataclass
class Change:
    id: str
    version: int
    entity: dict[str, Any] | None  # None: removed


class Collection:
    """Entities in insertion order, each with the version of its last change; removals leave a tombstone."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._entries: dict[str, Change] = {}
        self._lock = threading.Lock()

    def load(self, entities: list[dict[str, Any]], key: str = "id") -> None:
        """The initial state: version 0, so the first delta lists everything and a later one nothing."""
        with self._lock:
            for entity in entities:
                self._entries[entity[key]] = Change(entity[key], 0, entity)

    def upsert(self, entity: dict[str, Any], key: str = "id") -> int:
        version = self.clock.tick()
        with self._lock:
            self._entries.pop(entity[key], None)  # a change moves the entity to the end, like a new version
            self._entries[entity[key]] = Change(entity[key], version, entity)
        return version

    def remove(self, entity_id: str) -> dict[str, Any] | None:
        version = self.clock.tick()
        with self._lock:
            previous = self._entries.pop(entity_id, None)
            self._entries[entity_id] = Change(entity_id, version, None)
        return previous.entity if previous else None

    def get(self, entity_id: str) -> dict[str, Any] | None:
        entry = self._entries.get(entity_id)
        return entry.entity if entry else None

    def current(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e.entity for e in self._entries.values() if e.entity is not None]

    def changes(self, since: int, until: int) -> list[Change]:
        """What changed after `since` up to and including `until`; a negative `since` asks for a full
        listing: every entity that exists, no removals."""
        with self._lock:
            entries = list(self._entries.values())
        if since < 0:
            return [e for e in entries if e.entity is not None and e.version <= until]
        return sorted((e for e in entries if since < e.version <= until), key=lambda e: e.version)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.current())

    def __len__(self) -> int:
        return len(self.current())
