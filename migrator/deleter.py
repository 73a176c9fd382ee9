"""Deletions carried over (`sync --propagate-deletes`): the copy of each item the source deleted
is removed from its target, once, and recorded; a target that cannot delete keeps it, and an
item whose deletion fails keeps its state so the next pass tries again."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from migrator.contracts import Sink
from migrator.errors import ItemError, TransientError
from migrator.model import DestRef
from state.ledger import CopiedItem, Ledger
from state.models import ItemState


@dataclass
class DeleteTotals:
    outcomes: Counter = field(default_factory=Counter)  # deleted, already_gone, kept (no delete at target), failed


class Deleter:
    def __init__(self, ledger: Ledger, run_id: int, sinks: dict[str, Sink], concurrency: int = 8) -> None:
        self.ledger, self.run_id, self.sinks = ledger, run_id, sinks
        self._limit = asyncio.Semaphore(concurrency)
        self.totals = DeleteTotals()

    async def run(self, upns: list[str] | None, workloads: list[str] | None) -> DeleteTotals:
        after = 0
        while batch := self.ledger.copied_items(upns, workloads, after_id=after, states=(ItemState.REMOVED,)):
            async with asyncio.TaskGroup() as group:
                for item in batch:
                    group.create_task(self._delete(item))
            after = batch[-1].item_id
        return self.totals

    async def _delete(self, item: CopiedItem) -> None:
        sink = self.sinks.get(item.workload)
        delete = getattr(sink, "delete", None)
        if sink is None or not sink.caps.delete or delete is None:
            self.totals.outcomes["kept"] += 1
            return
        async with self._limit:
            try:
                was_there = await delete(item.target_owner, DestRef(item.dest_key, item.dest_id, item.size, item.content_hash, item.dest_etag))
            except (ItemError, TransientError) as exc:
                self.totals.outcomes["failed"] += 1
                self.ledger.record_event(self.run_id, "item.delete_failed", f"item {item.item_id}", {"reason": str(exc)})
                return
        self.ledger.record_deleted(self.run_id, item.item_id, was_there)
        self.totals.outcomes["deleted" if was_there else "already_gone"] += 1
