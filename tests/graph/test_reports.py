"""Reports an auditor can check, from a ledger produced by a real run over the sandbox tenant
(tests/graph/audited.py tells the story): the reconciliation `migrator verify` prints and records,
each report format, titles only on request, no secret anywhere, and the HTML rendered by Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from migrator.report import COUNT_FIELDS, CSV_FIELDS, STATES
from migrator.report_charts import STATE_COLOURS
from tests.chromium import print_to_pdf, screenshot
from tests.graph.audited import WORKLOADS, Audited, produce
from tests.png import read_png

DEFAULT_OUTPUTS = ("verify", "report.json", "report.csv", "report.html", "report.table", "status", "audit")


@pytest.fixture(scope="module")
def audited(tmp_path_factory, tls_files) -> Audited:
    return produce(tmp_path_factory.mktemp("audited"), tls_files)


def _ledger_rows(audited: Audited, query: str) -> list[tuple]:
    db = sqlite3.connect(audited.ledger)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def test_verify_prints_the_reconciliation_and_records_it_per_container(audited):
    out = audited.outputs["verify"]
    containers = _ledger_rows(audited, "select count(*) from container")[0][0]
    at_source = _ledger_rows(audited, "select count(*) from item where state != 'removed'")[0][0]
    # Two messages deleted at the source fail, one removed from the target, one altered, one added there.
    line = (f"reconciled {containers} containers: {at_source} items at source, {at_source - 2} at target; "
            f"{at_source - 4} equal, 1 differing, 3 only at source, 1 only at target")
    assert line in out.splitlines(), out
    assert re.search(r"^  \S+:INBOX: 2 only at source$", out, re.MULTILINE), out
    events = _ledger_rows(audited, "select subject, detail from event where kind = 'verify.container'")
    assert len(events) == containers
    figures = [json.loads(detail) for _, detail in events]
    assert sum(f["only_at_target"] for f in figures) == 1 and sum(f["differing"] for f in figures) == 1
    assert sum(f["equal"] for f in figures) == at_source - 4
    summary = _ledger_rows(audited, "select detail from event where kind = 'verify.reconciled'")
    assert [json.loads(d)["only_at_source"] for (d,) in summary] == [3]


def test_json_report_breaks_down_department_user_workload_container(audited):
    report = json.loads(audited.outputs["report.json"])
    assert report["schema"] == "migrator-report/2"
    assert [d["department"] for d in report["departments"]] == sorted(audited.departments)
    assert [w["workload"] for w in report["by_workload"]] == sorted(WORKLOADS)
    totals = report["totals"]
    assert totals["items"] == sum(totals[s] for s in STATES) and totals["failed"] == 2 and totals["mismatch"] == 2
    for key in COUNT_FIELDS:
        assert sum(d[key] for d in report["departments"]) == totals[key]
        for d in report["departments"]:
            assert sum(u[key] for u in d["users"]) == d[key]
            for u in d["users"]:
                assert sum(w[key] for w in u["workloads"]) == u[key]
                for w in u["workloads"]:
                    assert sum(c[key] for c in w["containers"]) == w[key]
    verification = report["verification"]
    assert verification["containers"] == _ledger_rows(audited, "select count(*) from container")[0][0]
    assert verification["disagreeing"] == 3 and verification["unlisted"] == 0
    assert {k: verification["totals"][k] for k in ("differing", "only_at_source", "only_at_target")} == {"differing": 1, "only_at_source": 3, "only_at_target": 1}
    causes = {(c["state"], c["reason"]): c["items"] for c in report["causes"]}
    assert causes[("mismatch", "missing at target")] == 1
    assert [n for (state, reason), n in causes.items() if state == "failed" and "404" in reason] == [2]
    assert any(state == "mismatch" and reason.startswith("size differs") for state, reason in causes)
    assert len(report["problems"]) == 4 and all("title" not in p and p["item_id"] and p["source_id"] for p in report["problems"])
    copying = [r for r in report["runs"] if r["items_copied"]]
    assert len(copying) == 1 and copying[0]["items_copied"] == totals["items"] - 2
    assert copying[0]["bytes_copied"] > 0 and copying[0]["seconds"] > 0 and copying[0]["bytes_per_second"] > 0
    assert 0 < totals["copy_seconds"] <= copying[0]["seconds"] and totals["bytes_per_second"] > 0
    for d in report["departments"]:
        assert 0 < d["copy_seconds"] <= totals["copy_seconds"] and d["bytes_per_second"] > 0
        for u in d["users"]:
            assert 0 < u["copy_seconds"] <= d["copy_seconds"] and all(w["copy_seconds"] <= u["copy_seconds"] for w in u["workloads"])
    head = report["chain"]["head"]
    assert report["chain"]["intact"] and f"head {head}" in audited.outputs["audit"]


def test_csv_report_is_one_documented_line_per_container(audited):
    report = json.loads(audited.outputs["report.json"])
    reader = csv.DictReader(io.StringIO(audited.outputs["report.csv"]))
    rows = list(reader)
    assert reader.fieldnames == CSV_FIELDS
    assert len(rows) == report["verification"]["containers"]
    assert sum(int(r["items"]) for r in rows) == report["totals"]["items"]
    assert sum(int(r["only_at_target"]) for r in rows) == 1 and sum(int(r["differing"]) for r in rows) == 1
    assert {r["department"] for r in rows} == set(audited.departments)


def test_every_field_of_the_report_schema_is_documented(audited):
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Report schema (`migrator-report/2`)"):]
    section = section[: section.index("\n## ", 5)]
    report = json.loads(audited.outputs["report.titles.json"])
    fields = set(report) | set(report["chain"]) | set(report["filters"]) | set(report["verification"]) | set(report["runs"][0])
    fields |= set(report["departments"][0]["users"][0]["workloads"][0]["containers"][0]) | set(report["problems"][0])
    fields |= set(report["departments"][0]["users"][0]["workloads"][0]["containers"][0]["reconciliation"])
    fields |= set(CSV_FIELDS) | set(report["verification"]["totals"])
    assert len(set(CSV_FIELDS)) == len(CSV_FIELDS), "CSV column names are unique"
    assert f"`{','.join(CSV_FIELDS)}`" in section, "the CSV header is documented as written"
    missing = sorted(f for f in fields if f"`{f}`" not in section)
    assert missing == [], f"README's report schema does not describe {missing}"


def test_table_report_shows_reconciliation_and_chain_head(audited):
    table = audited.outputs["report.table"]
    report = json.loads(audited.outputs["report.json"])
    assert f"Reconciled {report['verification']['containers']} containers (3 disagree)" in table
    assert f"head {report['chain']['head']}" in table and "404" in table


def test_titles_appear_only_when_asked_for(audited):
    names = [n for (n,) in _ledger_rows(audited, "select item.name from item join container on item.container_id = container.id "
                                                  "join scope on container.scope_id = scope.id where scope.workload in ('mail', 'contacts')")]
    titles = {n for n in names if len(n) >= 8}
    assert len(titles) > 100 and set(audited.deleted_titles) <= set(names)
    for output in DEFAULT_OUTPUTS:
        shown = [t for t in titles if t in audited.outputs[output]]
        assert shown == [], f"{output} shows item titles: {shown[:3]}"
    with_titles = json.loads(audited.outputs["report.titles.json"])
    failed = [p["title"] for p in with_titles["problems"] if p["state"] == "failed"]
    assert sorted(failed) == sorted(audited.deleted_titles)


def test_no_secret_reaches_any_output_the_ledger_or_the_logs(audited):
    report = json.loads(audited.outputs["report.json"])
    by_workload = {w["workload"]: w for w in report["by_workload"]}
    assert by_workload["mail"]["verified"] > 0 and by_workload["contacts"]["verified"] > 0, "both secrets were used to move data"
    assert len(audited.logs) > 100, "the run's log records were captured"
    ledger_files = [p for p in audited.work.iterdir() if p.name.startswith("migration.db")]
    assert ledger_files
    places = {name: text.encode() for name, text in audited.outputs.items()}
    places.update({p.name: p.read_bytes() for p in ledger_files})
    places["logs"] = "\n".join(audited.logs).encode()
    places["config"] = audited.config.read_bytes()
    for secret in audited.secrets:
        leaks = [name for name, content in places.items() if secret.encode() in content]
        assert leaks == [], f"a configured secret appears in {leaks}"


class _Balance(HTMLParser):
    VOID: ClassVar[set[str]] = {"meta", "br", "hr", "img", "input", "link", "rect"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag) -> None:
        if tag in self.VOID and (not self.open or self.open[-1] != tag):
            return
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.open[-1] if self.open else '-'}>")
        else:
            self.open.pop()


def test_html_report_is_one_self_contained_well_formed_file(audited):
    page = audited.outputs["report.html"]
    for fetch in ("http:", "https:", "//", "<script", "src=", "url(", "@import", "<link"):
        assert fetch not in page, f"the HTML report refers to {fetch!r}"
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.open == []
    assert parser.tags.count("svg") == 3 and "@media print" in page
    report = json.loads(audited.outputs["report.json"])
    assert report["chain"]["head"] in page
    for department in audited.departments:
        assert f"{department}</text>" in page


def test_chromium_renders_the_html_report_with_its_charts(audited, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(audited.outputs["report.html"])
    image = read_png(screenshot(page, tmp_path / "report.png", 1000, 1300))
    assert (image.width, image.height) == (1000, 1300)
    colours = image.colours()
    assert colours[(255, 255, 255)] < 0.95 * image.width * image.height, "the page is not blank"

    def pixels_of(hex_colour: str) -> int:  # a few levels of slack for colour management
        rgb = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
        return sum(n for colour, n in colours.items() if all(abs(a - b) <= 4 for a, b in zip(colour, rgb, strict=True)))

    for state, hex_colour in STATE_COLOURS.items():
        assert pixels_of(hex_colour) >= 100, f"the {state} colour ({hex_colour}) is missing from the rendered charts"
    assert pixels_of(STATE_COLOURS["verified"]) > 20_000, "the progress bars are drawn"
    pdf = print_to_pdf(page, tmp_path / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2, "the report prints, over several pages"
