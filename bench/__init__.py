"""Benchmarks: the engine against a baseline measured side by side (`make bench`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from migrator.config import Config
from migrator.job import Job, JobResult, Selection

RESULTS = Path("bench/results")


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


def json_option(parser: argparse.ArgumentParser, name: str) -> None:
    """--json FILE, by default bench/results/<name>.json: every benchmark's figures are kept for tracking."""
    parser.add_argument("--json", type=Path, default=RESULTS / f"{name}.json", help="where the figures are written as JSON")


def write_results(path: Path, figures: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {path}")
