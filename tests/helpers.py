"""Shared builders for tests: small sources, configs and crash injection."""

from __future__ import annotations

import asyncio
from pathlib import Path

from connectors.memory import MemorySink, MemorySource
from migrator.config import Config, parse_config
from migrator.job import Job, JobResult, Selection
from migrator.model import WORKLOADS, Container, User


class SimulatedCrash(BaseException):
    """Stands for the process being killed: not an Exception, so nothing in the engine handles it."""


def is_crash(exc: BaseException) -> bool:
    if isinstance(exc, SimulatedCrash):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_crash(e) for e in exc.exceptions)
    return False


class CrashAfter:
    """Kills the run at the n-th fault point of one kind (commit, before_put, mid_put, after_put)."""

    def __init__(self, n: int, kind: str | None = None) -> None:
        self.n, self.kind, self.seen, self.fired, self.point = n, kind, 0, False, ""

    def __call__(self, point: str) -> None:
        if self.kind is not None and point != self.kind:
            return
        self.seen += 1
        if self.seen == self.n:
            self.fired, self.point = True, point
            raise SimulatedCrash(point)


def memory_config(tmp_path: Path, workloads: tuple[str, ...] = WORKLOADS, **run) -> Config:
    raw = {
        "source": {"kind": "example"},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
        "workloads": {"enabled": list(workloads)},
        "targets": {w: {"kind": "memory"} for w in workloads},
        "run": {"retry_base_seconds": 0.001, "retry_max_seconds": 0.01, **run},
    }
    return parse_config(raw)


def small_source(layout: dict[tuple[str, str], list[bytes]], department: str = "Finance") -> MemorySource:
    """layout: (upn, workload) -> item contents, one container each."""
    source = MemorySource()
    for (upn, workload), contents in layout.items():
        if upn.lower() not in {u.upn.lower() for u in source.all_users()}:
            source.add_user(User(upn=upn, display_name=upn.split("@")[0], department=department, source_id=upn))
        container_id = f"{upn}-{workload}"
        source.add_container(upn, Container(container_id, workload.title(), workload, (workload.title(),)))
        for index, data in enumerate(contents):
            # Small chunks: several per item, so a kill can land in the middle of a write.
            source.put_item(upn, container_id, f"{container_id}-{index}", data, kind="blob", name=f"item-{index}", metadata={"chunk_size": 64})
    return source


def run_job(config: Config, source, sinks, fault_hook=None, **kwargs) -> JobResult:
    job = Job(config, source=source, sinks=sinks, fault_hook=fault_hook)
    if fault_hook is not None:
        job.ledger.fault_hook = fault_hook
    try:
        return asyncio.run(job.run("run", Selection.from_config(config), **kwargs))
    finally:
        job.ledger.fault_hook = None
        job.close()


def sinks_for(workloads, cheap_find: bool = True) -> dict[str, MemorySink]:
    return {w: MemorySink(cheap_find=cheap_find) for w in workloads}
