"""Reconciliation figures per container: from the ledger's states and the target's own listing,
with folders merged from several source containers and targets that cannot be listed."""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter

from rich.console import Console

from connectors.memory import MemorySink
from migrator.errors import ItemError
from migrator.model import Capabilities, Payload, Target
from migrator.reconcile import (
    ReconcileTotals,
    Reconciliation,
    count_container,
    print_reconciliation,
    reconcile,
)
from state.ledger import Ledger

OWNER, INBOX = "anna", ("INBOX",)


def test_figures_from_states_and_a_listing():
    states = Counter({"verified": 5, "mismatch": 3, "failed": 1, "skipped": 1, "planned": 2, "copied": 1, "removed": 2})
    figures = count_container(7, states, missing=1, listed={"a", "b", "c", "d", "e", "f", "g", "h", "stray"}, own_keys=set("abcdefghij"))
    assert (figures.source, figures.target, figures.equal, figures.differing) == (13, 9, 5, 2)
    assert (figures.only_at_source, figures.only_at_target, figures.unchecked, figures.removed_at_source) == (5, 1, 1, 2)
    assert not figures.agrees
    unlisted = count_container(7, Counter({"verified": 2}), 0, None, {"a", "b"})
    assert unlisted.target is None and unlisted.only_at_target == 0 and unlisted.agrees


def _ledger_with_two_folders_merged_into_inbox(tmp_path) -> tuple[Ledger, int, dict[str, int]]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.acquire()
    run_id = ledger.start_run("test")
    scope = ledger.upsert_scope("anna@example.org", "Finance", "mail", OWNER)
    containers = {}
    for source_id, keys in (("inbox", ["a1", "a2", "a3"]), ("old-inbox", ["b1"])):
        container_id, _ = ledger.upsert_container(scope, source_id, source_id, INBOX)
        containers[source_id] = container_id
        ledger.apply_plan(run_id, container_id, [(key, "v1", "message", key, 10) for key in keys], [])
    for item in ledger.claim(run_id, 5, None, None):
        if item.source_id != "a3":  # a3 stays planned: only at the source
            ledger.record_copied(run_id, item.item_id, item.source_id, item.source_id, None, 10, "0" * 64, healed=False)
    return ledger, run_id, containers


def test_folders_merged_into_one_target_share_its_listing_without_counting_each_other(tmp_path):
    ledger, run_id, containers = _ledger_with_two_folders_merged_into_inbox(tmp_path)
    sink = MemorySink()

    async def fill() -> None:
        await sink.ensure_container(OWNER, INBOX)
        for key in ("a1", "a2", "b1", "placed-by-hand"):
            await sink.put(OWNER, INBOX, Target(key, Payload.from_bytes(b"x" * 10)))

    asyncio.run(fill())
    totals = asyncio.run(reconcile(ledger, run_id, {"mail": sink}, None, None))
    by_id = {f.container_id: f for _, f in totals.containers}
    inbox, old = by_id[containers["inbox"]], by_id[containers["old-inbox"]]
    assert (inbox.source, inbox.target, inbox.only_at_source, inbox.only_at_target, inbox.unchecked) == (3, 3, 1, 1, 2)
    assert (old.source, old.target, old.only_at_source, old.only_at_target, old.unchecked) == (1, 1, 0, 0, 1)
    assert totals.sums()["target"] == 4, "the folder's four items, counted once"
    assert totals.summary_line() == ("reconciled 2 containers: 4 items at source, 4 at target; 0 equal, 0 differing, "
                                     "1 only at source, 1 only at target, 3 not re-read")
    events = ledger.events_of(["verify.container", "verify.reconciled"])
    assert [e.kind for e in events] == ["verify.container", "verify.container", "verify.reconciled"]
    assert json.loads(events[0].detail)["only_at_target"] == 1 and ledger.audit().ok
    ledger.close()


class _Unlistable(MemorySink):
    async def list_keys(self, owner: str, path: tuple[str, ...]) -> set[str]:
        raise ItemError("PROPFIND refused: 403 Forbidden")


def test_a_target_that_cannot_be_listed_is_said_so_not_counted_as_empty(tmp_path):
    ledger, run_id, _ = _ledger_with_two_folders_merged_into_inbox(tmp_path)
    refused = asyncio.run(reconcile(ledger, run_id, {"mail": _Unlistable()}, None, None))
    assert all(f.target is None and f.note == "could not list the target: PROPFIND refused: 403 Forbidden" for _, f in refused.containers)
    assert refused.summary_line().endswith("(2 containers could not be listed)")
    blind = MemorySink()
    blind.caps = Capabilities(hashes=("sha256",), listing=False)
    unlisted = asyncio.run(reconcile(ledger, run_id, {"mail": blind}, None, None))
    assert all(f.target is None and f.note == "" for _, f in unlisted.containers)
    ledger.close()


def test_the_summary_names_disagreeing_containers_verbatim_even_with_brackets():
    totals = ReconcileTotals([("anna:Chats/Bram [a1b2]", Reconciliation(1, source=2, target=3, equal=2, only_at_target=1)),
                              ("anna:INBOX", Reconciliation(2, source=4, target=4, equal=4))])
    console = Console(file=io.StringIO(), width=300)
    print_reconciliation(totals, console)
    assert console.file.getvalue().splitlines() == [
        "reconciled 2 containers: 6 items at source, 7 at target; 6 equal, 0 differing, 0 only at source, 1 only at target",
        "  anna:Chats/Bram [a1b2]: 1 only at target",
    ]
