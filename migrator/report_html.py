"""The report as one self-contained HTML file: inline CSS (with print rules) and inline SVG charts,
no scripts and no network fetches, so it opens offline, archives as one file and prints as shown."""

from __future__ import annotations

from html import escape
from typing import Any

from migrator.progress import human_bytes
from migrator.reconcile import COUNTS
from migrator.report import STATES, copy_throughput, tls_line
from migrator.report_charts import STATE_COLOURS, cause_bars, stacked_bars

CSS = """
body { font-family: sans-serif; font-size: 13px; color: #212121; margin: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid #cfd8dc; } h3 { font-size: 13px; margin: 14px 0 4px; }
.meta { color: #546e7a; margin-bottom: 16px; } code { font-size: 12px; word-break: break-all; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; }
.tile { border: 1px solid #cfd8dc; border-radius: 4px; padding: 8px 12px; min-width: 110px; }
.tile b { display: block; font-size: 20px; }
.ok { color: #2e7d32; } .bad { color: #c62828; font-weight: bold; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid #cfd8dc; padding: 3px 6px; text-align: right; vertical-align: top; }
th { background: #eceff1; } td.l, th.l { text-align: left; }
tr.dept td { font-weight: bold; background: #f5f7f8; } tr.user td.l:first-child { padding-left: 18px; }
tr.load td.l:first-child { padding-left: 34px; } tr.warn td { background: #fff8e1; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 8px 0 16px; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { margin: 0; font-size: 10px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; } svg.chart, .tiles, tr { break-inside: avoid; }
  thead { display: table-header-group; }
}
"""


def to_html(report: dict[str, Any]) -> str:
    totals, chain = report["totals"], report["chain"]
    departments = report["departments"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; img-src data:">',
        f"<title>Migration report {escape(report['generated_at'])}</title><style>{CSS}</style></head><body>",
        "<h1>Migration report</h1>",
        f'<div class="meta">generated {escape(report["generated_at"])} &middot; {escape(_filters(report["filters"]))} &middot; schema {escape(report["schema"])}</div>',
        _chain(chain),
        _tls(report),
        _tiles(report),
        "<h2>Progress per department</h2>",
        stacked_bars("Items per department by state", [(d["department"] or "(no department)", d) for d in departments]),
        "<h2>Progress per workload</h2>",
        stacked_bars("Items per workload by state", [(w["workload"], w) for w in report["by_workload"]]),
        "<h2>Why items did not move</h2>",
        cause_bars("Items per cause", report["causes"]) or "<p>Every item moved.</p>",
        _causes_table(report["causes"]),
        "<h2>Department, user and workload</h2>",
        _breakdown(departments, totals),
        "<h2>Verification per container (times in UTC)</h2>",
        _reconciliation(report),
        "<h2>Items that did not move or did not verify</h2>",
        _problems(report["problems"], report["filters"]["include_titles"]),
        "<h2>Moved, but not exactly as at the source</h2>",
        _adjusted(report),
        "<h2>Runs (times in UTC)</h2>",
        _runs(report["runs"]),
        f'<p class="meta">Match this report to its ledger: <code>migrator audit --expect-head {escape(chain["head"])}</code></p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _filters(filters: dict[str, Any]) -> str:
    shown = [f"department {filters['department']}"] if filters["department"] else []
    if filters["users"]:
        shown.append(f"users {', '.join(filters['users'])}")
    if filters["workloads"]:
        shown.append(f"workloads {', '.join(filters['workloads'])}")
    return "; ".join(shown) or "the whole ledger"


def _chain(chain: dict[str, Any]) -> str:
    state = '<span class="ok">intact</span>' if chain["intact"] else f'<span class="bad">BROKEN: {escape(chain["problem"])}</span>'
    return f'<p>Audit chain: {chain["events"]} events, {state}; head <code>{escape(chain["head"])}</code></p>'


def _tls(report: dict[str, Any]) -> str:
    css = "bad" if report["tls_unverified_runs"] else "ok"
    return f'<p class="{css}">{escape(tls_line(report))}</p>'


def _tiles(report: dict[str, Any]) -> str:
    t, v = report["totals"], report["verification"]
    seconds, nbytes = copy_throughput(report)
    tiles = [("items", t["items"]), ("verified", t["verified"]), ("copied, not re-read", t["copied"]), ("planned", t["planned"]),
             ("failed", t["failed"]), ("mismatch", t["mismatch"]), ("skipped", t["skipped"]), ("removed at source", t["removed"]), ("deleted at both", t["deleted"]),
             ("moved", human_bytes(t["bytes_moved"])), ("copy time", f"{seconds:,.1f} s"),
             ("throughput", f"{human_bytes(nbytes / seconds)}/s" if seconds else "-"),
             ("containers disagreeing", f"{v['disagreeing']} of {v['containers']}")]
    bad = {"failed", "mismatch"}
    cells = "".join(f'<div class="tile">{escape(label)}<b class="{"bad" if label in bad and value else ""}">{escape(str(value))}</b></div>' for label, value in tiles)
    return f'<div class="tiles">{cells}</div>'


def _is_left(i: int, left: int | set[int]) -> bool:
    """Text columns align left: the first `left` columns, or those named by index."""
    return i in left if isinstance(left, set) else i < left


def _table(head: list[str], rows: list[str], left: int | set[int] = 1) -> str:
    cells = "".join(f'<th class="{"l" if _is_left(i, left) else ""}">{escape(h)}</th>' for i, h in enumerate(head))
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _row(values: list[Any], left: int | set[int] = 1, css: str = "") -> str:
    cells = "".join(f'<td class="{"l" if _is_left(i, left) else ""}">{escape("" if v is None else str(v))}</td>' for i, v in enumerate(values))
    return f'<tr class="{css}">{cells}</tr>'


def _counts(entry: dict[str, Any]) -> list[Any]:
    rate = entry["bytes_per_second"]
    return [entry["items"], *(entry[s] for s in STATES), human_bytes(entry["bytes_moved"]), f"{entry['copy_seconds']:,.1f} s",
            f"{human_bytes(rate)}/s" if rate else "-"]


def _breakdown(departments: list[dict[str, Any]], totals: dict[str, Any]) -> str:
    head = ["department / user / workload", "items", *STATES, "moved", "copy time", "throughput"]
    rows = []
    for d in departments:
        rows.append(_row([d["department"] or "(no department)", *_counts(d)], css="dept"))
        for u in d["users"]:
            rows.append(_row([u["upn"], *_counts(u)], css="user"))
            rows.extend(_row([w["workload"], *_counts(w)], css="load") for w in u["workloads"])
    rows.append(_row(["all", *_counts(totals)], css="dept"))
    swatches = " ".join(f'<span class="swatch" style="background:{c}"></span>{s}' for s, c in STATE_COLOURS.items())
    return _table(head, rows) + f'<p class="meta">{swatches}</p>'


def _reconciliation(report: dict[str, Any]) -> str:
    v = report["verification"]
    if not v["containers"]:
        return "<p>No verification has been recorded for these containers: run <code>migrator verify</code>.</p>"
    head = ["user", "workload", "container", "at source", "at target", "equal", "differing", "only at source", "only at target", "not re-read", "removed at source", "verified at"]
    rows, disagreeing = [], []
    for d in report["departments"]:
        for u in d["users"]:
            for w in u["workloads"]:
                for c in w["containers"]:
                    f = c["reconciliation"]
                    if f is None:
                        rows.append(_row([u["upn"], w["workload"], c["path"], c["items"] - c["removed"], *["" for _ in range(7)], "never"], left=3, css="warn"))
                        continue
                    target = f["target"] if f["target"] is not None else f.get("note") or "not listed"
                    disagrees = f["differing"] or f["only_at_source"] or f["only_at_target"] or f.get("note")
                    row = _row([u["upn"], w["workload"], c["path"], f["source"], target, *(f[k] for k in COUNTS[2:]), _when(f["at"])],
                               left=3, css="warn" if disagrees else "")
                    rows.append(row)
                    if disagrees:
                        disagreeing.append(row)
    s = v["totals"]
    rows.append(_row(["all", "", f"{v['containers']} containers, {v['disagreeing']} disagree", *(s[k] for k in COUNTS), ""], left=3, css="dept"))
    where = "<h3>Where source and target disagree</h3>" + _table(head, disagreeing, left=3) if disagreeing else "<p>Source and target agree in every container.</p>"
    return where + "<h3>Every container</h3>" + _table(head, rows, left=3)


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ")


def _causes_table(causes: list[dict[str, Any]]) -> str:
    if not causes:
        return ""
    return _table(["state", "reason", "items"], [_row([c["state"], c["reason"], c["items"]], left=2) for c in causes], left=2)


def _problems(problems: list[dict[str, Any]], include_titles: bool) -> str:
    if not problems:
        return "<p>None.</p>"
    head = ["user", "workload", "container", "item", "source id", "kind", "size", "state", "reason", "attempts"] + (["title"] if include_titles else [])
    text = {0, 1, 2, 4, 5, 7, 8, 10}
    rows = [
        _row([p["upn"], p["workload"], p["container"], p["item_id"], p["source_id"], p["kind"], p["size"], p["state"], p["reason"], p["attempts"]]
             + ([p["title"]] if include_titles else []), left=text)
        for p in problems
    ]
    return _table(head, rows, left=text)


def _adjusted(report: dict[str, Any]) -> str:
    """Names made legal for the target and what a sink could not carry over (shares, links, times)."""
    causes, adjusted = report["adjustment_causes"], report["adjusted"]
    if not adjusted:
        return "<p>Nothing: every moved item arrived as it was.</p>"
    titles = report["filters"]["include_titles"]
    summary = _table(["reason", "items"], [_row([c["reason"], c["items"]]) for c in causes])
    head = ["user", "workload", "container", "item", "renamed because", "not carried over"] + (["original name", "name at target"] if titles else [])
    text = {0, 1, 2, 4, 5, 6, 7}
    rows = [
        _row([a["upn"], a["workload"], a["container"], a["item_id"], ", ".join(a.get("renamed_because", [])), "; ".join(a["notes"])]
             + ([a.get("renamed_from") or "", a.get("renamed_to") or ""] if titles else []), left=text)
        for a in adjusted
    ]
    return summary + _table(head, rows, left=text)


def _runs(runs: list[dict[str, Any]]) -> str:
    head = ["run", "command", "status", "started", "finished", "seconds", "items copied", "bytes copied", "throughput", "TLS verified"]
    text = {1, 2, 3, 4, 9}
    rows = [_row([r["run_id"], r["command"], r["status"], _when(r["started_at"]), _when(r["finished_at"]) if r["finished_at"] else "-", r["seconds"],
                  r["items_copied"], human_bytes(r["bytes_copied"]), f"{human_bytes(r['bytes_per_second'])}/s" if r["bytes_per_second"] else "-",
                  "yes" if r["tls_verified"] else "NO"], left=text, css="" if r["tls_verified"] else "warn")
            for r in runs]
    return _table(head, rows, left=text) if rows else "<p>No runs recorded.</p>"
