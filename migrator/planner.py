"""Planning: list what changed at the source since each container's cursor and record it in the
ledger as planned items. An idempotent upsert, so planning twice plans nothing new."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from mappings.identity import Identity
from migrator.contracts import Source, WorkloadMapping
from migrator.errors import CursorExpired
from migrator.model import Container, Cursor, ItemRef, Removed, User
from migrator.progress import NullProgress, ProgressReporter
from state.ledger import Ledger
from state.models import ItemState

BATCH = 500
GONE = (ItemState.REMOVED, ItemState.DELETED)


@dataclass
class PlanTotals:
    """Counts per (upn, workload) of new, changed, unchanged and removed items."""

    counts: dict[tuple[str, str], Counter] = field(default_factory=dict)
    expired_cursors: int = 0
    # Containers whose source suddenly read as empty while the ledger holds items: "upn workload path" -> items held.
    guarded: dict[str, int] = field(default_factory=dict)

    def add(self, upn: str, workload: str, counts: Counter) -> None:
        self.counts.setdefault((upn, workload), Counter()).update(counts)

    def by_workload(self) -> dict[str, Counter]:
        out: dict[str, Counter] = {}
        for (_, workload), counts in self.counts.items():
            out.setdefault(workload, Counter()).update(counts)
        return out


class Planner:
    def __init__(
        self, ledger: Ledger, run_id: int, source: Source, mappings: dict[str, WorkloadMapping],
        dry_run: bool = False, progress: ProgressReporter | None = None, force: bool = False, users_at_once: int = 1,
    ) -> None:
        """`force`: accept that a container the ledger knows items of now reads as empty. `users_at_once`: people whose
        sources are listed at the same time (each one's containers are listed one after the other)."""
        self.ledger, self.run_id, self.source, self.mappings, self.dry_run = ledger, run_id, source, mappings, dry_run
        self.progress = progress or NullProgress()
        self.force = force
        self.users_at_once = max(1, users_at_once)
        self.totals_guarded: dict[str, int] = {}

    async def plan(self, users: list[User], identities: dict[str, Identity], workloads: tuple[str, ...]) -> PlanTotals:
        """Lists several people at once: each listing waits on its server most of the time (Graph answers one page
        at a time), and Graph's limits are per mailbox. A container's items keep their listing order in the ledger."""
        totals = PlanTotals()
        self.totals_guarded = totals.guarded
        slots = asyncio.Semaphore(self.users_at_once)

        async def plan_user(user: User) -> None:
            async with slots:
                for workload in workloads:
                    if not (user.is_site and workload != "files"):  # a SharePoint site has document libraries only
                        await self._plan_workload(user, identities[user.upn], workload, totals)

        try:
            async with asyncio.TaskGroup() as group:
                for user in users:
                    group.create_task(plan_user(user))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # planning stops at its first failure, which the command line explains
        self.progress.planned(totals.by_workload())
        return totals

    async def _plan_workload(self, user: User, identity: Identity, workload: str, totals: PlanTotals) -> None:
        self.progress.planning(user.upn, workload)
        owner = identity.for_workload(workload)
        scope_id = None if self.dry_run else self.ledger.upsert_scope(user.upn, user.department, workload, owner)
        containers = [c async for c in self.source.containers(user, workload)]
        mapping = self.mappings[workload]
        decided = mapping.container_paths(containers) if mapping.container_paths is not None else {}
        for container in containers:
            target = decided[container.source_id] if container.source_id in decided else mapping.container_path(container)
            if target is None:  # excluded by a rule, or a folder that is never migrated
                totals.add(user.upn, workload, Counter({"excluded_containers": 1}))
                continue
            counts = await self._plan_container(user, workload, scope_id, container, target, totals)
            totals.add(user.upn, workload, counts)

    async def _plan_container(self, user: User, workload: str, scope_id: int | None, container: Container, target_path: tuple[str, ...], totals: PlanTotals) -> Counter:
        if scope_id is None:
            found = self.ledger.find_container(user.upn, workload, container.source_id)
            container_id, cursor = found if found else (None, None)
        else:
            container_id, cursor = self.ledger.upsert_container(
                scope_id, container.source_id, container.name, target_path, container.path or (container.name,), container.role,
            )
        known = self.ledger.known_items(container_id) if container_id is not None else {}
        try:
            return await self._read_changes(user, container, container_id, cursor, known)
        except CursorExpired:
            # The source forgot our cursor: list everything again; the upsert keeps it duplicate-free.
            totals.expired_cursors += 1
            if container_id is not None and not self.dry_run:
                self.ledger.reset_cursor(container_id)
            return await self._read_changes(user, container, container_id, None, known)

    async def _read_changes(self, user: User, container: Container, container_id: int | None, cursor: str | None, known: dict[str, tuple[str, str]]) -> Counter:
        counts: Counter = Counter()
        upserts: list[tuple[str, str, str, str, int | None, str | None]] = []
        removals: list[str] = []
        seen: set[str] = set()
        new_cursor: str | None = None
        async for change in self.source.changes(user, container, cursor):
            if isinstance(change, Cursor):
                new_cursor = change.value
            elif isinstance(change, Removed):
                if change.source_id in known and known[change.source_id][1] not in GONE:
                    counts["removed"] += 1
                    removals.append(change.source_id)
            elif isinstance(change, ItemRef):
                seen.add(change.source_id)
                previous = known.get(change.source_id)
                if previous is None:
                    counts["new"] += 1
                elif previous[0] != change.change_key or previous[1] in GONE:
                    counts["changed"] += 1
                else:
                    counts["unchanged"] += 1
                    continue
                counts["bytes"] += change.size or 0
                upserts.append((change.source_id, change.change_key, change.kind, change.name, change.size, change.listed))
            if len(upserts) >= BATCH:
                self._flush(container_id, upserts, [])  # removals wait for the end: the guard below may refuse them
        if cursor is None:
            # A full listing names every item that exists; what the ledger knows beyond it is gone.
            for source_id, (_, state) in known.items():
                if source_id not in seen and state not in GONE:
                    counts["removed"] += 1
                    removals.append(source_id)
        live = sum(1 for _, state in known.values() if state not in GONE)
        if live and not seen and len(set(removals)) >= live and not self.force:
            # Everything gone at once is more often a broken source (a wrong mailbox, a lost
            # permission) than a user's doing: keep the items and the old cursor, and say so.
            self._flush(container_id, upserts, [])
            self._guard(user, container, container_id, live)
            counts["removed"] = 0
            counts["guarded"] += live
            return counts
        self._flush(container_id, upserts, removals)
        if new_cursor is not None and container_id is not None and not self.dry_run:
            self.ledger.set_pending_cursor(self.run_id, container_id, new_cursor, {k: v for k, v in counts.items()})
        return counts

    def _guard(self, user: User, container: Container, container_id: int | None, live: int) -> None:
        where = f"{user.upn} {container.workload} {'/'.join(container.path or (container.name,))}"
        self.totals_guarded[where] = live
        if container_id is not None and not self.dry_run:
            self.ledger.record_event(self.run_id, "container.empty_guard", f"container {container_id}",
                                     {"items_held": live, "reason": "the source lists none of the items the ledger holds"})

    def _flush(self, container_id: int | None, upserts: list, removals: list) -> None:
        if not self.dry_run and container_id is not None and (upserts or removals):
            self.ledger.apply_plan(self.run_id, container_id, upserts, removals)
        upserts.clear()
        removals.clear()
