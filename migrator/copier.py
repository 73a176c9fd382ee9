"""Copying: claim unfinished items, fetch, map, write, record. A bad item fails alone; a crash at
any point is healed by the next run, because the intent to write is recorded before the write and
the sink is probed for the item before writing again."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from sqlalchemy.exc import SQLAlchemyError

from migrator.config import RunSettings
from migrator.contracts import Sink, Source, WorkloadMapping
from migrator.errors import ItemError, TransientError
from migrator.model import (
    Container,
    DestRef,
    HashingPayload,
    Item,
    ItemRef,
    Skip,
    Target,
    User,
)
from migrator.progress import NullProgress, ProgressReporter
from migrator.retry import with_retries
from migrator.tls import UntrustedCertificate
from state.ledger import Ledger, WorkItem

FaultHook = Callable[[str], None]
PREFETCH = 8  # items of an ordered container read ahead of the one being written


@dataclass
class CopyTotals:
    outcomes: Counter = field(default_factory=Counter)  # copied, healed, skipped, failed
    bytes: int = 0


class Copier:
    def __init__(
        self,
        ledger: Ledger,
        run_id: int,
        source: Source,
        sinks: dict[str, Sink],
        mappings: dict[str, WorkloadMapping],
        users: dict[str, User],
        settings: RunSettings,
        progress: ProgressReporter | None = None,
        fault_hook: FaultHook | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.ledger, self.run_id, self.source, self.sinks, self.mappings = ledger, run_id, source, sinks, mappings
        self.users, self.settings = users, settings
        self.progress = progress or NullProgress()
        self.fault = fault_hook or (lambda point: None)
        self.sleep, self.rng = sleep, rng or random.Random()
        self._global = asyncio.Semaphore(settings.concurrency)
        self._per_mailbox: dict[str, asyncio.Semaphore] = {}
        self._containers: dict[tuple[str, str, tuple[str, ...]], str] = {}
        self._container_locks: dict[tuple[str, str, tuple[str, ...]], asyncio.Lock] = {}
        self.totals = CopyTotals()
        self._copies: list[dict] = []  # copies made but not yet recorded: written to the ledger per claimed batch
        # Ordered containers one of whose items failed for now (the target or source away): their later items wait
        # for the next run, which writes the failed one first. A room must not receive a message after its successors.
        self._held_back: set[tuple[str, str]] = set()
        self._unfinished = 0  # items claimed and not yet through _copy or _hold_back
        self._progressed = asyncio.Event()

    async def run(self, upns: list[str] | None, workloads: list[str] | None) -> CopyTotals:
        """Claims the next batch while the last one is still being copied. A batch is a run of ledger ids, often
        one mailbox's: waiting for it to finish would let that mailbox's few requests in flight, and its slowest
        item, set the pace of the whole run."""
        after = 0
        tails: dict[tuple[str, str], asyncio.Task] = {}  # an ordered container's latest chain: the next one waits for it
        async with asyncio.TaskGroup() as group:
            while claimed := self._claim(upns, workloads, after):
                self._unfinished += len(claimed)
                chains: dict[tuple[str, str], list[WorkItem]] = {}
                for work in claimed:
                    sink = self.sinks.get(work.workload)
                    if sink is not None and sink.caps.ordered:
                        chains.setdefault((work.workload, work.container_source_id), []).append(work)
                    else:
                        group.create_task(self._copy_bounded(work))
                for key, chain in chains.items():
                    tails[key] = group.create_task(self._copy_in_order(key, chain, tails.get(key)))
                after = claimed[-1].item_id
                while self._unfinished >= len(claimed):  # one batch in hand while the next is claimed
                    self._progressed.clear()
                    await self._progressed.wait()
                self.flush()
        self.flush()
        return self.totals

    def _finished_one(self) -> None:
        self._unfinished -= 1
        self._progressed.set()

    def _claim(self, upns: list[str] | None, workloads: list[str] | None, after: int) -> list[WorkItem]:
        return self.ledger.claim(self.run_id, self.settings.max_attempts, upns, workloads, after_id=after, limit=max(64, self.settings.concurrency * 8))

    def flush(self) -> None:
        """Records the batch's copies in one transaction: a crash before it loses no item, since the
        next run's probe finds what was written (see record_copied_many)."""
        copies, self._copies = self._copies, []
        self.ledger.record_copied_many(self.run_id, copies)

    def _record_copied(self, item_id: int, dest: DestRef, size: int, content_hash: str, healed: bool,
                       notes: tuple[str, ...] = (), renamed: dict | None = None) -> None:
        self._copies.append({"item_id": item_id, "dest_key": dest.dest_key, "dest_id": dest.dest_id, "etag": dest.etag, "size": size,
                             "content_hash": content_hash, "healed": healed, "mtime": dest.mtime, "notes": notes, "renamed": renamed})

    async def _copy_bounded(self, work: WorkItem, fetched: asyncio.Task | None = None) -> bool:
        # The mailbox slot is taken before the global one, so a busy mailbox never idles global slots.
        mailbox = self._per_mailbox.setdefault(work.upn, asyncio.Semaphore(self.settings.per_mailbox))
        async with mailbox, self._global:
            return await self._copy(work, fetched)

    async def _copy_in_order(self, key: tuple[str, str], chain: list[WorkItem], previous: asyncio.Task | None = None) -> None:
        """One container's items, one after the other (a chat's messages must reach the room in order). The key is
        the source container, so a chat that several users share is still one sequence. A bad item fails alone; an
        item that failed for now holds the rest back until the next run."""
        if previous is not None:
            await asyncio.wait([previous])  # the same container's earlier items, claimed in an earlier batch
        ahead: dict[int, asyncio.Task] = {}
        try:
            for index, work in enumerate(chain):
                if key in self._held_back:
                    self._hold_back(work)
                    continue
                # Reading from the source need not wait its turn: the next few items are fetched while this one is
                # written. The source's own politeness limits still bound the requests in flight.
                for upcoming in range(index, min(index + PREFETCH, len(chain))):
                    if upcoming not in ahead:
                        ahead[upcoming] = asyncio.create_task(self._fetch(chain[upcoming]))
                if await self._copy_bounded(work, ahead.pop(index)):
                    self._held_back.add(key)
        finally:
            for task in ahead.values():
                task.cancel()

    def _hold_back(self, work: WorkItem) -> None:
        self.ledger.record_failed(self.run_id, work.item_id, "held back: an earlier item of this container failed for now, "
                                  "and they must reach the target in order; the next run writes them after it")
        self.totals.outcomes["failed"] += 1
        self.progress.advance(work.workload, 0)
        self._finished_one()

    async def _fetch(self, work: WorkItem) -> Item:
        user = self.users[work.upn]
        container = Container(work.container_source_id, work.container_name, work.workload, work.container_path, work.container_role)
        ref = ItemRef(work.source_id, work.change_key, work.kind, work.name, work.size, work.listed)
        return await self._retrying(lambda: self.source.fetch(user, container, ref))

    async def _copy(self, work: WorkItem, fetched: asyncio.Task | None = None) -> bool:
        """Copies one item and records the outcome; True when it failed for now (a server away), not for being bad."""
        temporary = False
        try:
            outcome, nbytes = await self._attempt(work, fetched)
        except (SQLAlchemyError, UntrustedCertificate):
            raise  # the ledger failing, or a server nobody trusts, is not an item's fault: stop the run
        except ItemError as exc:
            outcome, nbytes = "failed", 0
            self.ledger.record_failed(self.run_id, work.item_id, str(exc))
        except TransientError as exc:
            outcome, nbytes, temporary = "failed", 0, True
            self.ledger.record_failed(self.run_id, work.item_id, f"temporary failure: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bad item fails alone, with its reason, and the run goes on
            outcome, nbytes = "failed", 0
            self.ledger.record_failed(self.run_id, work.item_id, f"{type(exc).__name__}: {exc}")
        self.totals.outcomes[outcome] += 1
        self.totals.bytes += nbytes
        self.progress.advance(work.workload, nbytes)
        self._finished_one()
        return temporary

    def _retrying(self, call):
        s = self.settings
        return with_retries(call, s.call_retries, s.retry_base_seconds, s.retry_max_seconds, self.rng, self.sleep)

    async def _attempt(self, work: WorkItem, fetched: asyncio.Task | None = None) -> tuple[str, int]:
        path = work.target_path
        container = Container(work.container_source_id, work.container_name, work.workload, work.container_path, work.container_role)
        item = await (fetched if fetched is not None else self._fetch(work))
        mapped = self.mappings[work.workload].map(item, container)
        if isinstance(mapped, Skip):
            if mapped.deleted_at_source and work.dest_id:
                self.ledger.record_removed(self.run_id, work.item_id, mapped.reason)  # its copy goes with --propagate-deletes
                return "removed", 0
            self.ledger.record_skipped(self.run_id, work.item_id, mapped.reason)
            return "skipped", 0
        sink = self.sinks[work.workload]
        await self._ensure_container(sink, work, path)

        existing: DestRef | None = None
        if work.put_started or work.dest_id or sink.caps.cheap_find:
            existing = await self._retrying(lambda: sink.find(work.target_owner, path, mapped))
        if existing is not None:
            same = await self._same_content(existing, mapped)
            if same is not None:
                await self._retire_moved_copy(sink, work, existing.dest_id, existing, mapped)
                self._record_copied(work.item_id, existing, *same, healed=True)
                return "healed", 0

        if not sink.caps.cheap_find:
            # Where probing costs a search, the next run probes only items whose write may have begun.
            self.ledger.record_put_intent(work.item_id, mapped.dest_key)
        self.fault("before_put")
        hashing = HashingPayload(mapped.payload, on_chunk=lambda: self.fault("mid_put"))
        dest = await self._retrying(lambda: sink.put(work.target_owner, path, replace(mapped, payload=hashing), replace=existing))
        self.fault("after_put")
        if hashing.sha256 is None:
            raise ItemError("the target did not read the whole item")
        await self._retire_moved_copy(sink, work, dest.dest_id, existing, mapped)
        self._record_copied(work.item_id, dest, hashing.bytes_read, hashing.sha256, healed=False, notes=dest.notes,
                            renamed=mapped.metadata.get("renamed"))
        return "copied", hashing.bytes_read

    async def _retire_moved_copy(self, sink: Sink, work: WorkItem, new_dest_id: str, existing: DestRef | None, mapped: Target) -> None:
        """An item the source moved or renamed keeping its id (a OneDrive file) now has a copy at its
        new place; the copy at the old place goes before the ledger forgets where it was, so a
        crash in between only repeats this. A folder is left: OneDrive reports a moved folder
        without its contents, and deleting the old folder would take their copies with it."""
        if not work.dest_id or work.dest_id == new_dest_id or not sink.caps.delete or mapped.metadata.get("kind") == "folder":
            return
        if existing is not None and existing.dest_id == work.dest_id:
            return  # put(replace=existing) took the old copy's place itself
        delete = getattr(sink, "delete", None)
        if delete is not None:
            await self._retrying(lambda: delete(work.target_owner, DestRef(work.dest_key or "", work.dest_id)))

    async def _same_content(self, existing: DestRef, target: Target) -> tuple[int, str] | None:
        """(size, sha256) when the stored item already holds exactly this content, else None."""
        digest, size = hashlib.sha256(), 0
        async for chunk in target.payload.chunks():
            digest.update(chunk)
            size += len(chunk)
        if existing.content_hash is not None and existing.content_hash != digest.hexdigest():
            return None
        if existing.size is not None and existing.size != size:
            return None
        return size, digest.hexdigest()

    async def _ensure_container(self, sink: Sink, work: WorkItem, path: tuple[str, ...]) -> str:
        key = (work.workload, work.target_owner, path)
        if key in self._containers:
            return self._containers[key]
        lock = self._container_locks.setdefault(key, asyncio.Lock())
        async with lock:  # concurrent creation of one folder races on some servers
            if key not in self._containers:
                self._containers[key] = await self._retrying(lambda: sink.ensure_container(work.target_owner, path))
        return self._containers[key]
