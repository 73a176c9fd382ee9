"""SIGKILL at random points of a mixed run: `migrator run` over the sandbox (mail into a Maildir,
calendars and contacts into Radicale, files into the Nextcloud stand-in) is killed again and again,
each time at a random moment, and rerun; when a run finally completes, every target holds exactly
the source: nothing lost, nothing twice."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from connectors.maildir import read_source_id
from migrator.config import load_config
from migrator.sandbox.app import Sandbox
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.sandbox.tenant import Tenant
from tests.fixtures.radicale import running_radicale
from tests.graph.configs import dav_and_files_targets, sandbox_source
from tests.graph.test_sync import (
    cloud_files,
    dav_keys,
    drive_files,
    ledger_rows,
    source_mail,
    sources_at,
)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "app-password"
KILLS = int(os.environ.get("MIGRATOR_FAULT_KILLS", "20"))


def maildir_ids(root: Path, owner: str) -> Counter:
    """Every stored message's source id, counted: a duplicate shows as 2."""
    return Counter(read_source_id(p) for p in (root / owner).rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


@pytest.mark.fault
def test_killed_at_random_points_a_rerun_ends_with_exactly_the_source(tmp_path, tls_files):
    rng = random.Random(20261204)
    with Sandbox(Tenant(seed=31, users=2), tls_files) as sandbox:
        user = sandbox.tenant.users[0]
        upn, login = user["userPrincipalName"], user["userPrincipalName"].split("@")[0]
        with running_radicale(tmp_path / "radicale", {login: PASSWORD}) as dav, NextcloudServer(tmp_path / "nc", users={login: PASSWORD}) as nc:
            (tmp_path / "password").write_text(PASSWORD)
            cloud = nc.url
            (tmp_path / "migrator.toml").write_text(f"""
{sandbox_source(tmp_path, sandbox, [upn])}
[workloads]
enabled = ["mail", "calendar", "contacts", "files"]

[targets.mail]
kind = "maildir"
path = "maildir"

{dav_and_files_targets(dav.url, cloud)}
[run]
concurrency = 8
retry_base_seconds = 0.01
retry_max_seconds = 0.05
""")
            command = [sys.executable, "-m", "migrator", "run", "--config", str(tmp_path / "migrator.toml")]
            killed = ended = 0
            while killed < KILLS:
                process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                if _killed_after_events(process, tmp_path / "migration.db", rng.randint(1, 12)):
                    killed += 1
                else:
                    ended += 1  # the run finished first: the next kill lands in a later stage or run
                    assert ended < 40, "runs keep finishing before their kill point"
            final = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
            assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
            config = load_config(tmp_path / "migrator.toml")

            stored = maildir_ids(tmp_path / "maildir", upn)
            wanted = [m for ids in source_mail(sandbox, user, config).values() for m in ids]
            assert [k for k, n in stored.items() if n > 1] == [], "a message stored twice"
            assert set(stored) == set(wanted), "a message lost"
            assert cloud_files(tmp_path / "nc", login) == drive_files(sandbox, user)
            keys = dav_keys(dav, login)
            assert len(keys) == len(sources_at(config, "calendar", keys) | sources_at(config, "contacts", keys))
            live = {i for w in ("calendar", "contacts") for _, _, i, _, state in ledger_rows(config, w) if state != "skipped"}
            assert sources_at(config, "calendar", keys) | sources_at(config, "contacts", keys) == live
            print(f"killed {killed} times; mail {len(stored)}, dav objects {len(keys)}, files {len(drive_files(sandbox, user))}")


def _events(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM event").fetchone()[0]
    except sqlite3.Error:
        return 0  # created but not yet initialised


def _killed_after_events(process: subprocess.Popen, ledger: Path, events: int) -> bool:
    """SIGKILLs the run once it has appended `events` audit events (each a committed step: a planned
    container, a copied item, a verification batch); False when it ended first."""
    start = _events(ledger)
    while process.poll() is None:
        if _events(ledger) >= start + events:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.02)
    return False
