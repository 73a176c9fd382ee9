"""The ledger on both of its databases: SQLite (one process, a file lock) and PostgreSQL (a server
the tests start; several workers claiming with SKIP LOCKED and leases)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, inspect, text

from migrator.errors import ConfigError, LedgerLocked
from state.ledger import Ledger
from state.schema import CURRENT_VERSION
from tests.fixtures.postgres import ledger_url, postgres  # noqa: F401


def _sql(url: str, *statements: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def _query(url: str, statement: str) -> list[tuple]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        rows = [tuple(r) for r in connection.execute(text(statement))]
    engine.dispose()
    return rows


def test_a_new_ledger_is_versioned(ledger_url):  # noqa: F811
    Ledger(ledger_url).close()
    assert _query(ledger_url, "select max(version) from schema_version") == [(CURRENT_VERSION,)]


def test_a_new_sqlite_ledger_uses_wal(tmp_path):
    Ledger(f"sqlite:///{tmp_path / 'l.db'}").close()
    db = sqlite3.connect(tmp_path / "l.db")
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_a_ledger_from_a_newer_release_is_refused(ledger_url):  # noqa: F811
    Ledger(ledger_url).close()
    _sql(ledger_url, f"insert into schema_version (version, applied_at) values ({CURRENT_VERSION + 1}, '2030-01-01 00:00:00')")
    with pytest.raises(ConfigError, match=f"schema version {CURRENT_VERSION + 1}"):
        Ledger(ledger_url)


def test_a_foreign_database_is_refused(ledger_url):  # noqa: F811
    _sql(ledger_url, "create table item (x integer)")
    with pytest.raises(ConfigError, match="no schema version"):
        Ledger(ledger_url)


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


def _planned_item(ledger: Ledger, run_id: int, count: int = 1) -> int:
    scope = ledger.upsert_scope("ada@example.org", "Finance", "mail", "ada@example.org")
    container, _ = ledger.upsert_container(scope, "inbox", "Inbox", ("INBOX",))
    ledger.apply_plan(run_id, container, [(f"m{n}", "ck", "message", f"hello {n}", 5) for n in range(count)], [])
    return container


def _downgrade(url: str, version: int) -> None:
    """Makes a current ledger look like one written by the release at `version`."""
    dropped = {
        1: ["container.source_path", "container.role", "item.dest_mtime"],
        3: ["item.lease_expires_at", "run.heartbeat_at", "run.items_done"],
        4: ["item.listed"],
    }
    columns = [c for v, cols in dropped.items() if v >= version for c in cols]
    narrowed = ["alter table run alter column status type varchar(20)"] if url.startswith("postgresql") else []
    narrowed += ["drop index ix_item_state_id"] if version <= 3 else []
    _sql(url, *[f"alter table {c.split('.')[0]} drop column {c.split('.')[1]}" for c in columns], *narrowed,
         "delete from schema_version", f"insert into schema_version (version, applied_at) values ({version}, '2026-11-01 00:00:00')")


def test_a_version_1_ledger_is_upgraded_in_place_keeping_its_rows(ledger_url):  # noqa: F811
    ledger = Ledger(ledger_url)
    scope = ledger.upsert_scope("ada@example.org", "Finance", "mail", "ada@example.org")
    ledger.upsert_container(scope, "inbox", "Inbox", ("INBOX",))
    ledger.close()
    _downgrade(ledger_url, 1)

    upgraded = Ledger(ledger_url)
    try:
        assert upgraded.find_container("ada@example.org", "mail", "inbox") is not None
        upgraded.upsert_container(scope, "inbox", "Inbox", ("INBOX",), ("Postvak IN",), "inbox")
    finally:
        upgraded.close()
    assert _query(ledger_url, "select source_path, role from container") == [('["Postvak IN"]', "inbox")]
    assert _query(ledger_url, "select version from schema_version order by version") == [(1,), (2,), (3,), (4,), (5,)]


def test_a_version_3_ledger_gains_leases_and_heartbeats_keeping_its_claims(ledger_url):  # noqa: F811
    ledger = Ledger(ledger_url)
    run_id = ledger.start_run("run")
    _planned_item(ledger, run_id, 2)
    assert len(ledger.claim(run_id, 5, None, None, limit=1)) == 1
    ledger.close()
    _downgrade(ledger_url, 3)

    upgraded = Ledger(ledger_url)
    try:
        engine = create_engine(ledger_url.replace("postgresql://", "postgresql+psycopg://"))
        assert {"lease_expires_at"} <= {c["name"] for c in inspect(engine).get_columns("item")}
        assert {"heartbeat_at", "items_done"} <= {c["name"] for c in inspect(engine).get_columns("run")}
        assert "ix_item_state_id" in {i["name"] for i in inspect(engine).get_indexes("item")}
        engine.dispose()
        assert [w.source_id for w in upgraded.claim(run_id + 1, 5, None, None)] == ["m1"], "the old run's claim still holds"
        upgraded.finish_run(run_id, "completed_with_failures")
        assert upgraded.runs()[0].status == "completed_with_failures"
        assert upgraded.audit().ok
    finally:
        upgraded.close()
    assert _query(ledger_url, "select version from schema_version order by version") == [(3,), (4,), (5,)]


def test_what_the_listing_said_rides_with_the_claim_and_is_dropped_once_copied(ledger_url):  # noqa: F811
    ledger = Ledger(ledger_url)
    try:
        run_id = ledger.start_run("run")
        scope = ledger.upsert_scope("ada@example.org", "Finance", "chat", "ada@example.org")
        container, _ = ledger.upsert_container(scope, "chat-1", "Chat", ("Chats",))
        ledger.apply_plan(run_id, container, [("m1", "v1", "chatMessage", "hi", None, '{"id":"m1"}'), ("m2", "v1", "chatMessage", "ho", None)], [])
        work = ledger.claim(run_id, 5, None, None)
        assert {w.source_id: w.listed for w in work} == {"m1": '{"id":"m1"}', "m2": None}
        ledger.record_copied(run_id, next(w.item_id for w in work if w.source_id == "m1"), "k1", "d1", None, 5, "h", healed=False)
        assert _query(ledger_url, "select source_id, listed from item order by source_id") == [("m1", None), ("m2", None)]
        # A changed message planned again carries its new listing.
        ledger.apply_plan(run_id, container, [("m1", "v2", "chatMessage", "hi!", None, '{"id":"m1","v":2}')], [])
        assert _query(ledger_url, "select listed from item where source_id = 'm1'") == [('{"id":"m1","v":2}',)]
    finally:
        ledger.close()


def test_a_lease_held_is_not_claimed_again_and_an_expired_one_is_taken_over(ledger_url):  # noqa: F811
    ledger = Ledger(ledger_url)
    try:
        first, second = ledger.start_run("worker"), ledger.start_run("worker")
        _planned_item(ledger, first, 3)
        assert len(ledger.claim(first, 5, None, None, limit=2, lease_seconds=60)) == 2
        assert [w.source_id for w in ledger.claim(second, 5, None, None, lease_seconds=60)] == ["m2"]
        assert ledger.claim(second, 5, None, None, lease_seconds=60) == [], "live leases are respected"
        assert ledger.renew_leases(first, -1, items_done=0) == 2  # as if the first worker's last renewal were long ago
        taken = ledger.claim(second, 5, None, None, lease_seconds=60)
        assert [w.source_id for w in taken] == ["m0", "m1"]
        assert ledger.renew_leases(first, 60, items_done=0) == 0, "the dead worker holds nothing any more"
        assert ledger.leased() == 3
        assert ledger.audit().ok
        assert _query(ledger_url, "select kind, subject from event where kind = 'items.lease_taken_over'") == [
            ("items.lease_taken_over", f"2 items of run {first}")
        ]
    finally:
        ledger.close()


def test_the_heartbeat_shows_a_worker_and_a_silent_one_is_marked_interrupted(ledger_url):  # noqa: F811
    ledger = Ledger(ledger_url)
    try:
        run_id = ledger.start_run("worker")
        _planned_item(ledger, run_id)
        ledger.claim(run_id, 5, None, None, lease_seconds=60)
        ledger.renew_leases(run_id, 60, items_done=7)
        [worker] = ledger.workers()
        assert (worker.id, worker.items_done, worker.status) == (run_id, 7, "running")
        ledger.stale_after = 0.0
        assert ledger.acquire() == 1
        assert ledger.workers()[0].status == "interrupted"
        assert ledger.leased() == 0
    finally:
        ledger.close()


def test_ledgers_claiming_at_once_share_the_items_out_without_overlap(postgres):  # noqa: F811
    """PostgreSQL only: on SQLite the file lock admits one process, so claims never race."""
    url = postgres.new_database()
    setup = Ledger(url)
    _planned_item(setup, setup.start_run("plan"), 60)
    workers = [Ledger(url) for _ in range(3)]
    run_ids = [w.start_run("worker") for w in workers]

    def drain(n: int) -> list[int]:
        got = []
        while batch := workers[n].claim(run_ids[n], 5, None, None, limit=4, lease_seconds=60):
            got += [w.item_id for w in batch]
            for w in batch:
                workers[n].record_copied(run_ids[n], w.item_id, f"k{w.item_id}", "d", None, 5, "h", healed=False)
        return got

    try:
        with ThreadPoolExecutor(3) as pool:
            shares = list(pool.map(drain, range(3)))
        claimed = [i for share in shares for i in share]
        assert len(claimed) == len(set(claimed)) == 60
        audit = setup.audit()
        assert audit.ok and audit.events == 1 + 3 + 60, "concurrent appends keep one unbroken chain"
    finally:
        for ledger in [setup, *workers]:
            ledger.close()


def test_a_new_ledger_file_is_readable_by_its_owner_only(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'private.db'}")
    try:
        ledger.record_event(None, "test", "mode", {})
    finally:
        ledger.close()
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"


def test_a_claim_takes_planned_and_retryable_failed_items_together_in_id_order(ledger_url):  # noqa: F811
    ledger = Ledger(ledger_url)
    try:
        run_id = ledger.start_run("run")
        _planned_item(ledger, run_id, 4)
        first = ledger.claim(run_id, 2, None, None, limit=4)
        ledger.record_failed(run_id, first[0].item_id, "broken")  # m0: one attempt of two used
        ledger.record_failed(run_id, first[2].item_id, "broken")
        ledger.record_failed(run_id, first[2].item_id, "broken")  # m2: attempts used up
        ledger.finish_run(run_id, "completed")
        again = ledger.claim(run_id + 1, 2, None, None, limit=2)
        assert [w.source_id for w in again] == ["m0", "m1"]
        assert [w.source_id for w in ledger.claim(run_id + 1, 2, None, None, after_id=again[-1].item_id)] == ["m3"]
    finally:
        ledger.close()
