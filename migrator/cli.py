"""The command line. Known errors become one line and an exit code: 0 all done, 1 some items
failed or were not found, 2 usage or configuration error."""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from migrator import __version__
from migrator.config import (
    Config,
    load_config,
    with_ca_bundle,
    without_tls_verification,
)
from migrator.errors import ConfigError, MigratorError, UsageError
from migrator.job import STAGES, SYNC_STAGES, Job, JobResult, Selection
from migrator.progress import RichProgress, plan_lines
from migrator.reconcile import print_reconciliation
from migrator.report import build_report, to_csv, to_json
from migrator.report_html import to_html
from migrator.report_table import print_table
from migrator.template import CONFIG_TEMPLATE
from migrator.tls import INSECURE_OPTION, INSECURE_WARNING
from state.ledger import Ledger
from state.models import utcnow

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Moves Microsoft 365 data into open-source services, resumably and auditably.")
# Pipes and files have no width: keep report tables whole there.
console = Console(width=None if sys.stdout.isatty() else 160)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Configuration file.", envvar="MIGRATOR_CONFIG")]
LedgerOpt = Annotated[str | None, typer.Option("--ledger", help="Ledger database URL; overrides [ledger].url.")]
DepartmentOpt = Annotated[str | None, typer.Option("--department", help="Move the users of this department.")]
UsersFileOpt = Annotated[Path | None, typer.Option("--users-file", help="Move the users listed in this file (one UPN a line or a CSV with a 'upn' column).")]
WorkloadOpt = Annotated[list[str] | None, typer.Option("--workload", "-w", help="Only this workload; repeat for several.")]


class _State:
    debug = False
    ca_bundle: Path | None = None
    skip_tls_verify = False


def _version(value: bool) -> None:
    if value:
        console.print(f"migrator {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
    ca_bundle: Annotated[Path | None, typer.Option("--ca-bundle", help="A private CA to trust for every connection without its own ca_bundle.")] = None,
    skip_tls_verify: Annotated[bool, typer.Option(INSECURE_OPTION, help=(
        "DANGEROUS: do not verify any server's certificate (Graph, sign-in, downloads and every target), so anyone on the network "
        "path can read and change the data and the credentials. Recorded in the ledger and shown in every report; prefer --ca-bundle."))] = False,
) -> None:
    _State.debug = debug
    _State.ca_bundle = ca_bundle
    _State.skip_tls_verify = skip_tls_verify


def _config(path: Path, ledger: str | None) -> Config:
    config = load_config(path)
    if _State.ca_bundle is not None:
        config = with_ca_bundle(config, _State.ca_bundle)
    if _State.skip_tls_verify:
        print(INSECURE_WARNING, file=sys.stderr)
        config = without_tls_verification(config)
    if ledger:
        config = _with_ledger(config, ledger)
    return config


def _with_ledger(config: Config, ledger: str) -> Config:
    return replace(config, ledger_url=ledger)


def _ledger_for_reading(config_path: Path, ledger: str | None) -> Ledger:
    url = ledger or load_config(config_path).ledger_url
    parsed = make_url(url) if "://" in url else None
    if parsed is None:
        raise ConfigError(f"ledger URL {url!r} is not a database URL", hint="use e.g. sqlite:///migration.db")
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        raise ConfigError(f"no ledger at {parsed.database}", hint="run `migrator run` first, or point --ledger at an existing ledger")
    return Ledger(url)


def _execute(config: Config, command: str, selection: Selection, stages: tuple[str, ...], dry_run: bool = False, retry_failed: bool = False,
             force: bool = False) -> tuple[JobResult, bool]:
    """Runs the job; the flag says whether progress (and the plan summary) was already shown."""
    progress = RichProgress(console) if console.is_terminal and not dry_run else None
    job = Job(config, progress=progress)
    try:
        return asyncio.run(job.run(command, selection, stages, dry_run=dry_run, retry_failed=retry_failed, force=force)), progress is not None
    finally:
        job.close()


def _print_result(result: JobResult, dry_run: bool = False, plan_shown: bool = False) -> None:
    for upn in result.unknown_users:
        console.print(f"[yellow]not found at the source:[/yellow] {upn}")
    if result.plan and not plan_shown:
        for line in plan_lines(result.plan.by_workload(), "would move" if dry_run else "planned"):
            console.print(line)
    if result.copy:
        o = result.copy.outcomes
        console.print(f"copied {o['copied']}, already at target {o['healed']}, skipped {o['skipped']}, failed {o['failed']} ({result.copy.bytes:,} bytes)")
    if result.verify:
        v = result.verify.outcomes
        console.print(f"verified {v['verified']}, mismatched {v['mismatch']}" + (f", unreachable {v['unreachable']}" if v["unreachable"] else "")
                      + (f", not in the sample {v['not_sampled']}" if v["not_sampled"] else ""))
        for where, count in result.verify.target_only.items():
            console.print(f"[yellow]{count} items only at the target[/yellow] in {escape(where)}")
        if result.verify.reconciled.containers:
            print_reconciliation(result.verify.reconciled, console)
    if result.deleted:
        d = result.deleted.outcomes
        console.print(f"deleted at target {d['deleted']}, already gone {d['already_gone']}, kept (target cannot delete) {d['kept']}, failed {d['failed']}")
    for where, held in result.guarded.items():
        console.print(f"[red]stopped for {escape(where)}[/red]: the source lists none of the {held} items the ledger holds for it; "
                      "check the source (mailbox, permissions), or pass --force if it really was emptied")
    if result.failed:
        console.print(f"[red]{result.failed} items failed[/red]: `migrator report` lists them with their reasons; rerun to retry")


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the configuration.")] = Path("migrator.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented configuration template."""
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it, or choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONFIG_TEMPLATE)
    console.print(escape(f"wrote {path}: edit [source], [batch] and [targets], then run `migrator preflight` and `migrator run --dry-run`"))


@app.command()
def preflight(
    config: ConfigOpt = Path("migrator.toml"), department: DepartmentOpt = None, users_file: UsersFileOpt = None, workload: WorkloadOpt = None,
) -> None:
    """Check every connection and permission the configuration needs, before any data moves."""
    from migrator.preflight import FAIL, WARN, run_preflight
    from migrator.wiring import build_sink, build_source

    cfg = _config(config, None)
    selection = Selection.from_config(cfg, department, users_file, workload)
    sinks = {w: build_sink(w, cfg.targets[w], cfg) for w in selection.workloads}
    checks = asyncio.run(run_preflight(cfg, build_source(cfg), sinks, selection))
    table = Table(title="preflight", title_justify="left")
    for column in ("", "check", "result", "fix"):
        table.add_column(column, overflow="fold")
    marks = {FAIL: "[red]fail[/red]", WARN: "[yellow]warn[/yellow]"}
    for check in checks:
        table.add_row(marks.get(check.status, "[green]pass[/green]"), escape(f"{check.area}: {check.subject}"), escape(check.detail), escape(check.fix))
    console.print(table)
    failed = sum(c.status == FAIL for c in checks)
    console.print(f"{failed} checks failed: fix them before the bulk pass" if failed else "ready: `migrator run --dry-run` shows what would move")
    raise typer.Exit(1 if failed else 0)


@app.command()
def plan(
    config: ConfigOpt = Path("migrator.toml"), ledger: LedgerOpt = None, department: DepartmentOpt = None,
    users_file: UsersFileOpt = None, workload: WorkloadOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be planned; write nothing.")] = False,
) -> None:
    """List what changed at the source and record it in the ledger as planned."""
    cfg = _config(config, ledger)
    result, shown = _execute(cfg, "plan", Selection.from_config(cfg, department, users_file, workload), ("plan",), dry_run=dry_run)
    _print_result(result, dry_run, shown)
    raise typer.Exit(1 if result.unknown_users else 0)


@app.command()
def run(
    config: ConfigOpt = Path("migrator.toml"), ledger: LedgerOpt = None, department: DepartmentOpt = None,
    users_file: UsersFileOpt = None, workload: WorkloadOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and print what would move; write nothing.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Give items that used up their attempts a fresh set.")] = False,
) -> None:
    """Plan, copy and verify. Rerunning the same command resumes where it stopped."""
    cfg = _config(config, ledger)
    selection = Selection.from_config(cfg, department, users_file, workload)
    stages = ("plan",) if dry_run else STAGES
    result, shown = _execute(cfg, "run", selection, stages, dry_run=dry_run, retry_failed=retry_failed)
    _print_result(result, dry_run, shown)
    raise typer.Exit(1 if result.unknown_users else 0) if dry_run else typer.Exit(result.exit_code)


ForceOpt = Annotated[bool, typer.Option("--force", help="Accept containers that suddenly read as empty at the source.")]
PropagateOpt = Annotated[bool, typer.Option("--propagate-deletes", help="Delete at the target what was deleted at the source.")]


@app.command()
def sync(
    config: ConfigOpt = Path("migrator.toml"), ledger: LedgerOpt = None, department: DepartmentOpt = None,
    users_file: UsersFileOpt = None, workload: WorkloadOpt = None, propagate_deletes: PropagateOpt = False, force: ForceOpt = False,
) -> None:
    """A delta pass: copy what changed at the source since the last pass, verify, and (with
    --propagate-deletes) delete at the target what the source deleted."""
    cfg = _config(config, ledger)
    selection = Selection.from_config(cfg, department, users_file, workload)
    result, shown = _execute(cfg, "sync", selection, SYNC_STAGES if propagate_deletes else STAGES, force=force)
    console.print(f"pass took {result.seconds:,.1f} s")
    _print_result(result, plan_shown=shown)
    raise typer.Exit(result.exit_code)


@app.command()
def cutover(
    config: ConfigOpt = Path("migrator.toml"), ledger: LedgerOpt = None,
    department: Annotated[str, typer.Option("--department", help="The department switching over.")] = "",
    propagate_deletes: PropagateOpt = False, force: ForceOpt = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the summary (JSON) here.")] = None,
) -> None:
    """The final pass of a department, a full verification, and a summary recorded in the audit chain."""
    from migrator.cutover import cutover_summary

    if not department:
        raise UsageError("cutover needs --department", hint="name the department that switches over, as Entra ID spells it")
    cfg = _config(config, ledger)
    cfg = replace(cfg, run=replace(cfg.run, verify_sample=1.0))  # at cutover every item is re-read
    selection = Selection.from_config(cfg, department, None, None)
    result, shown = _execute(cfg, "cutover", selection, SYNC_STAGES if propagate_deletes else STAGES, force=force)
    _print_result(result, plan_shown=shown)
    led = Ledger(cfg.ledger_url)
    try:
        summary = cutover_summary(led, result, department, [u.upn for u in result.users])
    finally:
        led.close()
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    if output is not None:
        output.write_text(text + "\n")
    verdict = "[green]ready to switch[/green]" if summary["ready"] else "[red]not ready[/red]: see still_not_moved and verification"
    console.print(f"cutover of {escape(department)}: {verdict}; summary sha256 {summary['sha256']} recorded, chain head {summary['chain_head']}")
    raise typer.Exit(0 if summary["ready"] else 1)


@app.command()
def worker(
    config: ConfigOpt = Path("migrator.toml"), ledger: LedgerOpt = None, department: DepartmentOpt = None,
    users_file: UsersFileOpt = None, workload: WorkloadOpt = None,
    lease_seconds: Annotated[float, typer.Option("--lease-seconds", help="How long a claim lasts unless renewed; a dead worker's items move on after it.")] = 60.0,
) -> None:
    """Copy and verify what `migrator plan` recorded, alongside any number of workers on one PostgreSQL ledger."""
    from migrator.worker import WorkerJob

    if lease_seconds < 1:
        raise UsageError(f"--lease-seconds must be at least 1, got {lease_seconds}", hint="e.g. --lease-seconds 60")
    cfg = _config(config, ledger)
    job = WorkerJob(cfg)
    job.lease_seconds = lease_seconds
    try:
        result = asyncio.run(job.run("worker", Selection.from_config(cfg, department, users_file, workload), ("copy", "verify")))
    finally:
        job.close()
    _print_result(result)
    raise typer.Exit(result.exit_code)


@app.command()
def verify(
    config: ConfigOpt = Path("migrator.toml"), ledger: LedgerOpt = None, department: DepartmentOpt = None,
    users_file: UsersFileOpt = None, workload: WorkloadOpt = None,
    audit: Annotated[bool, typer.Option("--audit", help="Also check the audit chain.")] = False,
    sample: Annotated[float | None, typer.Option("--sample", help="Re-read only this share of items (0-1), the same ones each time.")] = None,
) -> None:
    """Re-read the targets and compare them with what the ledger says was copied."""
    cfg = _config(config, ledger)
    if sample is not None:
        if not 0 < sample <= 1:
            raise UsageError(f"--sample must be above 0 and at most 1, got {sample}", hint="e.g. --sample 0.1")
        cfg = replace(cfg, run=replace(cfg.run, verify_sample=sample))
    result, shown = _execute(cfg, "verify", Selection.from_config(cfg, department, users_file, workload), ("verify",))
    _print_result(result, plan_shown=shown)
    code = result.exit_code
    if audit:
        code = max(code, _audit(Ledger(cfg.ledger_url), None))
    raise typer.Exit(code)


@app.command()
def status(config: ConfigOpt = Path("migrator.toml"), ledger: LedgerOpt = None, department: DepartmentOpt = None) -> None:
    """Show the ledger per department, user and workload, and the latest runs."""
    led = _ledger_for_reading(config, ledger)
    print_table(build_report(led, department=department), console, title="Ledger status", list_items=False)
    for r in led.runs(5):
        end = r.finished_at.strftime("%Y-%m-%d %H:%M:%S") if r.finished_at else "-"
        console.print(f"run {r.id}: {r.command:<7} {r.status:<24} started {r.started_at:%Y-%m-%d %H:%M:%S}, finished {end}")
    _print_workers(led)


def _print_workers(led: Ledger) -> None:
    workers = led.workers()
    if workers:
        console.print("workers (run, host, pid, last heartbeat UTC, items done, state):")
    now = utcnow()
    for w in workers:
        age = (now - w.heartbeat_at).total_seconds()
        console.print(f"  worker {w.id}: {w.host} pid {w.pid}, heartbeat {w.heartbeat_at:%Y-%m-%d %H:%M:%S} ({age:.0f} s ago), "
                      f"{w.items_done} items done, {w.status}")


@app.command()
def report(
    config: ConfigOpt = Path("migrator.toml"), ledger: LedgerOpt = None, department: DepartmentOpt = None,
    user: Annotated[list[str] | None, typer.Option("--user", help="Only this user (UPN); repeat for several.")] = None,
    workload: WorkloadOpt = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, json, csv or html.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of the terminal.")] = None,
    include_titles: Annotated[bool, typer.Option("--include-titles", help="Also show subjects, file names and message texts of items that did not move.")] = False,
) -> None:
    """Totals and breakdowns with the reasons items did not move."""
    writers = {"json": to_json, "csv": to_csv, "html": to_html}
    if format != "table" and format not in writers:
        raise UsageError(f"--format {format!r} is not known", hint="use table, json, csv or html")
    data = build_report(_ledger_for_reading(config, ledger), department=department, upns=user, workloads=workload, include_titles=include_titles)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
    if format == "table":
        target = Console(file=output.open("w"), width=160) if output else console
        print_table(data, target)
    else:
        text = writers[format](data)
        if output:
            output.write_text(text)
        else:
            sys.stdout.write(text)
    if output:
        console.print(f"wrote {output}")


@app.command()
def audit(
    config: ConfigOpt = Path("migrator.toml"), ledger: LedgerOpt = None,
    expect_head: Annotated[str | None, typer.Option("--expect-head", help="The chain head printed on a report, to detect removed events.")] = None,
) -> None:
    """Check the ledger's audit chain end to end; name the first broken link."""
    raise typer.Exit(_audit(_ledger_for_reading(config, ledger), expect_head))


def _audit(led: Ledger, expect_head: str | None) -> int:
    result = led.audit(expect_head)
    if result.ok:
        console.print(f"audit chain intact: {result.events} events, head {result.head}")
        return 0
    console.print(f"[red]audit chain broken[/red] at event {result.broken_at}: {result.problem}")
    return 1


from migrator.matrix_cli import matrix_app

app.add_typer(matrix_app, name="matrix")

sandbox_app = typer.Typer(no_args_is_help=True, help="A local Microsoft Graph stand-in with a synthetic tenant.")
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("serve")
def sandbox_serve(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0 picks a free one).")] = 8443,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same tenant.")] = 7,
    users: Annotated[int, typer.Option("--users", help="People in the main department.")] = 20,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where the CA, certificate and client secret are kept.")] = Path(".sandbox"),
    large_items: Annotated[bool, typer.Option("--large-items", help="Add a 30 MB message and a 200 MB file for the first user.")] = False,
    throttle: Annotated[bool, typer.Option("--throttle/--no-throttle", help="Apply Microsoft's published throttling limits.")] = False,
    fault_rate: Annotated[float, typer.Option("--fault-rate", help="Share of requests answered 503/504 or dropped.")] = 0.0,
    token_lifetime: Annotated[float, typer.Option("--token-lifetime", help="Access token lifetime in seconds.")] = 3600.0,
) -> None:
    """Serve the synthetic tenant over HTTPS on loopback until interrupted."""
    from migrator.sandbox.serve import serve

    if not 0 <= fault_rate <= 1:
        raise UsageError(f"--fault-rate must be between 0 and 1, got {fault_rate}", hint="e.g. --fault-rate 0.05")
    if users < 1:
        raise UsageError("--users must be at least 1", hint="e.g. --users 20")
    serve(data_dir, console, port=port, seed=seed, users=users, large_items=large_items, throttle=throttle,
          fault_rate=fault_rate, token_lifetime=token_lifetime)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option("--workdir", help="Folder for the demo's config, secrets, ledger, servers and report.")] = Path("demo"),
    stay: Annotated[bool | None, typer.Option("--stay/--no-stay", help="Keep the servers running after the report until Enter (default: on a terminal).")] = None,
) -> None:
    """Migrate a sandbox department into local Dovecot, Radicale, Nextcloud and Synapse servers, with preflight, verification and report."""
    from migrator.demo import run_demo

    raise typer.Exit(run_demo(workdir, console, stay=sys.stdin.isatty() if stay is None else stay))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="migrator", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except typer.Exit as exc:
        if exc.exit_code == 130:  # typer's answer to Ctrl-C
            print("migrator: interrupted; rerun the same command to resume", file=sys.stderr)
        return exc.exit_code
    except typer.Abort:
        print("migrator: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except typer.TyperException as exc:  # the command line itself is wrong (typer's click errors)
        ctx = getattr(exc, "ctx", None)
        hint = f"see `{ctx.command_path} --help`" if ctx is not None else "see `migrator --help`"
        _fail(exc.format_message() if hasattr(exc, "format_message") else str(exc), hint, debug)
        return 2
    except MigratorError as exc:
        _fail(str(exc), exc.hint, debug)
        return exc.exit_code
    except SQLAlchemyError as exc:
        _fail(*_ledger_error(exc), debug)
        return 2
    except KeyboardInterrupt:
        print("migrator: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - an unexpected bug: one line unless --debug
        _fail(f"unexpected {type(exc).__name__}: {exc}", "rerun with --debug for the traceback and report it", debug)
        return 1


def _ledger_error(exc: SQLAlchemyError) -> tuple[str, str]:
    """One line for a ledger failure, with what to do about it."""
    said = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    if "disk is full" in said or "No space left" in said:
        return f"the ledger's disk is full: {said}", "free space where the ledger lives, then rerun the same command: what was recorded is kept"
    if "locked" in said:
        return f"the ledger is busy: {said}", "another migrator holds it; wait for it, or stop it, then rerun"
    return f"ledger error: {type(exc).__name__}: {said}", "check the ledger URL and that the database is reachable"


def _fail(message: str, hint: str | None, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(f"migrator: error: {message}", file=sys.stderr)
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
