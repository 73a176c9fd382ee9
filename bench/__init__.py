"""Benchmarks: the engine against a baseline measured side by side (`make bench`)."""

from __future__ import annotations

import asyncio
import time

from migrator.config import Config
from migrator.job import Job, JobResult, Selection


def timed_stages(config: Config, sinks=None) -> tuple[dict[str, float], dict[str, JobResult]]:
    """The engine's plan, copy and verify, one run each so each stage is timed alone:
    (seconds per stage, result per stage)."""
    job = Job(config, sinks=sinks)
    seconds, results = {}, {}
    try:
        for stage in ("plan", "copy", "verify"):
            start = time.perf_counter()
            results[stage] = asyncio.run(job.run(stage, Selection.from_config(config), stages=(stage,)))
            seconds[stage] = time.perf_counter() - start
    finally:
        job.close()
    return seconds, results
