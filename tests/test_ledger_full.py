"""The ledger's disk filling up mid-run: the run stops with one clear line (no traceback), the
ledger stays consistent (its audit chain intact, nothing half-recorded), and once there is room
the same command finishes with every item at the target exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from migrator.cli import _ledger_error
from migrator.job import Job, Selection
from state.ledger import Ledger
from tests.helpers import memory_config, sinks_for, small_source

UPN = "ada@example.org"


def test_a_full_ledger_disk_stops_the_run_cleanly_and_the_rerun_finishes(tmp_path):
    config = memory_config(tmp_path, ("mail",))
    source = small_source({(UPN, "mail"): [bytes([n]) * 4000 for n in range(60)]})
    sinks = sinks_for(("mail",))
    ledger = Ledger(config.ledger_url)
    limit = {"pages": None}

    @event.listens_for(ledger.engine, "connect")
    def _cap(connection, _record):  # SQLite's own "database or disk is full", as on a full disk
        if limit["pages"] is not None:
            connection.execute(f"PRAGMA max_page_count = {limit['pages']}")

    with ledger.engine.connect() as probe:
        probe.execute(text("SELECT 1"))
        limit["pages"] = probe.execute(text("PRAGMA page_count")).scalar() + 3
    ledger.engine.dispose()  # every connection from now on carries the cap

    job = Job(config, ledger=ledger, source=source, sinks=sinks)
    with pytest.raises(OperationalError) as failure:
        asyncio.run(job.run("run", Selection.from_config(config)))
    message, hint = _ledger_error(failure.value)
    assert "full" in message and "free space" in hint and "\n" not in message
    job.close()

    checked = Ledger(config.ledger_url)  # uncapped: the disk has room again
    try:
        assert checked.audit().ok, "nothing half-recorded"
    finally:
        checked.close()
    again = Job(config, source=source, sinks=sinks)
    try:
        result = asyncio.run(again.run("run", Selection.from_config(config)))
    finally:
        again.close()
    assert result.exit_code == 0
    stored = Counter(data for *_, data in sinks["mail"].contents(UPN))
    assert len(stored) == 60 and set(stored.values()) == {1}
