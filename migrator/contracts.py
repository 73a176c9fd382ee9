"""The two contracts every connector implements: read from a Source, write to a Sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from migrator.errors import ItemError
from migrator.model import (
    Capabilities,
    Change,
    Container,
    DestRef,
    Item,
    ItemRef,
    Skip,
    Target,
    User,
)


@runtime_checkable
class Source(Protocol):
    async def users(self, department: str | None = None, upns: Iterable[str] | None = None) -> list[User]:
        """Users of a department or named by UPN; unknown UPNs raise nothing but are absent."""
        ...

    def containers(self, user: User, workload: str) -> AsyncIterator[Container]: ...

    def changes(self, user: User, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        """Items new or changed since `cursor` (all of them when None), removals, then one Cursor."""
        ...

    async def fetch(self, user: User, container: Container, ref: ItemRef) -> Item: ...


@runtime_checkable
class Sink(Protocol):
    caps: Capabilities

    async def ensure_container(self, owner: str, path: tuple[str, ...]) -> str: ...

    async def find(self, owner: str, path: tuple[str, ...], target: Target) -> DestRef | None:
        """The item already stored under `target.dest_key`, if any: the idempotency probe."""
        ...

    async def put(self, owner: str, path: tuple[str, ...], target: Target, replace: DestRef | None = None) -> DestRef: ...

    async def stat(self, owner: str, ref: DestRef) -> DestRef | None:
        """Re-reads the stored item for verification; None when it is gone."""
        ...

    async def list_keys(self, owner: str, path: tuple[str, ...]) -> set[str]:
        """Every dest_key stored in a container; only called when `caps.listing` is true."""
        ...


@dataclass(frozen=True)
class WorkloadMapping:
    """How one workload translates: where a container goes (decided when planning) and each item."""

    container_path: Callable[[Container], tuple[str, ...] | None]  # None: the container is not migrated
    item: Callable[[Item, Container], Target | Skip]
    # Where needed, decides one user's container paths together (a subfolder follows its well-known
    # parent; rules must stay one-to-one) and raises ConfigError when they cannot; source id -> path.
    container_paths: Callable[[list[Container]], dict[str, tuple[str, ...] | None]] | None = None
    # A deeper check verify runs where hashes are not enough: stored bytes and a fresh source item -> problem or "".
    verify: Callable[[bytes, Item], str] | None = None

    def map(self, item: Item, container: Container) -> Target | Skip:
        """`item`, with any surprise in the source's data (a field of the wrong type, a value out
        of range) turned into that item's own failure, named, instead of a crash."""
        try:
            return self.item(item, container)
        except ItemError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, IndexError, OverflowError) as exc:
            raise ItemError(f"the source's {container.workload} data has an unexpected shape: {type(exc).__name__}: {exc}") from None
