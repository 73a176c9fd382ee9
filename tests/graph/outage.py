"""A target server that goes away in the middle of a run: stopped right after its n-th write, so the
items still to come meet a closed port. What the run must leave behind then: exit code 1, and each
item it could not finish `failed`, its last error saying the failure was temporary, of the connection."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from migrator.config import Config
from migrator.job import Job, JobResult, Selection

# How every sink words a server that is gone: a refused or reset connection, a closed stream.
LOST_CONNECTION = re.compile(r"connect|connection", re.IGNORECASE)
HELD_BACK = "held back: "


def run(config: Config, fault_hook: Callable[[str], None] | None = None) -> JobResult:
    job = Job(config, fault_hook=fault_hook)
    try:
        return asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.close()


def failure_reasons(config: Config) -> Counter[str]:
    """The last errors of the ledger's failed items, counted."""
    job = Job(config)
    try:
        return Counter(p.last_error for p in job.ledger.problems() if p.state == "failed")
    finally:
        job.close()


def item_states(config: Config) -> Counter[str]:
    """How many items the ledger holds in each state."""
    job = Job(config)
    try:
        states: Counter[str] = Counter()
        for row in job.ledger.state_counts():
            states[row.state] += row[4]
        return states
    finally:
        job.close()


@dataclass
class StopAtWrite:
    """A fault hook: `stop` (the target's end) runs right after the engine's `writes`-th write."""

    writes: int
    stop: Callable[[], None]
    written: int = 0

    def __call__(self, point: str) -> None:
        if point == "after_put":
            self.written += 1
            if self.written == self.writes:
                self.stop()


@dataclass
class Outage:
    """What the run that met the outage recorded."""

    written: int  # writes before the server was stopped
    failed: int
    reasons: Counter[str]


def run_into_an_outage(config: Config, writes: int, stop: Callable[[], None]) -> Outage:
    """Runs `config`, stopping the target with `stop` after its `writes`-th write, and checks what the
    run left: exit code 1; every item it did not finish `failed` (none left planned), for a lost
    connection, temporarily."""
    hook = StopAtWrite(writes, stop)
    result = run(config, hook)
    assert hook.written >= writes, f"the run ended after {hook.written} writes, before the server was stopped"
    failed = result.copy.outcomes["failed"]
    assert result.exit_code == 1 and failed > 0, result.copy.outcomes
    states = item_states(config)
    assert set(states) <= {"copied", "verified", "skipped", "failed"} and states["failed"] == failed, states
    reasons = failure_reasons(config)
    # A room's later messages do not try the server at all: they wait behind the first that failed (held back).
    lost = [r for r in reasons if not r.startswith(HELD_BACK)]
    assert lost and all(r.startswith("temporary failure: ") and LOST_CONNECTION.search(r) for r in lost), reasons
    return Outage(writes, failed, reasons)


def rerun_after_the_outage(config: Config, outage: Outage) -> JobResult:
    """The rerun, with the server back: it completes exactly the items that failed (each written, found
    already written and healed, or skipped), verifies every copy, and ends with exit code 0."""
    again = run(config)
    assert again.exit_code == 0 and again.copy.outcomes["failed"] == 0, again.copy.outcomes
    # Held back items are only now read: a message deleted in Teams among them is skipped.
    done = again.copy.outcomes["copied"] + again.copy.outcomes["healed"] + again.copy.outcomes["skipped"]
    assert done == outage.failed, again.copy.outcomes
    states = item_states(config)
    assert set(states) <= {"verified", "skipped"}, states
    print(f"stopped after {outage.written} writes; {outage.failed} failed, e.g. {outage.reasons.most_common(1)}; "
          f"rerun {dict(again.copy.outcomes)}; then {dict(states)}")
    return again
