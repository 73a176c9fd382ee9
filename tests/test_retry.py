from __future__ import annotations

import asyncio
import random

import pytest

from migrator.errors import TransientError
from migrator.retry import backoff_delay, with_retries


def test_backoff_grows_exponentially_is_capped_and_honours_retry_after():
    rng = random.Random(1)
    for attempt in range(1, 10):
        delay = backoff_delay(attempt, base=1.0, cap=30.0, rng=rng, retry_after=None)
        assert 0 <= delay <= min(30.0, 2 ** (attempt - 1))
    assert backoff_delay(1, base=1.0, cap=30.0, rng=rng, retry_after=120) == 120


def test_transient_failures_are_retried_with_the_servers_delay():
    calls, sleeps = [], []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("429 Too Many Requests", retry_after=7)
        return "ok"

    async def fake_sleep(seconds):
        sleeps.append(seconds)

    assert asyncio.run(with_retries(flaky, tries=5, base=0.1, cap=1, rng=random.Random(0), sleep=fake_sleep)) == "ok"
    assert sleeps == [7, 7]


def test_retries_give_up_with_the_cause():
    async def always():
        raise TransientError("503 Service Unavailable")

    async def no_sleep(_):
        return None

    with pytest.raises(TransientError, match="gave up after 3 tries: 503"):
        asyncio.run(with_retries(always, tries=3, base=0.1, cap=1, rng=random.Random(0), sleep=no_sleep))
