"""The report as terminal tables (rich): per user and workload, the reconciliation, the runs, the
reasons items did not move and the audit chain head."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from migrator.progress import human_bytes
from migrator.report import copy_throughput, tls_line


def print_table(report: dict[str, Any], console: Console, title: str = "Migration report", list_items: bool = True) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("department", "user", "workload", "items", "verified", "copied", "failed", "skipped", "mismatch", "removed", "deleted", "planned", "moved"):
        table.add_column(column, justify="right" if column not in ("department", "user", "workload") else "left")
    for row in report["rows"]:
        table.add_row(escape(row["department"]), escape(row["upn"]), row["workload"], *_counts(row))
    table.add_section()
    table.add_row("all", "", "", *_counts(report["totals"]))
    console.print(table)
    verification = report["verification"]
    if verification["containers"]:
        v = verification["totals"]
        console.print(f"Reconciled {verification['containers']} containers ({verification['disagreeing']} disagree): {v['source']} items at source, "
                      f"{v['target']} at target; {v['equal']} equal, {v['differing']} differing, {v['only_at_source']} only at source, "
                      f"{v['only_at_target']} only at target", highlight=False)
    seconds, nbytes = copy_throughput(report)
    if seconds:
        console.print(f"Copied {human_bytes(nbytes)} in {seconds:,.1f} s of runs ({human_bytes(nbytes / seconds)}/s)", highlight=False)
    if report["causes"]:
        causes = Table(title="Why items did not move", title_justify="left")
        causes.add_column("state")
        causes.add_column("reason")
        causes.add_column("items", justify="right")
        for cause in report["causes"]:
            causes.add_row(cause["state"], escape(cause["reason"]), str(cause["items"]))
        console.print(causes)
    if list_items and report["problems"]:
        _print_problems(report["problems"], report["filters"]["include_titles"], console)
    if report["adjustment_causes"]:
        adjusted = Table(title="Moved, but not exactly as at the source", title_justify="left")
        adjusted.add_column("reason")
        adjusted.add_column("items", justify="right")
        for cause in report["adjustment_causes"]:
            adjusted.add_row(escape(cause["reason"]), str(cause["items"]))
        console.print(adjusted)
    tls = escape(tls_line(report))
    console.print(f"[red]{tls}[/red]" if report["tls_unverified_runs"] else tls, highlight=False)
    chain = report["chain"]
    state = "intact" if chain["intact"] else "BROKEN (run `migrator audit`)"
    console.print(f"Audit chain: {chain['events']} events, {state}, head {chain['head']}")


def _print_problems(problems: list[dict[str, Any]], include_titles: bool, console: Console, limit: int = 50) -> None:
    table = Table(title="Items that did not move or did not verify", title_justify="left")
    for column in ("user", "workload", "container", "item", "size", "state", "reason", *(["title"] if include_titles else [])):
        table.add_column(column, justify="right" if column in ("item", "size") else "left")
    for p in problems[:limit]:
        table.add_row(escape(p["upn"]), p["workload"], escape(p["container"]), str(p["item_id"]), "" if p["size"] is None else human_bytes(p["size"]),
                      p["state"], escape(p["reason"]), *([escape(p["title"])] if include_titles else []))
    console.print(table)
    if len(problems) > limit:
        console.print(f"... and {len(problems) - limit} more: --format json, csv or html lists them all")


def _counts(row: dict[str, Any]) -> list[str]:
    return [str(row["items"]), str(row["verified"]), str(row["copied"]), _red(row["failed"]), str(row["skipped"]),
            _red(row["mismatch"]), str(row["removed"]), str(row["deleted"]), str(row["planned"]), human_bytes(row["bytes_moved"])]


def _red(value: int) -> str:
    return f"[red]{value}[/red]" if value else "0"
