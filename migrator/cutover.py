"""The cutover summary of a department: what the final pass found, what is still failed or skipped
and why, how the targets reconcile with the source, and the audit chain's head. The summary's own
SHA-256 is appended to the audit chain, so the printed or filed copy can be matched to the ledger
later (`migrator audit`), and any later edit of the summary shows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from migrator.job import JobResult
from migrator.report import build_report
from state.ledger import Ledger

SCHEMA = "migrator-cutover/1"


def cutover_summary(ledger: Ledger, result: JobResult, department: str | None, upns: list[str] | None) -> dict[str, Any]:
    report = build_report(ledger, department=department, upns=upns)
    found = result.plan.by_workload() if result.plan else {}
    summary = {
        "schema": SCHEMA,
        "department": department,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run_id": result.run_id,
        "final_pass": {
            "seconds": round(result.seconds, 1),
            "found": {w: {k: c[k] for k in ("new", "changed", "removed", "unchanged")} for w, c in sorted(found.items())},
            "copied": dict(result.copy.outcomes) if result.copy else {},
            "deleted_at_target": dict(result.deleted.outcomes) if result.deleted else None,
            "guarded_containers": result.guarded,
        },
        "totals": report["totals"],
        "verification": report["verification"],
        "still_not_moved": report["causes"],
        "moved_with_adjustments": report["adjustment_causes"],
        "tls_unverified_runs": report["tls_unverified_runs"],
        "ready": not (result.failed or result.unfinished or result.guarded) and not report["verification"].get("disagreeing"),
    }
    body = json.dumps(summary, sort_keys=True, ensure_ascii=False).encode()
    digest = hashlib.sha256(body).hexdigest()
    ledger.record_event(result.run_id, "cutover.summary", department or "batch", {"sha256": digest, "ready": summary["ready"]})
    summary["sha256"] = digest
    summary["chain_head"] = ledger.head()
    return summary
