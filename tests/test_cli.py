"""Every command through the real entry point, in a subprocess, as a user would run it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from migrator import __version__
from migrator.report_charts import STATE_COLOURS


def migrator(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrator", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120, env=env)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A workspace where `init` and one `run` have happened."""
    work = tmp_path_factory.mktemp("work")
    assert migrator("init", cwd=work).returncode == 0
    done = migrator("run", cwd=work)
    assert done.returncode == 1, done.stderr  # the example tenant holds one item that cannot move
    return work, done


def test_version():
    out = subprocess.run([sys.executable, "-m", "migrator", "--version"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == f"migrator {__version__}"


def test_init_writes_a_template_and_refuses_to_overwrite(tmp_path):
    assert migrator("init", cwd=tmp_path).returncode == 0
    assert "[source]" in (tmp_path / "migrator.toml").read_text()
    again = migrator("init", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.splitlines() == ["migrator: error: migrator.toml already exists", "  hint: pass --force to overwrite it, or choose another path"]
    assert migrator("init", "--force", cwd=tmp_path).returncode == 0


def test_run_moves_the_department_and_says_what_failed(migrated):
    work, done = migrated
    assert "copied 64" in done.stdout and "failed 1" in done.stdout and "verified 64" in done.stdout
    assert "1 items failed" in done.stdout
    files = [p for p in (work / "target").rglob("*") if p.is_file()]
    assert len(files) == 64


def test_run_again_is_the_resume(migrated):
    work, _ = migrated
    again = migrator("run", cwd=work)
    assert again.returncode == 1
    assert "copied 0, already at target 0, skipped 0, failed 1" in again.stdout
    assert "mail      planned: 0 new, 0 changed, 0 removed at source" in again.stdout


def test_dry_run_prints_what_would_move_and_writes_nothing(tmp_path):
    migrator("init", cwd=tmp_path)
    out = migrator("run", "--dry-run", "--department", "Legal", "-w", "files", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("files     would move: 16 new")
    assert not (tmp_path / "migration.db").exists() or sqlite3.connect(tmp_path / "migration.db").execute("select count(*) from item").fetchone()[0] == 0
    assert not (tmp_path / "target").exists()


def test_plan_records_items_without_copying(tmp_path):
    migrator("init", cwd=tmp_path)
    out = migrator("plan", "-w", "chat", cwd=tmp_path)
    assert out.returncode == 0 and "chat      planned: 8 new" in out.stdout
    status = migrator("status", cwd=tmp_path)
    assert "planned" in status.stdout and "run 1: plan" in status.stdout
    page = migrator("report", "--format", "html", cwd=tmp_path)
    assert page.returncode == 0 and "No verification has been recorded" in page.stdout
    assert f'fill="{STATE_COLOURS["planned"]}"><title>Finance: 8 planned</title>' in page.stdout, "the chart shows what is still planned"


def test_status_shows_the_ledger_and_runs(migrated):
    work, _ = migrated
    out = migrator("status", cwd=work)
    assert out.returncode == 0
    assert "Ledger status" in out.stdout and "anna.devries@example.org" in out.stdout
    assert "the source returned an empty MIME body" in out.stdout
    assert "completed_with_failures" in out.stdout


def test_verify_rereads_the_target_and_finds_a_damaged_file(migrated, tmp_path):
    work, _ = migrated
    ok = migrator("verify", "--audit", cwd=work)
    assert "verified 64, mismatched 0" in ok.stdout and "audit chain intact" in ok.stdout
    victim = next(p for p in (work / "target" / "files").rglob("*") if p.is_file())
    original = victim.read_bytes()
    victim.write_bytes(original + b"tampered")
    bad = migrator("verify", cwd=work)
    assert bad.returncode == 1 and "verified 63, mismatched 1" in bad.stdout
    report = json.loads(migrator("report", "--format", "json", cwd=work).stdout)
    assert any(p["state"] == "mismatch" and p["reason"].startswith("size differs") for p in report["problems"])
    repaired = migrator("run", "--retry-failed", cwd=work)
    assert "copied 1," in repaired.stdout and "verified 64, mismatched 0" in repaired.stdout
    assert victim.read_bytes() == original


def test_report_in_every_format(migrated, tmp_path):
    work, _ = migrated
    data = json.loads(migrator("report", "--format", "json", cwd=work).stdout)
    assert data["schema"] == "migrator-report/2"
    assert data["totals"]["items"] == 65 and data["totals"]["failed"] == 1
    assert data["causes"] == [{"state": "failed", "reason": "the source returned an empty MIME body", "items": 1}]
    assert len(data["chain"]["head"]) == 64 and data["chain"]["intact"]
    rows = list(csv.DictReader(io.StringIO(migrator("report", "--format", "csv", cwd=work).stdout)))
    assert sum(int(r["items"]) for r in rows) == 65 and {r["workload"] for r in rows} == {"mail", "calendar", "contacts", "files", "chat"}
    assert len({r["container_id"] for r in rows}) == len(rows), "one line per container"
    table = migrator("report", "--user", "anna.devries@example.org", "-o", str(tmp_path / "r.txt"), cwd=work)
    assert table.returncode == 0 and "daan" not in (tmp_path / "r.txt").read_text() and "anna.devries" in (tmp_path / "r.txt").read_text()
    bad = migrator("report", "--format", "pdf", cwd=work)
    assert bad.returncode == 2 and "--format 'pdf' is not known" in bad.stderr and "use table, json, csv or html" in bad.stderr


def _copy_ledger(work: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.db"
    src = sqlite3.connect(work / "migration.db")
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    return target


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("update event set detail = '{\"bytes\":1}' where id = 40", "event 40: its content no longer matches its hash"),
        ("update event set subject = 'item 999', hash = 'ff' || substr(hash, 3) where id = 40", "event 40: its content no longer matches its hash"),
        ("delete from event where id = 40", "event 41: a row before it was removed or altered"),
        ("update event set prev_hash = (select hash from event where id = 38) where id = 40", "event 40: its link to the previous row was altered"),
        ("update event set id = -40 where id = 40; update event set id = 40 where id = 41; update event set id = 41 where id = -40",
         "event 40: rows were reordered: it follows event 41, which now comes after it"),
        ("update event set at = '2020-01-01 00:00:00.000000' where id = 40", "event 40: its content no longer matches its hash"),
    ],
)
def test_audit_names_the_first_altered_event(migrated, tmp_path, tamper, problem):
    work, _ = migrated
    ledger = _copy_ledger(work, tmp_path)
    url = f"sqlite:///{ledger}"
    assert migrator("audit", "--ledger", url, cwd=work).returncode == 0
    db = sqlite3.connect(ledger)
    db.executescript(tamper)
    db.commit()
    db.close()
    out = migrator("audit", "--ledger", url, cwd=work)
    assert out.returncode == 1
    assert problem in out.stdout


def test_audit_with_the_reports_head_detects_removed_last_events(migrated, tmp_path):
    work, _ = migrated
    ledger = _copy_ledger(work, tmp_path)
    url = f"sqlite:///{ledger}"
    head = json.loads(migrator("report", "--format", "json", "--ledger", url, cwd=work).stdout)["chain"]["head"]
    db = sqlite3.connect(ledger)
    db.execute("delete from event where id = (select max(id) from event)")
    db.commit()
    db.close()
    assert migrator("audit", "--ledger", url, cwd=work).returncode == 0, "without the head the shortened chain still links"
    out = migrator("audit", "--ledger", url, "--expect-head", head, cwd=work)
    assert out.returncode == 1 and "events were removed from the end" in out.stdout


def test_audit_with_the_reports_head_detects_a_chain_rewritten_after_an_edit(migrated, tmp_path):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from state.chain import event_hash
    from state.ledger import Ledger
    from state.models import Event

    work, _ = migrated
    ledger = _copy_ledger(work, tmp_path)
    url = f"sqlite:///{ledger}"
    head = json.loads(migrator("report", "--format", "json", "--ledger", url, cwd=work).stdout)["chain"]["head"]
    led = Ledger(url)
    with Session(led.engine) as session, session.begin():  # an editor who knows the hash rule redoes every link
        prev = session.get(Event, 39).hash
        for event in session.scalars(select(Event).where(Event.id >= 40).order_by(Event.id)):
            if event.id == 40:
                event.detail = '{"bytes":1}'
            event.prev_hash = prev
            event.hash = prev = event_hash(event)
    led.close()
    assert migrator("audit", "--ledger", url, cwd=work).returncode == 0, "a consistent rewrite links"
    out = migrator("audit", "--ledger", url, "--expect-head", head, cwd=work)
    assert out.returncode == 1 and f"the report names {head[:16]}" in out.stdout


def test_a_config_error_is_one_line_with_a_hint_and_exit_2(tmp_path):
    (tmp_path / "migrator.toml").write_text('[source]\nkind = "example"\n[run]\nconcurency = 3\n')
    out = migrator("run", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["migrator: error: unknown key run.concurency", "  hint: did you mean 'concurrency'?"]
    assert "Traceback" not in out.stderr and out.stdout == ""
    debug = migrator("--debug", "run", cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_an_inline_secret_is_refused_and_never_echoed(tmp_path):
    (tmp_path / "migrator.toml").write_text('[source]\nkind = "graph"\ntenant_id = "t"\nclient_id = "c"\nclient_secret = "hunter2"\n')
    out = migrator("run", cwd=tmp_path)
    assert out.returncode == 2 and "must be a reference" in out.stderr and "hunter2" not in out.stderr + out.stdout


def test_usage_errors_exit_2(tmp_path):
    unknown = migrator("frobnicate", cwd=tmp_path)
    assert unknown.returncode == 2 and "No such command 'frobnicate'" in unknown.stderr and "Traceback" not in unknown.stderr
    bad_option = migrator("report", "--colour", cwd=tmp_path)
    assert bad_option.returncode == 2 and "No such option: --colour" in bad_option.stderr
    missing = migrator("run", cwd=tmp_path)
    assert missing.returncode == 2 and "config file migrator.toml does not exist" in missing.stderr
    no_ledger = migrator("status", "--ledger", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert no_ledger.returncode == 2 and "no ledger at" in no_ledger.stderr
    migrator("init", cwd=tmp_path)
    both = migrator("run", "--department", "Legal", "--users-file", "x.csv", cwd=tmp_path)
    assert both.returncode == 2 and "--department and --users-file are both given" in both.stderr
    workload = migrator("run", "-w", "wiki", cwd=tmp_path)
    assert workload.returncode == 2 and "--workload wiki is not enabled" in workload.stderr
    nobody = migrator("run", "--department", "Marketing", cwd=tmp_path)
    assert nobody.returncode == 2 and "department 'Marketing' has no users" in nobody.stderr


def test_verify_can_reread_a_deterministic_sample(migrated):
    work, _ = migrated
    first = migrator("verify", "--sample", "0.25", cwd=work)
    second = migrator("verify", "--sample", "0.25", cwd=work)
    assert first.returncode == second.returncode == 1 and first.stdout == second.stdout  # 1: the one failed item
    verified = int(first.stdout.split("verified ")[1].split(",")[0])
    skipped = int(first.stdout.split("not in the sample ")[1].split()[0])
    assert verified + skipped == 64 and 5 < verified < 30
    assert migrator("verify", "--sample", "2", cwd=work).returncode == 2


def test_sync_and_cutover_of_a_department(tmp_path):
    assert migrator("init", cwd=tmp_path).returncode == 0
    assert migrator("run", cwd=tmp_path).returncode == 1
    synced = migrator("--insecure-skip-tls-verify", "sync", "--propagate-deletes", cwd=tmp_path)
    assert synced.returncode == 1 and "pass took" in synced.stdout and "deleted at target 0" in synced.stdout
    assert synced.stderr.startswith("migrator: warning: --insecure-skip-tls-verify: server certificates are NOT verified")
    department = next(line.split('"')[1] for line in (tmp_path / "migrator.toml").read_text().splitlines() if line.startswith("department ="))
    done = migrator("cutover", "--department", department, "-o", "cutover.json", cwd=tmp_path)
    assert done.returncode == 1 and "not ready" in done.stdout, done.stdout + done.stderr
    summary = json.loads((tmp_path / "cutover.json").read_text())
    assert summary["schema"] == "migrator-cutover/1" and summary["department"] == department
    assert summary["still_not_moved"] and summary["still_not_moved"][0]["state"] == "failed"
    assert summary["final_pass"]["found"]["mail"]["new"] == 0
    assert summary["tls_unverified_runs"] == [2], "the sync pass ran without certificate checks; the run and the cutover did not"
    db = sqlite3.connect(tmp_path / "migration.db")
    recorded = [json.loads(d) for (d,) in db.execute("select detail from event where kind = 'cutover.summary'")]
    assert recorded == [{"sha256": summary["sha256"], "ready": False}]
    body = {k: v for k, v in summary.items() if k not in ("sha256", "chain_head")}
    assert hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest() == summary["sha256"], "an auditor can recompute it"
    assert migrator("cutover", cwd=tmp_path).returncode == 2
