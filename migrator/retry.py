"""Retries of transient failures: exponential backoff with full jitter, never sooner than a
server's Retry-After."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from migrator.errors import TransientError

T = TypeVar("T")


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random, retry_after: float | None) -> float:
    """Delay before retry number `attempt` (1-based). A Retry-After beyond `cap` still wins: the
    server knows when it will take the request again."""
    delay = rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


async def with_retries(
    call: Callable[[], Awaitable[T]],
    tries: int,
    base: float,
    cap: float,
    rng: random.Random,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    for attempt in range(1, tries + 1):
        try:
            return await call()
        except TransientError as exc:
            if attempt == tries:
                raise TransientError(f"gave up after {tries} tries: {exc}", exc.retry_after) from exc
            await sleep(backoff_delay(attempt, base, cap, rng, exc.retry_after))
    raise AssertionError("unreachable")
