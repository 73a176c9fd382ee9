"""`make demo`: one department of the sandbox tenant moved into real local servers (Dovecot or a
Maildir, Radicale, the Nextcloud stand-in, Synapse), the way a migration team would: configuration,
preflight, the bulk pass with live progress, verification, summary and HTML report. Every server it
started is stopped when it ends, also on Ctrl-C or an error."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from migrator.config import load_config
from migrator.demo_targets import (
    DemoTargets,
    start_source,
    start_synapse,
    start_targets,
    write_config,
)
from migrator.job import Job, JobResult, Selection
from migrator.progress import RichProgress
from migrator.report import build_report
from migrator.report_table import print_table
from migrator.sandbox.local.processes import HOST, free_port

LEFTOVERS = ("migration.db", "migration.db-wal", "migration.db-shm", "secrets", "sandbox", "radicale", "nextcloud", "synapse",
             "dovecot", "maildir", "report.html", "migrator.toml", "registration.yaml")


def run_demo(workdir: Path, console: Console, stay: bool = False, on_ready: Callable[[DemoTargets], None] | None = None) -> int:
    """Runs the demo in `workdir` (emptied of an earlier demo first); 0 when every item moved and verified.

    With `stay`, the servers keep running after the report until Enter or Ctrl-C, for `migrator sync`
    and a mail client to try against them. `on_ready` is called with the running servers once the
    report is written, before they stop.
    """
    from migrator.cli import main  # the demo runs the commands a team would type

    started = time.monotonic()
    workdir = workdir.resolve()
    _clear(workdir)
    with ExitStack() as stack:
        stack.enter_context(_terminate_as_interrupt())
        console.print(Rule("1. Start the sandbox tenant and the local targets"))
        sandbox = start_source(workdir, stack)
        targets = start_targets(workdir, sandbox, stack)
        synapse_port = free_port()
        config = write_config(targets, f"http://{HOST}:{synapse_port}")
        registration = workdir / "registration.yaml"
        if main(["matrix", "registration", "-c", str(config), "-o", str(registration)]) != 0:
            return 1
        start_synapse(targets, registration, synapse_port, stack)
        _print_servers(targets, console)

        console.print(Rule("2. migrator preflight"))
        if main(["preflight", "-c", str(config)]) != 0:
            console.print("[red]preflight failed[/red]: the table above names the fix")
            return 1

        console.print(Rule(f"3. migrator run: department {escape(targets.department)}, {len(targets.members)} people"))
        result = migrate(config, console)
        _print_outcome(result, console)

        console.print(Rule("4. migrator report"))
        report = workdir / "report.html"
        if main(["report", "-c", str(config), "--format", "html", "-o", str(report)]) != 0:
            return 1
        data = _report_data(config)
        print_table(data, console, list_items=False)
        healthy = result.exit_code == 0 and is_complete(data)
        console.print(Rule("Where things are"))
        _print_next_steps(targets, report, console, stay)
        console.print(f"the demo took {time.monotonic() - started:.0f} s")
        if not healthy:
            console.print("[red]the demo did not behave as expected[/red]: see the report above")
        if on_ready is not None:
            on_ready(targets)
        if stay:
            _wait_for_enter(console)
    return 0 if healthy else 1


def migrate(config_path: Path, console: Console) -> JobResult:
    """`migrator run` for the configured batch: plan, copy and verify, with live progress on a terminal."""
    config = load_config(config_path)
    job = Job(config, progress=RichProgress(console) if console.is_terminal else None)
    try:
        return asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.close()


def is_complete(report: dict) -> bool:
    """Every item verified at its target or deliberately skipped (e.g. deleted at the source), and the audit chain intact."""
    t = report["totals"]
    return t["failed"] == t["mismatch"] == 0 and t["verified"] + t["skipped"] == t["items"] > 0 and report["chain"]["intact"]


def _report_data(config_path: Path) -> dict:
    config = load_config(config_path)
    job = Job(config)
    try:
        return build_report(job.ledger, department=config.department)
    finally:
        job.close()


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a `kill`, a closing terminal) unwinds like Ctrl-C, so the servers are stopped either way."""
    def interrupt(signo, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _clear(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for name in LEFTOVERS:
        path = workdir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _print_servers(targets: DemoTargets, console: Console) -> None:
    mail = f"Dovecot     {targets.dovecot.host}:{targets.dovecot.port} (IMAPS)" if targets.dovecot else \
        f"Maildir     {targets.maildir} (Dovecot is not installed: apt-get install dovecot-imapd)"
    assert targets.synapse is not None
    console.print(f"Graph       {targets.sandbox.url} (sandbox tenant, {len(targets.sandbox.tenant.users)} users)\n{mail}\n"
                  f"Radicale    {targets.radicale.url} (CalDAV, CardDAV)\nNextcloud   {targets.nextcloud.url} (stand-in: WebDAV, OCS, group folders)\n"
                  f"Synapse     {targets.synapse.url} (application service from {targets.workdir / 'registration.yaml'})")


def _print_outcome(result: JobResult, console: Console) -> None:
    o, v = result.copy.outcomes, result.verify.outcomes
    console.print(f"copied {o['copied']} items ({result.copy.bytes:,} bytes), skipped {o['skipped']}, failed {o['failed']}; "
                  f"verified {v['verified']} by re-reading the targets, mismatched {v['mismatch']}")


def _print_next_steps(targets: DemoTargets, report: Path, console: Console, stay: bool) -> None:
    w, c = targets.workdir, targets.config
    cli = Path(sys.executable).parent / "migrator"
    console.print(f"config      {c}\nsecrets     {targets.secrets} (0600 files the config refers to)\n"
                  f"ledger      {w / 'migration.db'}\nreport      {report}\nserver logs {w}/*/*.log")
    if targets.dovecot is not None:
        user = targets.members[0]["userPrincipalName"]
        console.print(f"mail client IMAP {targets.dovecot.host} port {targets.dovecot.port}, SSL/TLS, CA {targets.dovecot.ca_file}, "
                      f"user {user}, password in {targets.secrets / 'app-passwords.csv'} (line {user.split('@')[0]})")
    else:
        console.print(f"mail        {targets.maildir} (one Maildir per user)")
    console.print("try next" + (" (in another terminal, while the servers run)" if stay else " (run `migrator demo` again to restart the servers)") + ":")
    for line in (f"{cli} status -c {c}", f"{cli} sync -c {c}          # a delta pass: nothing new, nothing copied twice",
                 f"{cli} report -c {c} --format json", f"{cli} audit -c {c}"):
        console.print(f"  {line}")


def _wait_for_enter(console: Console) -> None:
    console.print("[bold]the servers keep running: press Enter (or Ctrl-C) to stop them[/bold]")
    try:
        sys.stdin.readline()
    except KeyboardInterrupt:
        pass
