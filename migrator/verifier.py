"""Verification re-reads the targets, never trusting the ledger alone: every copied item is looked
up in its sink and compared by size and content hash; containers are listed for items that exist
only at the target, and each container is reconciled (migrator.reconcile)."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from migrator.contracts import Sink, Source, WorkloadMapping
from migrator.errors import ItemError, TransientError
from migrator.model import Capabilities, Container, DestRef, ItemRef, User
from migrator.reconcile import ReconcileTotals, reconcile
from state.ledger import CopiedItem, Ledger
from state.queries import MISSING_AT_TARGET


@dataclass
class VerifyTotals:
    outcomes: Counter = field(default_factory=Counter)  # verified, mismatch, missing
    target_only: dict[str, int] = field(default_factory=dict)  # "owner:path" -> count
    reconciled: ReconcileTotals = field(default_factory=ReconcileTotals)


def compare(item: CopiedItem, found, caps: Capabilities) -> str:
    """The problem with a stored item, or "" when it is what the ledger says was written."""
    if found is None:
        return MISSING_AT_TARGET
    if item.size is not None and found.size is not None and found.size != item.size:
        return f"size differs: {found.size} bytes at target, {item.size} copied"
    if "sha256" in caps.hashes and item.content_hash and found.content_hash and found.content_hash != item.content_hash:
        return "content differs: sha256 at target does not match what was copied"
    precision = caps.mtime_precision
    if precision is not None and item.dest_mtime is not None:
        if found.mtime is None:
            return "modification time unknown at target"
        if abs(found.mtime - item.dest_mtime) > precision:
            return f"modification time differs by {found.mtime - item.dest_mtime:+.0f} s"
    return ""


def sampled(item_id: int, rate: float) -> bool:
    """A deterministic sample: the same items are re-read on every pass at the same rate."""
    if rate >= 1.0:
        return True
    digest = hashlib.sha256(str(item_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


class Verifier:
    def __init__(self, ledger: Ledger, run_id: int, sinks: dict[str, Sink], concurrency: int = 8, sample: float = 1.0,
                 source: Source | None = None, mappings: dict[str, WorkloadMapping] | None = None,
                 claim: Callable[[int], list[CopiedItem]] | None = None) -> None:
        self.ledger, self.run_id, self.sinks, self.sample = ledger, run_id, sinks, sample
        # Workers sharing a ledger each take their share of copied items (after_id -> batch); alone, all are read.
        self.claim = claim
        self.source, self.mappings = source, mappings or {}
        self._limit = asyncio.Semaphore(concurrency)
        self.totals = VerifyTotals()

    async def run(self, upns: list[str] | None, workloads: list[str] | None) -> VerifyTotals:
        after = 0
        batches = self.claim or (lambda after_id: self.ledger.copied_items(upns, workloads, after_id=after_id))
        while batch := batches(after):
            checked: list[tuple[int, str]] = []
            async with asyncio.TaskGroup() as group:
                for item in batch:
                    if item.workload in self.sinks:
                        if sampled(item.item_id, self.sample):
                            group.create_task(self._check(item, checked))
                        else:
                            self.totals.outcomes["not_sampled"] += 1
            self.ledger.record_verifications(self.run_id, checked)
            after = batch[-1].item_id
        self.totals.reconciled = await reconcile(self.ledger, self.run_id, self.sinks, upns, workloads)
        for where, figures in self.totals.reconciled.containers:
            if figures.only_at_target:
                self.totals.target_only[where] = figures.only_at_target
        if self.totals.target_only:
            self.ledger.record_event(self.run_id, "verify.target_only", "containers", self.totals.target_only)
        return self.totals

    async def _check(self, item: CopiedItem, checked: list[tuple[int, str]]) -> None:
        sink = self.sinks[item.workload]
        async with self._limit:
            try:
                found = await sink.stat(item.target_owner, _dest_ref(item))
            except TransientError as exc:
                self.totals.outcomes["unreachable"] += 1
                self.ledger.record_event(self.run_id, "verify.unreachable", f"item {item.item_id}", {"reason": str(exc)})
                return
        problem = compare(item, found, sink.caps)
        if not problem and found is not None:
            problem = await self._deep_check(item, sink, found)
        checked.append((item.item_id, problem))
        self.totals.outcomes["mismatch" if problem else "verified"] += 1


    async def _deep_check(self, item: CopiedItem, sink: Sink, found: DestRef) -> str:
        """Where a mapping knows more than a hash can say (a series' occurrences), re-read both sides."""
        mapping = self.mappings.get(item.workload)
        reader = getattr(sink, "read", None)
        if mapping is None or mapping.verify is None or reader is None or self.source is None:
            return ""
        user = User(item.upn, source_id=item.upn)  # Graph accepts a UPN wherever it takes a user id
        container = Container(item.container_source_id, item.container_name, item.workload, item.container_path, item.container_role)
        try:
            stored = await reader(item.target_owner, found)
            fresh = await self.source.fetch(user, container, ItemRef(item.source_id, item.change_key, item.kind))
        except (ItemError, TransientError) as exc:
            self.totals.outcomes["unreachable"] += 1
            return f"could not re-read both sides: {exc}"
        self.totals.outcomes["deep_checked"] += 1
        return mapping.verify(stored, fresh) if stored is not None else MISSING_AT_TARGET


def _dest_ref(item: CopiedItem) -> DestRef:
    return DestRef(item.dest_key, item.dest_id, item.size, item.content_hash, item.dest_etag, item.dest_mtime)
