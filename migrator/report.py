"""Reports built from the ledger: department -> user -> workload -> container, with bytes, run
durations, the reasons items did not move, the latest reconciliation of each container and the audit
chain head. JSON and CSV follow the documented schema `migrator-report/2` (see README).

Privacy: items are named by ids, folder paths and sizes. The ledger's item name holds a message's or
event's subject, a contact's name, a file's path or a chat message's text, so it appears only when
the caller asks for titles."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from typing import Any

from migrator.reconcile import COUNTS, EVENT_CONTAINER
from migrator.report_adjustments import adjustments
from state.ledger import Ledger
from state.models import ItemState
from state.queries import decode_path

SCHEMA = "migrator-report/2"
STATES = [s.value for s in ItemState]
MOVED = (ItemState.COPIED, ItemState.VERIFIED)
COUNT_FIELDS = ["items", *STATES, "bytes_moved"]
ROW_FIELDS = ["department", "upn", "workload", *COUNT_FIELDS]
CSV_FIELDS = ["department", "upn", "workload", "container_id", "container", *COUNT_FIELDS, *COUNTS, "reconciled_at", "tls_unverified_runs"]


def _counts() -> dict[str, int]:
    return {k: 0 for k in COUNT_FIELDS}


def _add(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key in COUNT_FIELDS:
        into[key] += other[key]


def build_report(ledger: Ledger, department: str | None = None, upns: list[str] | None = None, workloads: list[str] | None = None,
                 include_titles: bool = False) -> dict[str, Any]:
    reconciled = latest_reconciliations(ledger)
    containers: dict[int, dict[str, Any]] = {}
    place: dict[int, tuple[str, str, str]] = {}
    for dept, upn, workload, container_id, source_path, target_path, _owner, state, count, nbytes, _missing in ledger.container_states(upns, workloads, department):
        entry = containers.get(container_id)
        if entry is None:
            entry = containers[container_id] = {
                "container_id": container_id, "path": "/".join(decode_path(source_path or "[]")), "target_path": "/".join(decode_path(target_path)),
                **_counts(), "reconciliation": reconciled.get(container_id),
            }
            place[container_id] = (dept, upn, workload)
        if state is not None:
            entry[state] += count
            entry["items"] += count
            if state in MOVED:
                entry["bytes_moved"] += int(nbytes)
    tree: dict[str, dict[str, Any]] = {}
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    by_workload: dict[str, dict[str, Any]] = {}
    totals = _counts()
    for container_id, entry in containers.items():
        dept, upn, workload = place[container_id]
        d = tree.setdefault(dept, {"department": dept, **_counts(), "users": {}})
        u = d["users"].setdefault(upn, {"upn": upn, **_counts(), "workloads": {}})
        w = u["workloads"].setdefault(workload, {"workload": workload, **_counts(), "containers": []})
        w["containers"].append(entry)
        row = rows.setdefault((dept, upn, workload), {"department": dept, "upn": upn, "workload": workload, **_counts()})
        for level in (d, u, w, row, by_workload.setdefault(workload, {"workload": workload, **_counts()}), totals):
            _add(level, entry)
    item_containers = ledger.item_containers(upns, workloads, department)
    timing = copy_timing(ledger, place, item_containers)
    for key, level in ((("all",), totals), *((("department", k), v) for k, v in tree.items()),
                       *((("workload", k), v) for k, v in by_workload.items()), *((("row", *k), v) for k, v in rows.items())):
        level.update(timing.get(key, NO_COPIES))
    for d in tree.values():
        for u in d["users"].values():
            u.update(timing.get(("user", d["department"], u["upn"]), NO_COPIES))
            for w in u["workloads"].values():
                w.update(timing.get(("row", d["department"], u["upn"], w["workload"]), NO_COPIES))
    departments = [
        {**{k: v for k, v in d.items() if k != "users"},
         "users": [{**{k: v for k, v in u.items() if k != "workloads"}, "workloads": list(u["workloads"].values())} for u in d["users"].values()]}
        for d in tree.values()
    ]
    problems = _problems(ledger, department, upns, workloads, include_titles)
    causes = Counter((p["state"], p["reason"]) for p in problems)
    adjusted, adjustment_causes = adjustments(ledger, place, {i: c["path"] for i, c in containers.items()}, item_containers, include_titles)
    audit = ledger.audit()
    runs = run_figures(ledger)
    return {
        "schema": SCHEMA,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "filters": {"department": department, "users": upns, "workloads": workloads, "include_titles": include_titles},
        "chain": {"head": audit.head, "events": audit.events, "intact": audit.ok, "problem": audit.problem},
        "totals": totals,
        "by_workload": sorted(by_workload.values(), key=lambda w: w["workload"]),
        "rows": list(rows.values()),
        "departments": departments,
        "verification": _verification(containers.values()),
        "runs": runs,
        "tls_unverified_runs": [r["run_id"] for r in runs if not r["tls_verified"]],
        "causes": [{"state": s, "reason": r, "items": n} for (s, r), n in causes.most_common()],
        "problems": problems,
        "adjustment_causes": adjustment_causes,
        "adjusted": adjusted,
    }


NO_COPIES = {"copy_seconds": 0.0, "bytes_per_second": None}


def copy_timing(ledger: Ledger, place: dict[int, tuple[str, str, str]], item_containers: dict[int, int]) -> dict[tuple, dict[str, Any]]:
    """Time spent copying at every level of the breakdown: in each run, from the level's first to its
    last copied item (item.copied events), summed over runs; and the bytes copied per second of it."""
    spans: dict[tuple, dict[int | None, list]] = {}
    for event in ledger.events_of(["item.copied"]):
        container_id = item_containers.get(int(event.subject.removeprefix("item ")))
        if container_id not in place:
            continue
        dept, upn, workload = place[container_id]
        nbytes = int(json.loads(event.detail).get("bytes") or 0)
        for key in (("all",), ("department", dept), ("user", dept, upn), ("row", dept, upn, workload), ("workload", workload)):
            span = spans.setdefault(key, {}).get(event.run_id)
            if span is None:
                spans[key][event.run_id] = [event.at, event.at, nbytes]
            else:
                span[0], span[1], span[2] = min(span[0], event.at), max(span[1], event.at), span[2] + nbytes
    timing = {}
    for key, runs in spans.items():
        seconds = sum((last - first).total_seconds() for first, last, _ in runs.values())
        nbytes = sum(b for _, _, b in runs.values())
        timing[key] = {"copy_seconds": round(seconds, 3), "bytes_per_second": round(nbytes / seconds) if seconds else None}
    return timing


def latest_reconciliations(ledger: Ledger) -> dict[int, dict[str, Any]]:
    """The newest reconciliation event of each container, with when and by which run it was made."""
    latest: dict[int, dict[str, Any]] = {}
    for event in ledger.events_of([EVENT_CONTAINER]):
        container_id = int(event.subject.removeprefix("container "))
        latest[container_id] = {**{k: None for k in COUNTS}, **json.loads(event.detail), "at": _iso(event.at), "run_id": event.run_id}
    return latest


def _verification(containers) -> dict[str, Any]:
    sums = {k: 0 for k in COUNTS}
    checked = disagreeing = unlisted = 0
    for entry in containers:
        figures = entry["reconciliation"]
        if figures is None:
            continue
        checked += 1
        unlisted += figures["target"] is None
        disagreeing += bool(figures["differing"] or figures["only_at_source"] or figures["only_at_target"] or figures.get("note"))
        for key in COUNTS:
            sums[key] += figures[key] or 0
    return {"containers": checked, "disagreeing": disagreeing, "unlisted": unlisted, "totals": sums}


def run_figures(ledger: Ledger) -> list[dict[str, Any]]:
    """Each run's duration, what it copied and whether it verified server certificates, from the
    run rows and their run.started and run.finished events."""
    finished = {e.run_id: json.loads(e.detail) for e in ledger.events_of(["run.finished"])}
    # Runs recorded before run.started said so had no way to skip verification.
    verified = {e.run_id: json.loads(e.detail).get("tls_verified", True) for e in ledger.events_of(["run.started"])}
    figures = []
    for run in sorted(ledger.runs(limit=None), key=lambda r: r.id):
        copy = finished.get(run.id, {}).get("copy", {})
        seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
        nbytes = int(copy.get("bytes", 0))
        figures.append({
            "run_id": run.id, "command": run.command, "status": run.status, "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at) if run.finished_at else None, "seconds": round(seconds, 3) if seconds is not None else None,
            "items_copied": int(copy.get("copied", 0)), "bytes_copied": nbytes,
            "bytes_per_second": round(nbytes / seconds) if seconds and nbytes else None, "tls_verified": verified.get(run.id, True),
        })
    return figures


def _problems(ledger: Ledger, department, upns, workloads, include_titles: bool) -> list[dict[str, Any]]:
    problems = []
    for d, u, w, container_id, path, item_id, source_id, kind, name, size, state, reason, attempts, dest_key in ledger.problem_items(upns, workloads, department):
        reason = reason or ""
        entry = {"department": d, "upn": u, "workload": w, "container_id": container_id, "container": "/".join(decode_path(path or "[]")),
                 "item_id": item_id, "source_id": source_id, "kind": kind, "size": size, "state": state,
                 "reason": reason if include_titles else without_titles(reason, name or "", dest_key or ""), "attempts": attempts}
        if include_titles:
            entry["title"] = name
        problems.append(entry)
    return problems


HIDDEN = "[title]"


def without_titles(reason: str, name: str, dest_key: str) -> str:
    """A reason with the item's own name taken out: a server's refusal often quotes the file's path."""
    names = {name, name.rsplit("/", 1)[-1], dest_key, dest_key.rsplit("/", 1)[-1]}
    for text in sorted((n for n in names if len(n) >= 3), key=len, reverse=True):
        reason = reason.replace(text, HIDDEN)
    return reason


def _iso(moment: dt.datetime) -> str:
    return moment.replace(tzinfo=dt.UTC).isoformat(timespec="seconds")


def tls_line(report: dict[str, Any]) -> str:
    """One sentence on certificate checks, the same in every format that is read by people."""
    unverified = report["tls_unverified_runs"]
    if unverified:
        runs = ", ".join(str(r) for r in unverified)
        return f"TLS certificates were NOT verified in run{'s' if len(unverified) > 1 else ''} {runs} (--insecure-skip-tls-verify)"
    return f"TLS certificates were verified in every run ({len(report['runs'])} runs)"


def copy_throughput(report: dict[str, Any]) -> tuple[float, int]:
    """Seconds spent in runs that copied, and the bytes they copied."""
    runs = [r for r in report["runs"] if r["bytes_copied"] and r["seconds"]]
    return sum(r["seconds"] for r in runs), sum(r["bytes_copied"] for r in runs)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    """One line per container; the reconciliation columns are empty where none was made, and every
    line names the ledger's runs that skipped certificate checks (none: empty)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    unverified = " ".join(str(r) for r in report["tls_unverified_runs"])
    for d in report["departments"]:
        for u in d["users"]:
            for w in u["workloads"]:
                for c in w["containers"]:
                    figures = c["reconciliation"] or {}
                    writer.writerow({
                        "department": d["department"], "upn": u["upn"], "workload": w["workload"], "container_id": c["container_id"],
                        "container": c["path"], **{k: c[k] for k in COUNT_FIELDS},
                        **{k: "" if figures.get(k) is None else figures[k] for k in COUNTS}, "reconciled_at": figures.get("at", ""),
                        "tls_unverified_runs": unverified,
                    })
    return out.getvalue()
