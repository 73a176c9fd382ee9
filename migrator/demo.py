"""`make demo`: the example tenant's Finance department moved into local folders, a rerun that
finds nothing left to do, and the audit chain checked."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from migrator.config import load_config
from migrator.job import Job, Selection
from migrator.progress import RichProgress
from migrator.report import build_report
from migrator.report_table import print_table
from migrator.template import CONFIG_TEMPLATE


def run_demo(workdir: Path, console: Console) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    for leftover in ("target", "migration.db", "migration.db-wal", "migration.db-shm"):
        path = workdir / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    config_path = workdir / "migrator.toml"
    config_path.write_text(CONFIG_TEMPLATE)
    config = load_config(config_path)
    selection = Selection.from_config(config)

    console.print(Rule("1. First pass: department Finance of the example tenant"))
    first = _pass(config, selection, console)
    o = first.copy.outcomes
    console.print(f"copied {o['copied']} items ({first.copy.bytes:,} bytes), skipped {o['skipped']}, failed {o['failed']}; "
                  f"verified {first.verify.outcomes['verified']} by re-reading the target")

    console.print(Rule("2. The same command again: a rerun is the resume"))
    second = _pass(config, selection, console)
    o2 = second.copy.outcomes
    console.print(f"copied {o2['copied']}, retried the failed item: failed {o2['failed']} again (its source is broken); nothing duplicated")

    job = Job(config)
    try:
        data = build_report(job.ledger, department=config.department)
        audit = job.ledger.audit()
    finally:
        job.close()
    console.print(Rule("3. Report"))
    print_table(data, console)
    console.print(Rule("Where things are"))
    console.print(f"config   {config_path}\nledger   {workdir / 'migration.db'}\ntarget   {workdir / 'target'}")
    console.print(f"next     .venv/bin/migrator status -c {config_path}   |   report -c {config_path} --format json   |   audit -c {config_path}")
    healthy = audit.ok and o2["copied"] == 0 and data["totals"]["verified"] == o["copied"]
    if not healthy:
        console.print("[red]the demo did not behave as expected[/red]")
    return 0 if healthy else 1


def _pass(config, selection, console):
    job = Job(config, progress=RichProgress(console) if console.is_terminal else None)
    try:
        return asyncio.run(job.run("run", selection))
    finally:
        job.close()
