from __future__ import annotations

import sqlite3

import pytest

from migrator.errors import ConfigError, LedgerLocked
from state.ledger import Ledger
from state.schema import CURRENT_VERSION


def test_a_new_ledger_is_versioned_and_uses_wal(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.close()
    db = sqlite3.connect(tmp_path / "l.db")
    assert db.execute("select max(version) from schema_version").fetchone()[0] == CURRENT_VERSION
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_a_ledger_from_a_newer_release_is_refused(tmp_path):
    Ledger(f"sqlite:///{tmp_path / 'l.db'}").close()
    db = sqlite3.connect(tmp_path / "l.db")
    db.execute("insert into schema_version (version, applied_at) values (?, '2030-01-01 00:00:00')", (CURRENT_VERSION + 1,))
    db.commit()
    with pytest.raises(ConfigError, match=f"schema version {CURRENT_VERSION + 1}"):
        Ledger(f"sqlite:///{tmp_path / 'l.db'}")


def test_a_foreign_database_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "other.db")
    db.execute("create table item (x)")
    db.commit()
    with pytest.raises(ConfigError, match="no schema version"):
        Ledger(f"sqlite:///{tmp_path / 'other.db'}")


def test_two_processes_cannot_run_on_one_ledger(tmp_path):
    first = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    second = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        first.acquire()
        with pytest.raises(LedgerLocked, match="in use by pid"):
            second.acquire()
        first.release()
        second.acquire()
    finally:
        first.close()
        second.close()


def test_claims_of_an_interrupted_run_are_freed_and_the_run_marked(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        ledger.acquire()
        run_id = ledger.start_run("run")
        scope = ledger.upsert_scope("ada@example.org", "Finance", "mail", "ada@example.org")
        container, _ = ledger.upsert_container(scope, "inbox", "Inbox", ("INBOX",))
        ledger.apply_plan(run_id, container, [("m1", "ck1", "message", "hello", 5)], [])
        assert len(ledger.claim(run_id, 5, None, None)) == 1
        assert ledger.claim(run_id, 5, None, None) == []
        ledger.release()  # the process dies: the OS drops its lock, the run row stays "running"
        assert ledger.acquire() == 1
        assert ledger.runs()[0].status == "interrupted"
        assert len(ledger.claim(run_id + 1, 5, None, None)) == 1
    finally:
        ledger.close()


def test_an_invalid_ledger_url_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not a database URL"):
        Ledger("migration.db")


def test_a_version_1_ledger_is_upgraded_in_place_keeping_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger(url)
    scope = ledger.upsert_scope("ada@example.org", "Finance", "mail", "ada@example.org")
    ledger.upsert_container(scope, "inbox", "Inbox", ("INBOX",))
    ledger.close()
    db = sqlite3.connect(tmp_path / "l.db")
    db.execute("alter table container drop column source_path")
    db.execute("alter table container drop column role")
    db.execute("alter table item drop column dest_mtime")
    db.execute("delete from schema_version")
    db.execute("insert into schema_version (version, applied_at) values (1, '2026-11-01 00:00:00')")
    db.commit()
    db.close()

    upgraded = Ledger(url)
    try:
        assert upgraded.find_container("ada@example.org", "mail", "inbox") is not None
        upgraded.upsert_container(scope, "inbox", "Inbox", ("INBOX",), ("Postvak IN",), "inbox")
    finally:
        upgraded.close()
    db = sqlite3.connect(tmp_path / "l.db")
    assert db.execute("select source_path, role from container").fetchone() == ('["Postvak IN"]', "inbox")
    assert [v for (v,) in db.execute("select version from schema_version order by version")] == [1, 2, 3]
    assert "dest_mtime" in {row[1] for row in db.execute("pragma table_info(item)")}


def test_a_new_ledger_file_is_readable_by_its_owner_only(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'private.db'}")
    try:
        ledger.record_event(None, "test", "mode", {})
    finally:
        ledger.close()
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"
