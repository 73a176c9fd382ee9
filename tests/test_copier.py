"""The worker pool's limits and the retry policy, observed from the outside."""

from __future__ import annotations

import asyncio
from collections import Counter

from connectors.memory import MemorySink
from migrator.errors import TransientError
from migrator.job import Job, Selection
from tests.helpers import memory_config, small_source

UPNS = ("ada@example.org", "bob@example.org", "cyd@example.org")


class SlowSink(MemorySink):
    """Holds each write open briefly and records how many were open at once, per mailbox and overall."""

    def __init__(self) -> None:
        super().__init__()
        self.open: Counter = Counter()
        self.max_per_owner: Counter = Counter()
        self.max_total = 0

    async def put(self, owner, path, target, replace=None):
        self.open[owner] += 1
        self.max_per_owner[owner] = max(self.max_per_owner[owner], self.open[owner])
        self.max_total = max(self.max_total, sum(self.open.values()))
        try:
            await asyncio.sleep(0.01)
            return await super().put(owner, path, target, replace)
        finally:
            self.open[owner] -= 1


def test_global_and_per_mailbox_limits_hold_and_work_runs_in_parallel(tmp_path):
    config = memory_config(tmp_path, ("mail",), concurrency=5, per_mailbox=2)
    source = small_source({(u, "mail"): [f"{u}-{n}".encode() for n in range(8)] for u in UPNS})
    sink = SlowSink()
    job = Job(config, source=source, sinks={"mail": sink})
    try:
        result = asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.close()
    assert result.copy.outcomes["copied"] == 24
    assert max(sink.max_per_owner.values()) == 2
    assert sink.max_total == 5


def test_a_throttled_call_waits_as_long_as_the_server_asks_then_succeeds(tmp_path):
    config = memory_config(tmp_path, ("mail",))
    source = small_source({(UPNS[0], "mail"): [b"hello"]})
    original_fetch = source.fetch
    calls = []

    async def throttled_fetch(user, container, ref):
        calls.append(ref.source_id)
        if len(calls) == 1:
            raise TransientError("429 Too Many Requests (ApplicationThrottled)", retry_after=42)
        return await original_fetch(user, container, ref)

    source.fetch = throttled_fetch
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    job = Job(config, source=source, sinks={"mail": MemorySink()}, sleep=fake_sleep)
    try:
        result = asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.close()
    assert result.copy.outcomes == Counter({"copied": 1})
    assert slept == [42] and len(calls) == 2


def test_a_call_that_stays_throttled_fails_the_item_with_the_reason(tmp_path):
    config = memory_config(tmp_path, ("mail",), call_retries=3)
    source = small_source({(UPNS[0], "mail"): [b"hello", b"world"]})
    sink = MemorySink()

    async def always_busy(owner, path, target, replace=None):
        raise TransientError("503 Service Unavailable")

    sink.put = always_busy

    async def no_sleep(_):
        return None

    job = Job(config, source=source, sinks={"mail": sink}, sleep=no_sleep)
    try:
        result = asyncio.run(job.run("run", Selection.from_config(config)))
        reasons = {p.last_error for p in job.ledger.problems()}
    finally:
        job.close()
    assert result.copy.outcomes == Counter({"failed": 2}) and result.exit_code == 1
    assert reasons == {"temporary failure: gave up after 3 tries: 503 Service Unavailable"}


def test_progress_shows_what_planning_found_and_a_bar_per_workload(tmp_path):
    import io

    from rich.console import Console

    from migrator.progress import RichProgress

    config = memory_config(tmp_path, ("mail", "files"))
    source = small_source({(UPNS[0], "mail"): [b"a", b"b"], (UPNS[0], "files"): [b"c" * 5000]})
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    job = Job(config, source=source, sinks={"mail": MemorySink(), "files": MemorySink()}, progress=RichProgress(console))
    try:
        asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.close()
    text = screen.getvalue()
    assert "mail      planned: 2 new" in text and "files     planned: 1 new" in text
    assert "2/2" in text and "1/1" in text and "5.0 KB" in text
