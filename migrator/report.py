"""Reports built from the ledger: per department, user and workload, with the reasons items did
not move. JSON and CSV follow the documented schema `migrator-report/1` (see README)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from migrator.progress import human_bytes
from state.ledger import Ledger
from state.models import ItemState

SCHEMA = "migrator-report/1"
STATES = [s.value for s in ItemState]
MOVED = (ItemState.COPIED, ItemState.VERIFIED)
ROW_FIELDS = ["department", "upn", "workload", "items", *STATES, "bytes_moved"]


def build_report(ledger: Ledger, department: str | None = None, upns: list[str] | None = None, workloads: list[str] | None = None) -> dict[str, Any]:
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for dept, upn, workload, state, count, nbytes in ledger.state_counts(upns, workloads, department):
        row = rows.setdefault((dept, upn, workload), {"department": dept, "upn": upn, "workload": workload, "items": 0, **{s: 0 for s in STATES}, "bytes_moved": 0})
        row[state] += count
        row["items"] += count
        if state in MOVED:
            row["bytes_moved"] += int(nbytes)
    problems = [
        {"department": d, "upn": u, "workload": w, "container": c, "item": n, "state": s, "reason": r or "", "attempts": a}
        for d, u, w, c, n, s, r, a in ledger.problems(upns, workloads, department)
    ]
    causes = Counter((p["state"], p["reason"]) for p in problems)
    audit = ledger.audit()
    totals = {"items": 0, **{s: 0 for s in STATES}, "bytes_moved": 0}
    for row in rows.values():
        for key in totals:
            totals[key] += row[key]
    return {
        "schema": SCHEMA,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "filters": {"department": department, "users": upns, "workloads": workloads},
        "chain": {"head": audit.head, "events": audit.events, "intact": audit.ok},
        "totals": totals,
        "rows": list(rows.values()),
        "causes": [{"state": s, "reason": r, "items": n} for (s, r), n in causes.most_common()],
        "problems": problems,
    }


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in report["rows"]:
        writer.writerow({k: row[k] for k in ROW_FIELDS})
    return out.getvalue()


def print_table(report: dict[str, Any], console: Console, title: str = "Migration report") -> None:
    table = Table(title=title, title_justify="left")
    for column in ("department", "user", "workload", "items", "verified", "copied", "failed", "skipped", "mismatch", "removed", "planned", "moved"):
        table.add_column(column, justify="right" if column not in ("department", "user", "workload") else "left")
    for row in report["rows"]:
        table.add_row(
            row["department"], row["upn"], row["workload"], str(row["items"]), str(row["verified"]), str(row["copied"]),
            _red(row["failed"]), str(row["skipped"]), _red(row["mismatch"]), str(row["removed"]), str(row["planned"]), human_bytes(row["bytes_moved"]),
        )
    t = report["totals"]
    table.add_section()
    table.add_row("all", "", "", str(t["items"]), str(t["verified"]), str(t["copied"]), _red(t["failed"]), str(t["skipped"]),
                  _red(t["mismatch"]), str(t["removed"]), str(t["planned"]), human_bytes(t["bytes_moved"]))
    console.print(table)
    if report["causes"]:
        causes = Table(title="Why items did not move", title_justify="left")
        causes.add_column("state")
        causes.add_column("reason")
        causes.add_column("items", justify="right")
        for cause in report["causes"]:
            causes.add_row(cause["state"], cause["reason"], str(cause["items"]))
        console.print(causes)
    chain = report["chain"]
    state = "intact" if chain["intact"] else "BROKEN (run `migrator audit`)"
    console.print(f"Audit chain: {chain['events']} events, {state}, head {chain['head']}")


def _red(value: int) -> str:
    return f"[red]{value}[/red]" if value else "0"
