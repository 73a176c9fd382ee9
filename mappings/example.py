"""Mapping of the example tenant's items: each becomes one file-like object named after its source."""

from __future__ import annotations

import hashlib
import re

from migrator.model import Container, Item, Skip, Target

_EXTENSION = {"message": ".eml", "event": ".ics", "contact": ".vcf", "chatMessage": ".json"}


def container_path(container: Container) -> tuple[str, ...]:
    return container.path or (container.name,)


def dest_key(source_id: str, name: str, kind: str) -> str:
    """Readable, filesystem-safe, and unique per source item: the name plus a digest of the id."""
    stem = re.sub(r"[^\w.-]+", "-", name).strip("-.")[:80] or "item"
    digest = hashlib.sha256(source_id.encode()).hexdigest()[:10]
    return f"{stem}--{digest}{_EXTENSION.get(kind, '')}"


def map_item(item: Item, container: Container) -> Target | Skip:
    if reason := item.metadata.get("unsupported"):
        return Skip(reason)
    return Target(dest_key=dest_key(item.ref.source_id, item.ref.name, item.ref.kind), payload=item.payload)
