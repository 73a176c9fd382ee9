"""Sinks that declare `ordered` (a chat room replays a conversation) get one container's items one at a time, in
ledger order, however long each fetch takes; other sinks keep full concurrency."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

import pytest

from connectors.memory import MemorySink
from migrator.errors import TransientError
from migrator.job import Job
from tests.helpers import memory_config, run_job, small_source

UPNS = ("ada@example.org", "bob@example.org")
COUNT = 24


class SlowFirstSource:
    """Later items come back sooner, so that concurrent copying would store them first."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def fetch(self, user, container, ref):
        index = int(ref.source_id.rsplit("-", 1)[1])
        await asyncio.sleep((COUNT - index) * 0.002)
        return await self.inner.fetch(user, container, ref)


@pytest.mark.parametrize("ordered", [True, False])
def test_items_of_one_container_are_written_in_ledger_order_only_when_the_sink_asks(tmp_path, ordered):
    source = SlowFirstSource(small_source({(upn, "chat"): [f"{upn} {n}".encode() for n in range(COUNT)] for upn in UPNS}))
    sink = MemorySink()
    sink.caps = replace(sink.caps, ordered=ordered)
    result = run_job(memory_config(tmp_path, ("chat",)), source, {"chat": sink})
    assert result.exit_code == 0 and result.copy.outcomes["copied"] == COUNT * len(UPNS)
    for (owner, _), stored in sink.folders.items():
        written = [int(s.data.rsplit(b" ", 1)[1]) for s in stored]
        assert sorted(written) == list(range(COUNT))
        assert (written == list(range(COUNT))) == ordered, (owner, written)


class AwayForOneItem:
    """The source cannot serve item 5 of each container for now (a temporary failure), until `back` is set."""

    def __init__(self, inner) -> None:
        self.inner, self.back = inner, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def fetch(self, user, container, ref):
        if not self.back and ref.source_id.endswith("-5"):
            raise TransientError("the source is away")
        return await self.inner.fetch(user, container, ref)


@pytest.mark.parametrize("ordered", [True, False])
def test_an_item_failing_for_now_holds_back_its_successors_only_where_order_matters(tmp_path, ordered):
    source = AwayForOneItem(small_source({(upn, "chat"): [f"{upn} {n}".encode() for n in range(COUNT)] for upn in UPNS}))
    sink = MemorySink()
    sink.caps = replace(sink.caps, ordered=ordered)
    config = memory_config(tmp_path, ("chat",), call_retries=2)
    first = run_job(config, source, {"chat": sink})
    written = {owner: [int(s.data.rsplit(b" ", 1)[1]) for s in stored] for (owner, _), stored in sink.folders.items()}
    if ordered:
        assert first.copy.outcomes["failed"] == (COUNT - 5) * len(UPNS)
        assert all(w == [0, 1, 2, 3, 4] for w in written.values()), written
        job = Job(config, source=source, sinks={"chat": sink})
        try:
            reasons = Counter(p.last_error.split(":")[0] for p in job.ledger.problems())
        finally:
            job.close()
        assert reasons == {"temporary failure": len(UPNS), "held back": (COUNT - 6) * len(UPNS)}
    else:
        assert first.copy.outcomes["failed"] == len(UPNS)
        assert all(w == [n for n in range(COUNT) if n != 5] for w in map(sorted, written.values())), written
    source.back = True
    again = run_job(config, source, {"chat": sink})
    assert again.exit_code == 0
    for (owner, _), stored in sink.folders.items():
        written = [int(s.data.rsplit(b" ", 1)[1]) for s in stored]
        assert sorted(written) == list(range(COUNT))
        assert (written == list(range(COUNT))) == ordered, (owner, written)


class LastOfEachBatchFirst(SlowFirstSource):
    """Within each claimed batch of 64 the later items come back sooner."""

    async def fetch(self, user, container, ref):
        index = int(ref.source_id.rsplit("-", 1)[1])
        await asyncio.sleep((63 - index % 64) * 0.001)
        return await self.inner.fetch(user, container, ref)


def test_a_container_longer_than_a_claimed_batch_stays_in_order_across_batches(tmp_path):
    count = 150  # claims take 64 items at a time here: the next batch is claimed while this one is written
    source = LastOfEachBatchFirst(small_source({(UPNS[0], "chat"): [f"m {n}".encode() for n in range(count)]}))
    sink = MemorySink()
    sink.caps = replace(sink.caps, ordered=True)
    result = run_job(memory_config(tmp_path, ("chat",), concurrency=4), source, {"chat": sink})
    assert result.exit_code == 0 and result.copy.outcomes["copied"] == count
    (stored,) = sink.folders.values()
    assert [int(s.data.split()[1]) for s in stored] == list(range(count))
