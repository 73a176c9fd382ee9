"""Report privacy on a ledger whose failure reasons quote an item's own name, as servers do; runs
without certificate checks named in every format; and the Chromium the HTML tests render with,
which must fail loudly when it is missing."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console

from migrator.report import build_report, to_csv, to_json
from migrator.report_html import to_html
from migrator.report_table import print_table
from state.ledger import Ledger
from tests.chromium import ChromiumError, screenshot

NAME = "Projecten/Begroting 2027 vertrouwelijk.xlsx"


def _one_file_planned(tmp_path, name: str, size: int, command: str) -> tuple[Ledger, int]:
    """A ledger of one run that planned one file of Anna's OneDrive."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.acquire()
    run_id = ledger.start_run(command)
    scope = ledger.upsert_scope("anna@example.org", "Financiën", "files", "anna")
    container_id, _ = ledger.upsert_container(scope, "drive-1", "OneDrive", ("Files",), ("OneDrive",))
    ledger.apply_plan(run_id, container_id, [("item-1", "v1", "file", name, size)], [])
    return ledger, run_id


def test_reasons_lose_the_items_name_unless_titles_are_asked_for(tmp_path):
    ledger, run_id = _one_file_planned(tmp_path, NAME, 2048, "test")
    (item,) = ledger.claim(run_id, 5, None, None)
    ledger.record_put_intent(item.item_id, "Projecten/Begroting 2027 vertrouwelijk.xlsx")
    ledger.record_failed(run_id, item.item_id, f"the target refused {NAME}: 507 Insufficient Storage")
    hidden = build_report(ledger)
    assert hidden["problems"][0]["reason"] == "the target refused [title]: 507 Insufficient Storage"
    assert "title" not in hidden["problems"][0] and hidden["problems"][0]["container"] == "OneDrive"
    for text in (to_json(hidden), to_csv(hidden), to_html(hidden)):
        assert "Begroting" not in text
    shown = build_report(ledger, include_titles=True)
    assert shown["problems"][0]["title"] == NAME and NAME in shown["problems"][0]["reason"]
    assert "Begroting 2027 vertrouwelijk" in to_html(shown)
    console = Console(file=io.StringIO(), width=400)
    print_table(hidden, console)
    assert "the target refused [title]: 507 Insufficient Storage" in console.file.getvalue(), "reasons are not read as markup"
    ledger.close()


def _every_format(ledger: Ledger) -> tuple[dict, str, list[dict], str]:
    report = build_report(ledger)
    console = Console(file=io.StringIO(), width=400)
    print_table(report, console)
    return json.loads(to_json(report)), console.file.getvalue(), list(csv.DictReader(io.StringIO(to_csv(report)))), to_html(report)


def test_runs_without_certificate_checks_are_named_in_every_format_and_their_absence_is_said(tmp_path):
    ledger, checked = _one_file_planned(tmp_path, "a.txt", 10, "run")
    ledger.finish_run(checked, "completed")

    data, table, rows, html = _every_format(ledger)
    assert data["tls_unverified_runs"] == [] and [r["tls_verified"] for r in data["runs"]] == [True]
    assert "TLS certificates were verified in every run (1 runs)" in table
    assert [r["tls_unverified_runs"] for r in rows] == [""]
    assert '<p class="ok">TLS certificates were verified in every run (1 runs)</p>' in html and ">NO<" not in html

    unchecked = ledger.start_run("sync", tls_verified=False)
    ledger.finish_run(unchecked, "completed")
    again = ledger.start_run("verify")
    ledger.finish_run(again, "completed")
    data, table, rows, html = _every_format(ledger)
    assert data["tls_unverified_runs"] == [unchecked]
    assert {r["run_id"]: r["tls_verified"] for r in data["runs"]} == {checked: True, unchecked: False, again: True}
    assert f"TLS certificates were NOT verified in run {unchecked} (--insecure-skip-tls-verify)" in table
    assert [r["tls_unverified_runs"] for r in rows] == [str(unchecked)]
    assert f'<p class="bad">TLS certificates were NOT verified in run {unchecked} (--insecure-skip-tls-verify)</p>' in html
    assert html.count('<td class="l">NO</td>') == 1 and html.count('<td class="l">yes</td>') == 2
    detail = [json.loads(e.detail) for e in ledger.events_of(["run.started"])]
    assert detail == [{"tls_verified": True}, {"tls_verified": False}, {"tls_verified": True}]
    assert ledger.audit().ok, "the record of it is part of the audit chain"
    ledger.close()


def test_a_missing_chromium_fails_with_the_fix_rather_than_passing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    page = tmp_path / "page.html"
    page.write_text("<p>report</p>")
    with pytest.raises(ChromiumError, match=r"not found: install it with `apt-get install -y chromium`"):
        screenshot(page, tmp_path / "page.png", 200, 100)
