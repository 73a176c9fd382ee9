"""What each workload reader provides to the Graph source: its containers, the changes in one since
a cursor, and one item's content. Readers share one GraphSession."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

from migrator.model import Change, Container, Item, ItemRef, User


class WorkloadReader(Protocol):
    workload: str

    def containers(self, user: User) -> AsyncIterator[Container]: ...

    def changes(self, user: User, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        """Items new or changed since `cursor` (all when None), Removed entries, then one Cursor (the
        whole deltaLink) when the workload has delta; without a Cursor every pass is a full listing.
        Raises CursorExpired when Graph answers 410 for the cursor."""
        ...

    async def fetch(self, user: User, container: Container, ref: ItemRef) -> Item:
        """The item's content as a streamed Payload and its Graph JSON (plus extras) as metadata."""
        ...


def canonical(value: Any) -> bytes:
    """The same JSON bytes for the same content, whatever order Graph sent the properties in:
    the payload of items whose content is Graph's JSON, so its hash changes only with the content."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
