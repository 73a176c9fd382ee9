"""Killing the copy stage anywhere and rerunning ends with exactly the source's items at the
target: none lost, none duplicated, and the ledger agrees."""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from state.ledger import Ledger
from state.models import ItemState
from tests.fixtures.postgres import postgres  # noqa: F401
from tests.helpers import (
    CrashAfter,
    SimulatedCrash,
    is_crash,
    memory_config,
    run_job,
    sinks_for,
    small_source,
)

WORKLOADS = ("mail", "files")
UPNS = ("ada@example.org", "bob@example.org")

contents = st.lists(st.binary(min_size=0, max_size=300), min_size=0, max_size=6)
layouts = st.fixed_dictionaries({(u, w): contents for u in UPNS for w in WORKLOADS})


def _sink_state(sinks, config):
    """(owner, workload) -> Counter of stored content digests, and the dest keys seen per folder."""
    stored: dict[tuple[str, str], Counter] = {}
    for workload, sink in sinks.items():
        for (owner, path), folder in sink.folders.items():
            keys = [s.dest_key for s in folder]
            assert len(keys) == len(set(keys)), f"duplicate at target in {owner}/{path}: {keys}"
            stored.setdefault((owner, workload), Counter()).update(hashlib.sha256(s.data).hexdigest() for s in folder)
    return stored


def _expected(source, config):
    expected: dict[tuple[str, str], Counter] = {}
    for upn in UPNS:
        for workload in WORKLOADS:
            data = source.items_of(upn, workload).values()
            if data:
                owner = upn if workload == "mail" else upn.split("@")[0]
                expected[(owner, workload)] = Counter(hashlib.sha256(d).hexdigest() for d in data)
    return expected


crash_points = st.lists(
    st.tuples(st.sampled_from(["commit", "before_put", "mid_put", "after_put"]), st.integers(min_value=1, max_value=30)),
    min_size=1,
    max_size=5,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=layouts, crash_points=crash_points, cheap_find=st.booleans())
def test_killed_copy_reruns_to_exactly_the_source(layout, crash_points, cheap_find):
    with tempfile.TemporaryDirectory() as tmp:
        _kill_and_rerun(memory_config(Path(tmp), WORKLOADS), layout, crash_points, cheap_find)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=layouts, crash_points=crash_points, cheap_find=st.booleans())
def test_killed_copy_reruns_to_exactly_the_source_on_postgresql(postgres, layout, crash_points, cheap_find):  # noqa: F811
    with tempfile.TemporaryDirectory() as tmp:
        config = replace(memory_config(Path(tmp), WORKLOADS), ledger_url=postgres.new_database())
        _kill_and_rerun(config, layout, crash_points, cheap_find)


def _kill_and_rerun(config, layout, crash_points, cheap_find):
    source = small_source(layout)
    sinks = sinks_for(WORKLOADS, cheap_find)
    for kind, n in crash_points:
        crash = CrashAfter(n, kind)
        try:
            run_job(config, source, sinks, fault_hook=crash)
        except BaseException as exc:  # noqa: BLE001 - the simulated kill is a BaseException
            assert is_crash(exc), exc
            assert crash.fired
            event(f"killed at {crash.point}")
    result = run_job(config, source, sinks)
    assert result.exit_code == 0, result

    assert _sink_state(sinks, config) == _expected(source, config)
    ledger = Ledger(config.ledger_url)
    try:
        states = Counter()
        for *_, state, count, _bytes in ledger.state_counts():
            states[state] += count
        total = sum(len(v) for v in layout.values())
        assert states == (Counter({ItemState.VERIFIED: total}) if total else Counter())
        assert ledger.audit().ok
    finally:
        ledger.close()


@pytest.mark.parametrize("cheap_find", [True, False])
def test_crash_between_put_and_commit_is_healed_without_a_second_put(tmp_path, cheap_find):
    config = memory_config(tmp_path, ("mail",))
    source = small_source({("ada@example.org", "mail"): [b"one", b"two", b"three"]})
    sinks = sinks_for(("mail",), cheap_find)

    def crash_after_put(point: str) -> None:
        if point == "after_put":
            raise SimulatedCrash(point)

    try:
        run_job(config, source, sinks, fault_hook=crash_after_put)
    except BaseException as exc:  # noqa: BLE001
        assert is_crash(exc)
    stored_before = sinks["mail"].puts
    assert stored_before >= 1
    result = run_job(config, source, sinks)
    assert result.copy.outcomes["healed"] == stored_before
    assert sinks["mail"].puts == 3
    assert sorted(d for *_, d in sinks["mail"].contents("ada@example.org")) == [b"one", b"three", b"two"]


def test_a_bad_item_fails_alone_and_is_retried_on_the_next_run(tmp_path):
    config = memory_config(tmp_path, ("mail",), max_attempts=2)
    source = small_source({("ada@example.org", "mail"): [b"good-1", b"bad", b"good-2"]})
    source._find("ada@example.org", "ada@example.org-mail").items["ada@example.org-mail-1"].metadata["fetch_error"] = "body is corrupt"
    sinks = sinks_for(("mail",))

    first = run_job(config, source, sinks)
    assert first.exit_code == 1
    assert first.copy.outcomes == Counter({"copied": 2, "failed": 1})
    second = run_job(config, source, sinks)
    assert second.copy.outcomes == Counter({"failed": 1})
    third = run_job(config, source, sinks)
    assert third.copy.outcomes == Counter(), "attempts are used up after max_attempts runs"

    ledger = Ledger(config.ledger_url)
    try:
        problems = ledger.problems()
        assert [(p.state, p.last_error, p.attempts) for p in problems] == [("failed", "body is corrupt", 2)]
    finally:
        ledger.close()
    again = run_job(config, source, sinks, retry_failed=True)
    assert again.copy.outcomes == Counter({"failed": 1})
