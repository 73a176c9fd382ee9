"""SQLAlchemy 2.0 models of the ledger. Schema changes go through state/schema.py."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class ItemState(StrEnum):
    PLANNED = "planned"
    COPIED = "copied"
    VERIFIED = "verified"
    MISMATCH = "mismatch"
    FAILED = "failed"
    SKIPPED = "skipped"
    REMOVED = "removed"  # deleted at the source; what was copied stays at the target
    DELETED = "deleted"  # deleted at the source, then at the target too (sync --propagate-deletes)


DONE_STATES = (ItemState.COPIED, ItemState.VERIFIED, ItemState.SKIPPED, ItemState.REMOVED, ItemState.DELETED)


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "run"

    id: Mapped[int] = mapped_column(primary_key=True)
    command: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(40), default="running")
    # Written by workers sharing one ledger: a run whose heartbeat stops is dead, wherever it ran.
    heartbeat_at: Mapped[dt.datetime | None]
    items_done: Mapped[int] = mapped_column(Integer, default=0)


class Scope(Base):
    """One user's one workload: the unit that status and reports break down by."""

    __tablename__ = "scope"
    __table_args__ = (UniqueConstraint("upn", "workload"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    upn: Mapped[str] = mapped_column(String(320))
    department: Mapped[str] = mapped_column(String(200), default="")
    workload: Mapped[str] = mapped_column(String(20))
    target_owner: Mapped[str] = mapped_column(String(320), default="")

    containers: Mapped[list[Container]] = relationship(back_populates="scope")


class Container(Base):
    __tablename__ = "container"
    __table_args__ = (UniqueConstraint("scope_id", "source_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope_id: Mapped[int] = mapped_column(ForeignKey("scope.id"))
    source_id: Mapped[str] = mapped_column(String(512))
    name: Mapped[str] = mapped_column(String(512), default="")
    # The source's own path (JSON list; names may hold "/") and role (inbox, default, channel, ...).
    source_path: Mapped[str] = mapped_column(Text, default="[]")
    role: Mapped[str] = mapped_column(String(40), default="")
    target_path: Mapped[str] = mapped_column(Text, default="")
    cursor: Mapped[str | None] = mapped_column(Text)
    pending_cursor: Mapped[str | None] = mapped_column(Text)
    planned_at: Mapped[dt.datetime | None]

    scope: Mapped[Scope] = relationship(back_populates="containers")


class Item(Base):
    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("container_id", "source_id"),
        Index("ix_item_state", "state"),
        # Claims read "the next unfinished items in id order": a range of this index, on SQLite and PostgreSQL alike.
        Index("ix_item_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("container.id"))
    source_id: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(Text, default="")
    change_key: Mapped[str] = mapped_column(String(512), default="")
    size: Mapped[int | None] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(128))
    dest_key: Mapped[str | None] = mapped_column(Text)
    dest_id: Mapped[str | None] = mapped_column(Text)
    dest_etag: Mapped[str | None] = mapped_column(String(256))
    # The modification time the target confirmed it keeps (files), compared again by verify.
    dest_mtime: Mapped[float | None] = mapped_column(Float)
    # What the source's listing already said about the item (Teams messages: the whole message), so that
    # copying need not read it again; cleared once the item is copied.
    listed: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default=ItemState.PLANNED)
    # Set before a sink write starts: a later run then probes the sink before writing again.
    put_started_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[int | None] = mapped_column(Integer)
    # A claim by a worker on a shared ledger lasts until then unless renewed; past it, others may take the item.
    lease_expires_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Event(Base):
    """Append-only audit log; `hash` covers the row and the previous row's hash."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    run_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
