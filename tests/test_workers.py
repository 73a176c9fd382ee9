"""Several `migrator worker` processes on one PostgreSQL ledger: every item is copied and verified
exactly once, and a worker killed with SIGKILL mid-run has its leased items finished by the others
once its leases expire."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from sqlalchemy import create_engine, text

from connectors.memory import MemorySink
from migrator.config import RunSettings
from migrator.worker import LeasedCopier
from state.ledger import Ledger
from tests.fixtures.postgres import postgres  # noqa: F401

USERS = 45  # the example tenant's Finance department: 15 people, ~480 items; three workers take some seconds
LEASE_SECONDS = 3
WORKLOADS = ("mail", "calendar", "contacts", "files", "chat")


def _config(tmp_path: Path, url: str) -> Path:
    targets = "".join(f'[targets.{w}]\nkind = "directory"\npath = "target/{w}"\n' for w in WORKLOADS)
    path = tmp_path / "migrator.toml"
    path.write_text(
        f'[source]\nkind = "example"\nseed = 7\nusers = {USERS}\n\n[ledger]\nurl = "{url}"\n\n[batch]\ndepartment = "Finance"\n\n'
        f"[workloads]\nenabled = {list(WORKLOADS)!r}\n\n{targets}\n[run]\nconcurrency = 2\nmax_attempts = 2\n".replace("'", '"')
    )
    return path


def _migrator(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrator", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=60)


def _start_worker(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "migrator", "worker", "-c", str(config), "--lease-seconds", str(LEASE_SECONDS)],
                            cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rows(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text(sql), params)]


def _freeze_one_holding_leases(engine, workers: list[subprocess.Popen], deadline: float) -> tuple[subprocess.Popen, int]:
    """Stops (SIGSTOP) the first worker seen holding leases on items it has not finished; it and its run id.

    Only once every worker has started its run: one starting later on this host would see the stopped
    worker's process gone and free its claims at once, where workers on other hosts wait for the leases."""
    while len(_rows(engine, "select id from run where command = 'worker'")) < len(workers):
        assert time.monotonic() < deadline, "the workers did not all start"
        time.sleep(0.05)
    while time.monotonic() < deadline:
        for worker in workers:
            run = _rows(engine, "select id from run where pid = :pid and command = 'worker'", pid=worker.pid)
            if not run or worker.poll() is not None:
                continue
            os.kill(worker.pid, signal.SIGSTOP)
            held = _rows(engine, "select count(*) from item where lease_owner = :run and state = 'planned'", run=run[0][0])[0][0]
            if held:
                return worker, run[0][0]
            os.kill(worker.pid, signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError("no worker was ever seen holding a lease on unfinished items")


def test_three_workers_share_one_ledger_and_finish_a_killed_workers_items(postgres, tmp_path):  # noqa: F811
    url = postgres.new_database()
    config = _config(tmp_path, url)
    planned = _migrator("plan", "-c", str(config), cwd=tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    started = time.monotonic()
    workers = [_start_worker(config) for _ in range(3)]
    try:
        victim, victim_run = _freeze_one_holding_leases(engine, workers, started + 40)
        stranded = {i for (i,) in _rows(engine, "select id from item where lease_owner = :run and state = 'planned'", run=victim_run)}
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        survivors = [w for w in workers if w is not victim]
        outputs = [w.communicate(timeout=90)[0] for w in survivors]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()


    # The tenant's one broken message fails on every attempt; everything else is verified, each item once.
    states = Counter(dict(_rows(engine, "select state, count(*) from item group by state")))
    assert states["failed"] == 1 and set(states) == {"verified", "failed"}, states
    assert [w.returncode for w in survivors] == [1, 1], outputs  # 1: the broken message failed
    copied_events = Counter(s for (s,) in _rows(engine, "select subject from event where kind = 'item.copied'"))
    assert len(copied_events) == states["verified"] and set(copied_events.values()) == {1}, "each item recorded copied exactly once"
    verified_events = Counter(s for (s,) in _rows(engine, "select subject from event where kind = 'item.verified'"))
    assert len(verified_events) == states["verified"] and set(verified_events.values()) == {1}, "each item verified exactly once"

    taken_over = _rows(engine, "select detail from event where kind = 'items.lease_taken_over' and subject like :s", s=f"% of run {victim_run}")
    assert taken_over, "the killed worker's leases were taken over"
    finished = {i for (i,) in _rows(engine, "select id from item where state in ('verified', 'failed') and lease_owner is null")}
    assert stranded and stranded <= finished, "every item the killed worker held is done (or, the broken one, failed by another)"

    stored = [p for p in (tmp_path / "target").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert len(stored) == states["verified"], "the target holds each item once"

    status = _migrator("status", "-c", str(config), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    worker_lines = [line for line in status.stdout.splitlines() if line.strip().startswith("worker ")]
    assert len(worker_lines) == 3
    assert all(any(f" pid {w.pid}," in line for line in worker_lines) for w in workers)
    assert f"worker {victim_run}:" in status.stdout and "completed_with_failures" in status.stdout
    engine.dispose()


def test_a_worker_on_sqlite_works_alone_and_refuses_an_unplanned_ledger(tmp_path):
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}")
    config.write_text(config.read_text().replace(f"users = {USERS}", "users = 3"))
    unplanned = _migrator("worker", "-c", str(config), cwd=tmp_path)
    assert unplanned.returncode == 2 and "nothing is planned for this selection" in unplanned.stderr, unplanned.stderr
    assert "Traceback" not in unplanned.stderr
    assert _migrator("plan", "-c", str(config), cwd=tmp_path).returncode == 0
    worked = _migrator("worker", "-c", str(config), cwd=tmp_path)
    assert worked.returncode == 1, worked.stdout + worked.stderr  # the tenant's broken message
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert dict(_rows(engine, "select state, count(*) from item group by state")) == {"verified": 32, "failed": 1}
    status = _migrator("status", "-c", str(config), cwd=tmp_path)
    assert "items done" in status.stdout and "completed_with_failures" in status.stdout
    engine.dispose()


def test_one_worker_at_a_time_writes_the_ordered_workloads_and_a_dead_ones_pass_on(postgres):  # noqa: F811
    url = postgres.new_database()
    first, second = Ledger(url), Ledger(url)
    try:
        run_id = second.start_run("worker")
        for workload in ("mail", "chat"):
            scope = second.upsert_scope("ada@example.org", "Finance", workload, "ada@example.org")
            container, _ = second.upsert_container(scope, f"{workload}-1", workload, (workload,))
            second.apply_plan(run_id, container, [(f"{workload}-{n}", "v1", "message", "", 1) for n in range(3)], [])
        chat_sink = MemorySink()
        chat_sink.caps = replace(chat_sink.caps, ordered=True)
        copier = LeasedCopier(second, run_id, None, {"mail": MemorySink(), "chat": chat_sink}, {}, {}, RunSettings())

        assert first.hold_ordered_workloads() and first.hold_ordered_workloads()
        assert not second.hold_ordered_workloads()
        assert {w.workload for w in copier._claim(None, ["mail", "chat"], 0)} == {"mail"}, "chats are the other worker's"
        assert copier._claim(None, ["chat"], 0) == []
        first.release()  # a worker that ends lets go; one that dies loses its session and the lock with it
        assert {w.workload for w in copier._claim(None, ["mail", "chat"], 0)} == {"chat"}
        assert second.hold_ordered_workloads()
    finally:
        first.close()
        second.close()


def test_the_ordered_workloads_pass_on_when_their_worker_is_killed(postgres):  # noqa: F811
    url = postgres.new_database()
    Ledger(url).close()  # the schema exists before the holder starts
    script = f"import time\nfrom state.ledger import Ledger\nassert Ledger({url!r}).hold_ordered_workloads()\nprint('held', flush=True)\ntime.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", script],
                              cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True)
    other = Ledger(url)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not other.hold_ordered_workloads()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        deadline = time.monotonic() + 10
        while not other.hold_ordered_workloads():
            assert time.monotonic() < deadline, "the dead worker's lock was never released"
            time.sleep(0.1)
    finally:
        holder.kill()
        other.close()
