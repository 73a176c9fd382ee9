"""Planning twice plans nothing new; changes, deletions and expired cursors are handled."""

from __future__ import annotations

import asyncio
from collections import Counter

from migrator.job import SYNC_STAGES, Job, Selection
from state.ledger import Ledger
from tests.helpers import memory_config, run_job, sinks_for, small_source

UPN = "ada@example.org"
CID = f"{UPN}-mail"


def setup(tmp_path, contents=(b"one", b"two", b"three")):
    config = memory_config(tmp_path, ("mail",))
    return config, small_source({(UPN, "mail"): list(contents)}), sinks_for(("mail",))


def stored(sinks):
    return sorted(data for *_, data in sinks["mail"].contents(UPN))


def test_a_second_pass_plans_nothing_and_copies_nothing(tmp_path):
    config, source, sinks = setup(tmp_path)
    first = run_job(config, source, sinks)
    assert first.plan.by_workload()["mail"]["new"] == 3
    second = run_job(config, source, sinks)
    assert second.plan.by_workload()["mail"] == Counter()
    assert second.copy.outcomes == Counter() and sinks["mail"].puts == 3


def test_a_changed_item_is_replaced_in_place(tmp_path):
    config, source, sinks = setup(tmp_path)
    run_job(config, source, sinks)
    source.put_item(UPN, CID, f"{CID}-1", b"two, edited", kind="blob", name="item-1")
    result = run_job(config, source, sinks)
    assert result.plan.by_workload()["mail"]["changed"] == 1
    assert stored(sinks) == [b"one", b"three", b"two, edited"]
    assert result.verify.outcomes["mismatch"] == 0


def test_a_deletion_at_the_source_is_recorded_not_propagated(tmp_path):
    config, source, sinks = setup(tmp_path)
    run_job(config, source, sinks)
    source.delete_item(UPN, CID, f"{CID}-0")
    result = run_job(config, source, sinks)
    assert result.plan.by_workload()["mail"]["removed"] == 1
    assert stored(sinks) == [b"one", b"three", b"two"]
    ledger = Ledger(config.ledger_url)
    try:
        assert [(p.state, p.last_error) for p in ledger.problems()] == [("removed", "deleted at source")]
    finally:
        ledger.close()


def test_an_expired_cursor_falls_back_to_a_full_listing_without_duplicates(tmp_path):
    config, source, sinks = setup(tmp_path)
    run_job(config, source, sinks)
    source.put_item(UPN, CID, f"{CID}-3", b"four", kind="blob", name="item-3")
    source.oldest_cursor = 10**6  # every cursor handed out so far is now unknown to the source
    result = run_job(config, source, sinks)
    assert result.plan.expired_cursors == 1
    assert result.plan.by_workload()["mail"] == Counter({"new": 1, "unchanged": 3, "bytes": 4})
    assert stored(sinks) == [b"four", b"one", b"three", b"two"]


def test_a_cursor_is_promoted_only_once_its_items_are_done(tmp_path):
    config, source, sinks = setup(tmp_path)
    job = Job(config, source=source, sinks=sinks)
    try:
        asyncio.run(job.run("plan", Selection.from_config(config), stages=("plan",)))
        _container_id, cursor = job.ledger.find_container(UPN, "mail", CID)
        assert cursor is None, "planned items are not copied yet: the old cursor must stay"
        asyncio.run(job.run("run", Selection.from_config(config)))
        assert job.ledger.find_container(UPN, "mail", CID)[1] is not None
    finally:
        job.close()


def test_dry_run_writes_nothing(tmp_path):
    config, source, sinks = setup(tmp_path)
    job = Job(config, source=source, sinks=sinks)
    try:
        result = asyncio.run(job.run("run", Selection.from_config(config), dry_run=True))
        assert result.plan.by_workload()["mail"]["new"] == 3
        assert job.ledger.state_counts() == [] and job.ledger.runs() == [] and job.ledger.audit().events == 0
        assert sinks["mail"].puts == 0
    finally:
        job.close()


def test_unknown_users_are_reported_not_dropped(tmp_path):
    config, source, sinks = setup(tmp_path)
    users_file = tmp_path / "wave.txt"
    users_file.write_text(f"{UPN}\nnobody@example.org\n")
    job = Job(config, source=source, sinks=sinks)
    try:
        result = asyncio.run(job.run("run", Selection.from_config(config, users_file=users_file)))
    finally:
        job.close()
    assert result.unknown_users == ["nobody@example.org"] and result.exit_code == 1
    assert result.copy.outcomes["copied"] == 3


def test_deletions_are_propagated_only_when_asked(tmp_path):
    config, source, sinks = setup(tmp_path)
    run_job(config, source, sinks)
    source.delete_item(UPN, CID, f"{CID}-0")
    kept = run_job(config, source, sinks)
    assert kept.deleted is None and stored(sinks) == [b"one", b"three", b"two"]
    propagated = run_job(config, source, sinks, stages=SYNC_STAGES)
    assert propagated.deleted.outcomes == Counter({"deleted": 1}) and stored(sinks) == [b"three", b"two"]
    again = run_job(config, source, sinks, stages=SYNC_STAGES)
    assert again.deleted.outcomes == Counter() and again.exit_code == 0


def test_a_container_that_suddenly_reads_empty_is_held_until_forced(tmp_path):
    config, source, sinks = setup(tmp_path)
    run_job(config, source, sinks)
    for n in range(3):
        source.delete_item(UPN, CID, f"{CID}-{n}")
    held = run_job(config, source, sinks, stages=SYNC_STAGES)
    assert held.exit_code == 1 and list(held.guarded.values()) == [3]
    assert held.plan.by_workload()["mail"]["removed"] == 0 and stored(sinks) == [b"one", b"three", b"two"]
    ledger = Ledger(config.ledger_url)
    try:
        assert not [p for p in ledger.problems() if p.state == "removed"], "the ledger still holds the items"
    finally:
        ledger.close()
    again = run_job(config, source, sinks, stages=SYNC_STAGES)
    assert list(again.guarded.values()) == [3], "the old cursor was kept: the next pass sees the same deletions"
    forced = run_job(config, source, sinks, stages=SYNC_STAGES, force=True)
    assert forced.exit_code == 0 and forced.deleted.outcomes == Counter({"deleted": 3}) and stored(sinks) == []


def test_an_empty_full_listing_after_an_expired_cursor_is_held_too(tmp_path):
    config, source, sinks = setup(tmp_path)
    run_job(config, source, sinks)
    for n in range(3):
        source.delete_item(UPN, CID, f"{CID}-{n}")
    source.oldest_cursor = 10**6
    held = run_job(config, source, sinks)
    assert held.plan.expired_cursors == 1 and list(held.guarded.values()) == [3] and stored(sinks) == [b"one", b"three", b"two"]
