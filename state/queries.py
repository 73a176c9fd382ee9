"""Reads of the ledger for the copier, the verifier, status and reports."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from state.models import Container, Event, Item, ItemState, Run, Scope

# The verifier's words for a copied item its target no longer holds; reconciliation counts these
# as items only at the source rather than as differing ones.
MISSING_AT_TARGET = "missing at target"


@dataclass(frozen=True)
class WorkItem:
    """An item claimed for copying, with what the copier needs to find its source and target."""

    item_id: int
    source_id: str
    kind: str
    name: str
    change_key: str
    size: int | None
    container_id: int
    container_source_id: str
    container_name: str
    container_path: tuple[str, ...]
    container_role: str
    target_path: tuple[str, ...]
    upn: str
    workload: str
    target_owner: str
    dest_key: str | None
    dest_id: str | None
    put_started: bool
    attempts: int
    listed: str | None = None


@dataclass(frozen=True)
class CopiedItem:
    item_id: int
    upn: str
    workload: str
    target_owner: str
    container_id: int
    target_path: tuple[str, ...]
    dest_key: str
    dest_id: str
    size: int | None
    content_hash: str | None
    dest_etag: str | None
    source_id: str = ""
    kind: str = ""
    change_key: str = ""
    container_source_id: str = ""
    container_name: str = ""
    container_path: tuple[str, ...] = ()
    container_role: str = ""
    dest_mtime: float | None = None


def encode_path(path: tuple[str, ...]) -> str:
    """Folder paths are stored as JSON lists: a folder's name may itself contain "/"."""
    return json.dumps(list(path), ensure_ascii=False)


def decode_path(stored: str) -> tuple[str, ...]:
    if stored.startswith("["):
        return tuple(json.loads(stored))
    return tuple(p for p in stored.split("/") if p)  # written by ledgers before paths were JSON


def scope_filter(stmt, upns: list[str] | None, workloads: list[str] | None):
    if upns is not None:
        stmt = stmt.where(Scope.upn.in_(upns))
    if workloads is not None:
        stmt = stmt.where(Scope.workload.in_(workloads))
    return stmt


class Queries:
    """Mixed into Ledger, which provides `engine`."""

    def copied_items(self, upns: list[str] | None, workloads: list[str] | None, after_id: int = 0, limit: int = 500,
                     states: tuple[str, ...] = (ItemState.COPIED, ItemState.VERIFIED, ItemState.MISMATCH),
                     ids: list[int] | None = None) -> list[CopiedItem]:
        """Items with a copy at the target, in id order; `states` (REMOVED) picks copies of items the source deleted,
        `ids` only those items (a worker's claimed share)."""
        with Session(self.engine) as s:
            stmt = (
                select(Item, Container, Scope)
                .join(Container, Item.container_id == Container.id)
                .join(Scope, Container.scope_id == Scope.id)
                .where(Item.state.in_(states), Item.dest_key.is_not(None), Item.dest_id.is_not(None), Item.id > after_id)
                .order_by(Item.id)
                .limit(limit)
            )
            if ids is not None:
                stmt = stmt.where(Item.id.in_(ids))
            rows = s.execute(scope_filter(stmt, upns, workloads)).all()
            return [
                CopiedItem(i.id, sc.upn, sc.workload, sc.target_owner, c.id, decode_path(c.target_path), i.dest_key, i.dest_id or "", i.size,
                           i.content_hash, i.dest_etag, i.source_id, i.kind, i.change_key, c.source_id, c.name,
                           decode_path(c.source_path or "[]"), c.role, i.dest_mtime)
                for i, c, sc in rows
            ]

    def dest_keys(self, container_id: int) -> set[str]:
        with Session(self.engine) as s:
            return set(s.scalars(select(Item.dest_key).where(Item.container_id == container_id, Item.dest_key.is_not(None))))

    def state_counts(self, upns: list[str] | None = None, workloads: list[str] | None = None, department: str | None = None):
        """Rows of (department, upn, workload, state, items, bytes)."""
        with Session(self.engine) as s:
            stmt = (
                select(Scope.department, Scope.upn, Scope.workload, Item.state, func.count(Item.id), func.coalesce(func.sum(Item.size), 0))
                .join(Container, Container.scope_id == Scope.id)
                .join(Item, Item.container_id == Container.id)
                .group_by(Scope.department, Scope.upn, Scope.workload, Item.state)
                .order_by(Scope.department, Scope.upn, Scope.workload)
            )
            if department is not None:
                stmt = stmt.where(Scope.department == department)
            return s.execute(scope_filter(stmt, upns, workloads)).all()

    def problems(self, upns: list[str] | None = None, workloads: list[str] | None = None, department: str | None = None):
        """Rows of (department, upn, workload, container, item name, state, reason) for items not moved."""
        with Session(self.engine) as s:
            stmt = (
                select(Scope.department, Scope.upn, Scope.workload, Container.name, Item.name, Item.state, Item.last_error, Item.attempts)
                .join(Container, Container.scope_id == Scope.id)
                .join(Item, Item.container_id == Container.id)
                .where(Item.state.in_([ItemState.FAILED, ItemState.SKIPPED, ItemState.MISMATCH, ItemState.REMOVED]))
                .order_by(Scope.department, Scope.upn, Scope.workload, Item.id)
            )
            if department is not None:
                stmt = stmt.where(Scope.department == department)
            return s.execute(scope_filter(stmt, upns, workloads)).all()

    def container_states(self, upns: list[str] | None = None, workloads: list[str] | None = None, department: str | None = None,
                         container_ids: list[int] | None = None):
        """Rows of (department, upn, workload, container id, source path, target path, target owner, state,
        items, bytes, missing at target) per container and state; a container without items has one
        row with state None."""
        missing = func.sum(case((Item.last_error == MISSING_AT_TARGET, 1), else_=0))
        with Session(self.engine) as s:
            stmt = (
                select(Scope.department, Scope.upn, Scope.workload, Container.id, Container.source_path, Container.target_path,
                       Scope.target_owner, Item.state, func.count(Item.id), func.coalesce(func.sum(Item.size), 0), func.coalesce(missing, 0))
                .join(Container, Container.scope_id == Scope.id)
                .outerjoin(Item, Item.container_id == Container.id)
                .group_by(Scope.department, Scope.upn, Scope.workload, Container.id, Container.source_path, Container.target_path,
                          Scope.target_owner, Item.state)
                .order_by(Scope.department, Scope.upn, Scope.workload, Container.id)
            )
            if department is not None:
                stmt = stmt.where(Scope.department == department)
            if container_ids is not None:
                stmt = stmt.where(Container.id.in_(container_ids))
            return s.execute(scope_filter(stmt, upns, workloads)).all()

    def problem_items(self, upns: list[str] | None = None, workloads: list[str] | None = None, department: str | None = None):
        """Rows of (department, upn, workload, container id, container source path, item id, source id, kind,
        name, size, state, reason, attempts, dest key) for every item that did not move or did not verify."""
        with Session(self.engine) as s:
            stmt = (
                select(Scope.department, Scope.upn, Scope.workload, Container.id, Container.source_path, Item.id, Item.source_id,
                       Item.kind, Item.name, Item.size, Item.state, Item.last_error, Item.attempts, Item.dest_key)
                .join(Container, Container.scope_id == Scope.id)
                .join(Item, Item.container_id == Container.id)
                .where(Item.state.in_([ItemState.FAILED, ItemState.SKIPPED, ItemState.MISMATCH, ItemState.REMOVED]))
                .order_by(Scope.department, Scope.upn, Scope.workload, Item.id)
            )
            if department is not None:
                stmt = stmt.where(Scope.department == department)
            return s.execute(scope_filter(stmt, upns, workloads)).all()

    def item_containers(self, upns: list[str] | None = None, workloads: list[str] | None = None, department: str | None = None) -> dict[int, int]:
        """Item id -> container id, for the items of the selected scopes."""
        with Session(self.engine) as s:
            stmt = select(Item.id, Item.container_id).join(Container, Item.container_id == Container.id).join(Scope, Container.scope_id == Scope.id)
            if department is not None:
                stmt = stmt.where(Scope.department == department)
            return dict(s.execute(scope_filter(stmt, upns, workloads)).all())

    def events_of(self, kinds: list[str]):
        """Rows (id, at, run_id, kind, subject, detail) of the audit events of these kinds, oldest first."""
        with Session(self.engine) as s:
            stmt = select(Event.id, Event.at, Event.run_id, Event.kind, Event.subject, Event.detail).where(Event.kind.in_(kinds)).order_by(Event.id)
            return s.execute(stmt).all()

    def runs(self, limit: int | None = 10) -> list[Run]:
        """The latest runs, newest first; all of them when `limit` is None."""
        with Session(self.engine) as s:
            return list(s.scalars(select(Run).order_by(Run.id.desc()).limit(limit)))

    def workers(self, limit: int = 20) -> list[Run]:
        """Runs that kept a heartbeat (workers on a shared ledger), latest first."""
        with Session(self.engine) as s:
            return list(s.scalars(select(Run).where(Run.heartbeat_at.is_not(None)).order_by(Run.id.desc()).limit(limit)))

    def leased(self, upns: list[str] | None = None, workloads: list[str] | None = None) -> int:
        """Unfinished items some run holds a lease on, expired or not."""
        with Session(self.engine) as s:
            stmt = (
                select(func.count(Item.id))
                .join(Container, Item.container_id == Container.id)
                .join(Scope, Container.scope_id == Scope.id)
                .where(Item.lease_owner.is_not(None), Item.state.in_([ItemState.PLANNED, ItemState.FAILED, ItemState.COPIED]))
            )
            return s.scalar(scope_filter(stmt, upns, workloads)) or 0

    def unfinished(self, max_attempts: int, upns: list[str] | None = None, workloads: list[str] | None = None) -> int:
        with Session(self.engine) as s:
            stmt = (
                select(func.count(Item.id))
                .join(Container, Item.container_id == Container.id)
                .join(Scope, Container.scope_id == Scope.id)
                .where((Item.state == ItemState.PLANNED) | ((Item.state == ItemState.FAILED) & (Item.attempts < max_attempts)))
            )
            return s.scalar(scope_filter(stmt, upns, workloads)) or 0
