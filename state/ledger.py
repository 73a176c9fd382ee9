"""The ledger's operations. Every method is one short transaction; state changes and their audit
events commit together, so a killed process leaves the ledger consistent."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, event, func, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from migrator.errors import ConfigError, LedgerLocked
from state.chain import AuditResult, audit_chain, chain_head, event_hash
from state.models import Container, Event, Item, ItemState, Run, Scope, utcnow
from state.schema import ensure_schema

__all__ = ["Ledger", "ItemState", "WorkItem", "PlanOutcome"]


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
    target_path: str
    upn: str
    workload: str
    target_owner: str
    dest_key: str | None
    dest_id: str | None
    put_started: bool
    attempts: int


@dataclass(frozen=True)
class CopiedItem:
    item_id: int
    upn: str
    workload: str
    target_owner: str
    container_id: int
    target_path: str
    dest_key: str
    dest_id: str
    size: int | None
    content_hash: str | None
    dest_etag: str | None


class PlanOutcome:
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database)
    return None


class Ledger:
    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(f"ledger URL {url!r} is not a database URL", hint="use e.g. sqlite:///migration.db or postgresql://host/db") from None
        self.url = url
        self.sqlite_path = _sqlite_path(url)
        if self.sqlite_path is not None:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, future=True)
        self.fault_hook: Callable[[str], None] | None = None
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            ensure_schema(self.engine)
        except OperationalError as exc:
            raise ConfigError(f"cannot open ledger {parsed.render_as_string(hide_password=True)}: {exc.orig}", hint="check --ledger / [ledger].url") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "before_commit", self._before_commit)
        self._lock_file: int | None = None

    def _before_commit(self, session: Session) -> None:
        if self.fault_hook is not None:
            self.fault_hook("commit")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.release()
        self.engine.dispose()

    # -- exclusive use ---------------------------------------------------------------------------

    def acquire(self) -> int:
        """Takes the ledger for this process; returns how many stale claims of a dead run it freed.

        A SQLite ledger lives on one host, so an OS file lock says whether anybody else uses it; the
        OS drops the lock when a process dies, which is what makes claims of a killed run reclaimable.
        """
        if self.sqlite_path is not None and self._lock_file is None:
            lock_path = self.sqlite_path.with_name(self.sqlite_path.name + ".lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise LedgerLocked(f"ledger {self.sqlite_path} is in use by {holder}", hint="wait for that run to finish, or stop it") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
            self._lock_file = fd
        return self._recover_interrupted_runs()

    def release(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            os.close(self._lock_file)
            self._lock_file = None

    def _recover_interrupted_runs(self) -> int:
        with self.transaction() as s:
            interrupted = s.scalars(select(Run).where(Run.status == "running")).all()
            dead = [run.id for run in interrupted if self._run_is_dead(run)]
            if not dead:
                return 0
            freed = s.execute(update(Item).where(Item.lease_owner.in_(dead)).values(lease_owner=None)).rowcount
            s.execute(update(Run).where(Run.id.in_(dead)).values(status="interrupted", finished_at=utcnow()))
            for run_id in dead:
                self._append(s, None, "run.interrupted", f"run {run_id}", {"claims_freed": freed})
            return freed

    def _run_is_dead(self, run: Run) -> bool:
        if self.sqlite_path is not None:
            return True  # we hold the exclusive lock, so no other process is running on this ledger
        if run.host != socket.gethostname():
            return False
        try:
            os.kill(run.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return run.pid == os.getpid()

    # -- runs and events -------------------------------------------------------------------------

    def start_run(self, command: str) -> int:
        with self.transaction() as s:
            run = Run(command=command, host=socket.gethostname(), pid=os.getpid())
            s.add(run)
            s.flush()
            self._append(s, run.id, "run.started", command, {})
            return run.id

    def finish_run(self, run_id: int, status: str, totals: dict | None = None) -> None:
        with self.transaction() as s:
            s.execute(update(Run).where(Run.id == run_id).values(status=status, finished_at=utcnow()))
            s.execute(update(Item).where(Item.lease_owner == run_id).values(lease_owner=None))
            self._append(s, run_id, "run.finished", status, totals or {})

    def _append(self, s: Session, run_id: int | None, kind: str, subject: str, detail: dict) -> None:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(7031)"))  # serialises chain appends across hosts
        head_id, head_hash = chain_head(s)
        row = Event(
            id=head_id + 1,
            at=utcnow(),
            run_id=run_id,
            kind=kind,
            subject=subject,
            detail=json.dumps(detail, sort_keys=True, separators=(",", ":")),
            prev_hash=head_hash,
            hash="",
        )
        row.hash = event_hash(row)
        s.add(row)

    def record_event(self, run_id: int | None, kind: str, subject: str, detail: dict | None = None) -> None:
        with self.transaction() as s:
            self._append(s, run_id, kind, subject, detail or {})

    def audit(self, expect_head: str | None = None) -> AuditResult:
        with Session(self.engine) as s:
            return audit_chain(s, expect_head)

    def head(self) -> str:
        with Session(self.engine) as s:
            return chain_head(s)[1]

    # -- planning --------------------------------------------------------------------------------

    def upsert_scope(self, upn: str, department: str, workload: str, target_owner: str) -> int:
        with self.transaction() as s:
            scope = s.scalar(select(Scope).where(Scope.upn == upn, Scope.workload == workload))
            if scope is None:
                scope = Scope(upn=upn, department=department, workload=workload, target_owner=target_owner)
                s.add(scope)
            else:
                scope.department, scope.target_owner = department, target_owner
            s.flush()
            return scope.id

    def upsert_container(self, scope_id: int, source_id: str, name: str, target_path: str) -> tuple[int, str | None]:
        """Returns the container's row id and its committed delta cursor."""
        with self.transaction() as s:
            row = s.scalar(select(Container).where(Container.scope_id == scope_id, Container.source_id == source_id))
            if row is None:
                row = Container(scope_id=scope_id, source_id=source_id, name=name, target_path=target_path)
                s.add(row)
            else:
                row.name, row.target_path = name, target_path
            s.flush()
            return row.id, row.cursor

    def find_container(self, upn: str, workload: str, source_id: str) -> tuple[int, str | None] | None:
        with Session(self.engine) as s:
            row = s.execute(
                select(Container.id, Container.cursor).join(Scope, Container.scope_id == Scope.id)
                .where(Scope.upn == upn, Scope.workload == workload, Container.source_id == source_id)
            ).first()
            return (row.id, row.cursor) if row else None

    def known_items(self, container_id: int) -> dict[str, tuple[str, str]]:
        with Session(self.engine) as s:
            rows = s.execute(select(Item.source_id, Item.change_key, Item.state).where(Item.container_id == container_id))
            return {r.source_id: (r.change_key, r.state) for r in rows}

    def apply_plan(
        self,
        run_id: int,
        container_id: int,
        upserts: list[tuple[str, str, str, str, int | None]],
        removals: list[str],
    ) -> None:
        """Upserts (source_id, change_key, kind, name, size) as planned and marks removals, in one batch."""
        with self.transaction() as s:
            existing = {
                row.source_id: row
                for row in s.scalars(
                    select(Item).where(Item.container_id == container_id, Item.source_id.in_([u[0] for u in upserts] + removals))
                )
            }
            for source_id, change_key, kind, name, size in upserts:
                row = existing.get(source_id)
                if row is None:
                    s.add(Item(container_id=container_id, source_id=source_id, change_key=change_key, kind=kind, name=name, size=size, state=ItemState.PLANNED))
                elif row.change_key != change_key or row.state == ItemState.REMOVED:
                    row.change_key, row.kind, row.name, row.size = change_key, kind, name, size
                    row.state, row.attempts, row.last_error = ItemState.PLANNED, 0, None
            for source_id in removals:
                row = existing.get(source_id)
                if row is not None and row.state != ItemState.REMOVED:
                    row.state, row.last_error = ItemState.REMOVED, "deleted at source"
                    self._append(s, run_id, "item.removed_at_source", f"item {row.id}", {"source_id": source_id})

    def set_pending_cursor(self, run_id: int, container_id: int, cursor: str, counts: dict[str, int]) -> None:
        with self.transaction() as s:
            row = s.get(Container, container_id)
            row.pending_cursor, row.planned_at = cursor, utcnow()
            self._append(s, run_id, "container.planned", f"container {container_id}", counts)

    def reset_cursor(self, container_id: int) -> None:
        with self.transaction() as s:
            row = s.get(Container, container_id)
            row.cursor = row.pending_cursor = None

    def promote_cursors(self, run_id: int) -> int:
        """A container's new cursor becomes the committed one only once none of its items is pending."""
        with self.transaction() as s:
            pending = select(Item.container_id).where(Item.state == ItemState.PLANNED).distinct()
            rows = s.scalars(select(Container).where(Container.pending_cursor.is_not(None), Container.id.not_in(pending))).all()
            for row in rows:
                row.cursor, row.pending_cursor = row.pending_cursor, None
            if rows:
                self._append(s, run_id, "cursor.promoted", f"{len(rows)} containers", {"containers": [r.id for r in rows]})
            return len(rows)

    # -- copying ---------------------------------------------------------------------------------

    def _scope_filter(self, stmt, upns: list[str] | None, workloads: list[str] | None):
        if upns is not None:
            stmt = stmt.where(Scope.upn.in_(upns))
        if workloads is not None:
            stmt = stmt.where(Scope.workload.in_(workloads))
        return stmt

    def claim(
        self, run_id: int, max_attempts: int, upns: list[str] | None, workloads: list[str] | None, after_id: int = 0, limit: int = 500
    ) -> list[WorkItem]:
        """Leases up to `limit` unfinished items (planned, or failed with attempts left) to this run.

        Items come in id order from `after_id` on, so one run tries each item once."""
        with self.transaction() as s:
            stmt = (
                select(Item, Container, Scope)
                .join(Container, Item.container_id == Container.id)
                .join(Scope, Container.scope_id == Scope.id)
                .where(
                    Item.id > after_id,
                    Item.lease_owner.is_(None),
                    (Item.state == ItemState.PLANNED) | ((Item.state == ItemState.FAILED) & (Item.attempts < max_attempts)),
                )
                .order_by(Item.id)
                .limit(limit)
            )
            stmt = self._scope_filter(stmt, upns, workloads)
            if s.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True, of=Item)
            rows = s.execute(stmt).all()
            claimed = []
            for item, container, scope in rows:
                item.lease_owner = run_id
                claimed.append(
                    WorkItem(
                        item.id, item.source_id, item.kind, item.name, item.change_key, item.size,
                        container.id, container.source_id, container.name, container.target_path, scope.upn, scope.workload,
                        scope.target_owner, item.dest_key, item.dest_id, item.put_started_at is not None, item.attempts,
                    )
                )
            return claimed

    def record_put_intent(self, item_id: int, dest_key: str) -> None:
        with self.transaction() as s:
            row = s.get(Item, item_id)
            row.dest_key, row.put_started_at = dest_key, utcnow()

    def record_copied(
        self, run_id: int, item_id: int, dest_key: str, dest_id: str, etag: str | None, size: int, content_hash: str, healed: bool
    ) -> None:
        with self.transaction() as s:
            row = s.get(Item, item_id)
            row.state, row.dest_key, row.dest_id, row.dest_etag = ItemState.COPIED, dest_key, dest_id, etag
            row.size, row.content_hash, row.last_error, row.lease_owner = size, content_hash, None, None
            row.put_started_at = None
            detail = {"dest_key": dest_key, "bytes": size, "sha256": content_hash}
            if healed:
                detail["found_at_target"] = True
            self._append(s, run_id, "item.copied", f"item {item_id}", detail)

    def record_failed(self, run_id: int, item_id: int, reason: str) -> None:
        with self.transaction() as s:
            row = s.get(Item, item_id)
            row.state, row.last_error, row.lease_owner = ItemState.FAILED, reason, None
            row.attempts += 1
            self._append(s, run_id, "item.failed", f"item {item_id}", {"reason": reason, "attempt": row.attempts})

    def record_skipped(self, run_id: int, item_id: int, reason: str) -> None:
        with self.transaction() as s:
            row = s.get(Item, item_id)
            row.state, row.last_error, row.lease_owner = ItemState.SKIPPED, reason, None
            self._append(s, run_id, "item.skipped", f"item {item_id}", {"reason": reason})

    def release_claim(self, item_id: int) -> None:
        with self.transaction() as s:
            s.get(Item, item_id).lease_owner = None

    def retry_failed(self, run_id: int, upns: list[str] | None, workloads: list[str] | None) -> int:
        """Gives items that used up their attempts a fresh set, at an admin's request."""
        with self.transaction() as s:
            ids_stmt = (
                select(Item.id).join(Container, Item.container_id == Container.id).join(Scope, Container.scope_id == Scope.id)
                .where(Item.state.in_([ItemState.FAILED, ItemState.MISMATCH]))
            )
            ids = list(s.scalars(self._scope_filter(ids_stmt, upns, workloads)))
            if ids:
                s.execute(update(Item).where(Item.id.in_(ids)).values(attempts=0, state=ItemState.PLANNED))
                self._append(s, run_id, "items.retry_requested", f"{len(ids)} items", {})
            return len(ids)

    # -- verification ----------------------------------------------------------------------------

    def copied_items(self, upns: list[str] | None, workloads: list[str] | None, after_id: int = 0, limit: int = 500) -> list[CopiedItem]:
        with Session(self.engine) as s:
            stmt = (
                select(Item, Container, Scope)
                .join(Container, Item.container_id == Container.id)
                .join(Scope, Container.scope_id == Scope.id)
                .where(Item.state.in_([ItemState.COPIED, ItemState.VERIFIED, ItemState.MISMATCH]), Item.dest_key.is_not(None), Item.id > after_id)
                .order_by(Item.id)
                .limit(limit)
            )
            rows = s.execute(self._scope_filter(stmt, upns, workloads)).all()
            return [
                CopiedItem(i.id, sc.upn, sc.workload, sc.target_owner, c.id, c.target_path, i.dest_key, i.dest_id or "", i.size, i.content_hash, i.dest_etag)
                for i, c, sc in rows
            ]

    def record_verification(self, run_id: int, item_id: int, ok: bool, problem: str = "") -> None:
        with self.transaction() as s:
            row = s.get(Item, item_id)
            row.state = ItemState.VERIFIED if ok else ItemState.MISMATCH
            row.last_error = None if ok else problem
            kind = "item.verified" if ok else "item.mismatch"
            self._append(s, run_id, kind, f"item {item_id}", {} if ok else {"problem": problem})

    def dest_keys(self, container_id: int) -> set[str]:
        with Session(self.engine) as s:
            return set(s.scalars(select(Item.dest_key).where(Item.container_id == container_id, Item.dest_key.is_not(None))))

    # -- reading for status and reports ----------------------------------------------------------

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
            return s.execute(self._scope_filter(stmt, upns, workloads)).all()

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
            return s.execute(self._scope_filter(stmt, upns, workloads)).all()

    def runs(self, limit: int = 10) -> list[Run]:
        with Session(self.engine) as s:
            return list(s.scalars(select(Run).order_by(Run.id.desc()).limit(limit)))

    def unfinished(self, max_attempts: int, upns: list[str] | None = None, workloads: list[str] | None = None) -> int:
        with Session(self.engine) as s:
            stmt = (
                select(func.count(Item.id))
                .join(Container, Item.container_id == Container.id)
                .join(Scope, Container.scope_id == Scope.id)
                .where((Item.state == ItemState.PLANNED) | ((Item.state == ItemState.FAILED) & (Item.attempts < max_attempts)))
            )
            return s.scalar(self._scope_filter(stmt, upns, workloads)) or 0


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


