"""The ledger's operations. Every method is one short transaction; state changes and their audit
events commit together, so a killed process leaves the ledger consistent."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import create_engine, event, insert, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from migrator.errors import ConfigError, LedgerLocked
from state.chain import AuditResult, audit_chain, chain_head, event_hash
from state.items import ItemWrites
from state.models import Event, Item, ItemState, Run, utcnow
from state.queries import CopiedItem, Queries, WorkItem
from state.schema import ensure_schema

__all__ = ["CopiedItem", "ItemState", "Ledger", "WorkItem"]

ORDERED_WORKLOADS_LOCK = 7031  # PostgreSQL advisory lock key (7030 guards schema upgrades)


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database)
    return None


class Ledger(ItemWrites, Queries):
    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(f"ledger URL {url!r} is not a database URL", hint="use e.g. sqlite:///migration.db or postgresql://host/db") from None
        self.url = url
        self.sqlite_path = _sqlite_path(url)
        if self.sqlite_path is not None:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            # The ledger names every item (subjects, file names): only its owner reads it. SQLite
            # gives its -wal and -shm files the database file's mode.
            os.close(os.open(self.sqlite_path, os.O_RDWR | os.O_CREAT, 0o600))
        if parsed.get_backend_name() == "postgresql" and "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3; SQLAlchemy would pick psycopg2
        try:
            self.engine: Engine = create_engine(parsed, future=True)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"the ledger's database driver {exc.name} is not installed",
                              hint="pip install 'm365-migrator[postgres]' for a PostgreSQL ledger") from None
        self.fault_hook: Callable[[str], None] | None = None
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            ensure_schema(self.engine)
        except OperationalError as exc:
            raise ConfigError(f"cannot open ledger {parsed.render_as_string(hide_password=True)}: {exc.orig}", hint="check --ledger / [ledger].url") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "before_commit", self._before_commit)
        event.listen(self._sessions, "after_commit", self._after_commit)
        self._lock_file: int | None = None
        self._ordered_lock = None  # the connection holding the ordered workloads' advisory lock, while held
        # While this process holds the ledger exclusively the chain head is known without a query.
        self._head: tuple[int, str] | None = None
        # A worker's run silent for this long is taken for dead (its leases have long expired by then).
        self.stale_after = 300.0

    def _before_commit(self, session: Session) -> None:
        if self.fault_hook is not None:
            self.fault_hook("commit")

    def _after_commit(self, session: Session) -> None:
        head = session.info.pop("chain_head", None)
        if head is not None and self._lock_file is not None:
            self._head = head

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

    def hold_ordered_workloads(self) -> bool:
        """Whether this process may copy the workloads whose items must reach the target in order (chats).

        On PostgreSQL one worker at a time holds them, through a session advisory lock that lasts as long as its
        connection: the database drops it when the worker dies, and the next worker asking takes them over. Their
        pace is set by the tenant's Teams read limit anyway, which one worker already uses up. A SQLite ledger admits
        one process, which therefore holds them."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self._ordered_lock is not None:
            return True
        connection = self.engine.connect()
        try:
            held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ORDERED_WORKLOADS_LOCK}).scalar())
            connection.commit()
        except BaseException:
            connection.close()
            raise
        if not held:
            connection.close()
            return False
        self._ordered_lock = connection
        return True

    def release(self) -> None:
        self._head = None
        if self._ordered_lock is not None:
            # Unlocked explicitly: closing only returns the connection to the pool, where the session, and its
            # lock, would live on. (A dead worker's lock goes with its session, a moment after its end.)
            with contextlib.suppress(OperationalError):
                self._ordered_lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ORDERED_WORKLOADS_LOCK})
                self._ordered_lock.commit()
                self._ordered_lock.close()
            self._ordered_lock = None
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
            freed = s.execute(update(Item).where(Item.lease_owner.in_(dead)).values(lease_owner=None, lease_expires_at=None)).rowcount
            s.execute(update(Run).where(Run.id.in_(dead)).values(status="interrupted", finished_at=utcnow()))
            for run_id in dead:
                self._append(s, None, "run.interrupted", f"run {run_id}", {"claims_freed": freed})
            return freed

    def _run_is_dead(self, run: Run) -> bool:
        if self.sqlite_path is not None:
            return True  # we hold the exclusive lock, so no other process is running on this ledger
        if run.heartbeat_at is not None and run.heartbeat_at < utcnow() - dt.timedelta(seconds=self.stale_after):
            return True  # a worker whose heartbeat stopped, on whichever host
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

    def start_run(self, command: str, tls_verified: bool = True) -> int:
        """`tls_verified` false: the run's connections skip certificate checks (--insecure-skip-tls-verify),
        which its run.started event keeps for the audit and the reports."""
        with self.transaction() as s:
            run = Run(command=command, host=socket.gethostname(), pid=os.getpid())
            s.add(run)
            s.flush()
            self._append(s, run.id, "run.started", command, {"tls_verified": tls_verified})
            return run.id

    def finish_run(self, run_id: int, status: str, totals: dict | None = None) -> None:
        with self.transaction() as s:
            s.execute(update(Run).where(Run.id == run_id).values(status=status, finished_at=utcnow()))
            s.execute(update(Item).where(Item.lease_owner == run_id).values(lease_owner=None, lease_expires_at=None))
            self._append(s, run_id, "run.finished", status, totals or {})

    def _append(self, s: Session, run_id: int | None, kind: str, subject: str, detail: dict) -> None:
        self._append_many(s, run_id, [(kind, subject, detail)])

    def _append_many(self, s: Session, run_id: int | None, entries: list[tuple[str, str, dict]]) -> None:
        """Chains (kind, subject, detail) events after the head, in one multi-row insert."""
        if not entries:
            return
        head = s.info.get("chain_head") or self._head
        if head is None:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(7031)"))  # serialises chain appends across hosts
            head = chain_head(s)
        rows = []
        for kind, subject, detail in entries:
            row = Event(
                id=head[0] + 1,
                at=utcnow(),
                run_id=run_id,
                kind=kind,
                subject=subject,
                detail=json.dumps(detail, sort_keys=True, separators=(",", ":")),
                prev_hash=head[1],
            )
            row.hash = event_hash(row)
            rows.append({"id": row.id, "at": row.at, "run_id": run_id, "kind": kind, "subject": subject, "detail": row.detail,
                         "prev_hash": row.prev_hash, "hash": row.hash})
            head = (row.id, row.hash)
        s.execute(insert(Event), rows)
        s.info["chain_head"] = head

    def record_event(self, run_id: int | None, kind: str, subject: str, detail: dict | None = None) -> None:
        with self.transaction() as s:
            self._append(s, run_id, kind, subject, detail or {})

    def record_events(self, run_id: int | None, events: list[tuple[str, str, dict]]) -> None:
        """Several (kind, subject, detail) events in one transaction."""
        with self.transaction() as s:
            self._append_many(s, run_id, events)

    def audit(self, expect_head: str | None = None) -> AuditResult:
        with Session(self.engine) as s:
            return audit_chain(s, expect_head)

    def head(self) -> str:
        with Session(self.engine) as s:
            return chain_head(s)[1]

def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


