"""Reconciliation after verification, per container, in the manner of `rclone check`: how many items
the source has (the ledger's plan), how many the target holds (its own listing), which are equal,
which differ and which exist on one side only. Each container's figures become an audit event, so a
report can show them and an auditor can trust they were not edited since."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from rich.markup import escape

from migrator.contracts import Sink
from migrator.errors import ItemError, TransientError
from state.ledger import Ledger
from state.models import ItemState
from state.queries import decode_path

EVENT_CONTAINER = "verify.container"
EVENT_SUMMARY = "verify.reconciled"
COUNTS = ("source", "target", "equal", "differing", "only_at_source", "only_at_target", "unchecked", "removed_at_source")


@dataclass
class Reconciliation:
    """One container's figures. `target` is None when the sink cannot list the container."""

    container_id: int
    source: int = 0  # items the source has: everything planned except what it deleted since
    target: int | None = None  # distinct items the target lists
    equal: int = 0  # re-read at the target and found as copied
    differing: int = 0  # re-read and found different
    only_at_source: int = 0  # planned, failed, skipped, or copied but gone from the target
    only_at_target: int = 0  # listed at the target, unknown to the ledger
    unchecked: int = 0  # copied but not re-read (outside the sample, or the target did not answer)
    removed_at_source: int = 0  # deleted at the source after they were copied; kept at the target
    note: str = ""  # why the target could not be listed

    @property
    def agrees(self) -> bool:
        return self.differing == self.only_at_source == self.only_at_target == 0 and not self.note

    def detail(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "container_id"}
        return data if self.note else {k: v for k, v in data.items() if k != "note"}


def count_container(container_id: int, states: Counter, missing: int, listed: set[str] | None, own_keys: set[str], other_keys: frozenset[str] = frozenset()) -> Reconciliation:
    """Figures from the ledger's state counts (just refreshed by verification) and the target's listing.

    Containers merged into one target folder share its listing: `other_keys` are the keys the other
    containers of that folder own, so they count neither here nor as unknown to the ledger."""
    result = Reconciliation(container_id)
    result.removed_at_source = states[ItemState.REMOVED]
    result.source = sum(states.values()) - result.removed_at_source - states[ItemState.DELETED]
    result.equal = states[ItemState.VERIFIED]
    result.differing = states[ItemState.MISMATCH] - missing
    result.only_at_source = states[ItemState.PLANNED] + states[ItemState.FAILED] + states[ItemState.SKIPPED] + missing
    result.unchecked = states[ItemState.COPIED]
    if listed is not None:
        mine = listed - other_keys
        result.target = len(mine)
        result.only_at_target = len(mine - own_keys)
    return result


@dataclass
class ReconcileTotals:
    containers: list[tuple[str, Reconciliation]] = field(default_factory=list)  # ("owner:path", figures)

    def sums(self) -> dict[str, int]:
        sums = {k: 0 for k in COUNTS}
        for _, figures in self.containers:
            for k in COUNTS:
                sums[k] += getattr(figures, k) or 0
        return sums

    def summary_line(self) -> str:
        s = self.sums()
        unlisted = sum(1 for _, f in self.containers if f.target is None)
        line = (f"reconciled {len(self.containers)} containers: {s['source']} items at source, {s['target']} at target; "
                f"{s['equal']} equal, {s['differing']} differing, {s['only_at_source']} only at source, {s['only_at_target']} only at target")
        if s["unchecked"]:
            line += f", {s['unchecked']} not re-read"
        if unlisted:
            line += f" ({unlisted} containers could not be listed)"
        return line

    def disagreements(self) -> list[tuple[str, Reconciliation]]:
        return [(where, f) for where, f in self.containers if not f.agrees]


async def reconcile(ledger: Ledger, run_id: int, sinks: dict[str, Sink], upns: list[str] | None, workloads: list[str] | None) -> ReconcileTotals:
    states: dict[int, Counter] = {}
    missing: Counter = Counter()
    where: dict[int, tuple[str, str, tuple[str, ...]]] = {}
    for _dept, _upn, workload, container_id, _source_path, target_path, owner, state, items, _bytes, gone in ledger.container_states(upns, workloads):
        if workload not in sinks:
            continue
        where[container_id] = (workload, owner, decode_path(target_path))
        counts = states.setdefault(container_id, Counter())
        if state is not None:
            counts[state] += items
            missing[container_id] += int(gone)
    by_target: dict[tuple[str, str, tuple[str, ...]], list[int]] = {}
    for container_id, target in where.items():
        by_target.setdefault(target, []).append(container_id)
    totals = ReconcileTotals()
    for (workload, owner, path), container_ids in by_target.items():
        sink = sinks[workload]
        listed, note = None, ""
        if sink.caps.listing:
            try:
                listed = await sink.list_keys(owner, path)
            except (ItemError, TransientError) as exc:
                note = f"could not list the target: {exc}"
        keys = {container_id: ledger.dest_keys(container_id) for container_id in container_ids}
        for position, container_id in enumerate(container_ids):
            # Keys unknown to every container of a merged folder are counted once, with the first.
            others = frozenset().union(*(k for c, k in keys.items() if c != container_id))
            if position > 0 and listed is not None:
                others = others | (listed - frozenset().union(*keys.values()))
            figures = count_container(container_id, states[container_id], missing[container_id], listed, keys[container_id], others)
            figures.note = note
            totals.containers.append((f"{owner}:{'/'.join(path)}", figures))
    ledger.record_events(run_id, [(EVENT_CONTAINER, f"container {f.container_id}", f.detail()) for _, f in totals.containers])
    ledger.record_event(run_id, EVENT_SUMMARY, f"{len(totals.containers)} containers", totals.sums())
    return totals


def print_reconciliation(totals: ReconcileTotals, console, limit: int = 20) -> None:
    """The one-line summary, then the containers where the two sides disagree."""
    console.print(totals.summary_line(), highlight=False)
    disagreeing = totals.disagreements()
    for where, f in disagreeing[:limit]:
        parts = [f"{n} {label}" for n, label in ((f.differing, "differing"), (f.only_at_source, "only at source"), (f.only_at_target, "only at target")) if n]
        console.print(f"  [yellow]{escape(where)}[/yellow]: " + escape(", ".join(parts + ([f.note] if f.note else []))), highlight=False)
    if len(disagreeing) > limit:
        console.print(f"  ... and {len(disagreeing) - limit} more containers: `migrator report` lists them all")
