"""Sinks that declare `ordered` (a chat room replays a conversation) get one container's items one at a time, in
ledger order, however long each fetch takes; other sinks keep full concurrency."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from connectors.memory import MemorySink
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
