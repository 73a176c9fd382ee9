"""Calendars and contacts from the sandbox into a real Radicale through the whole engine: every
series' occurrences, as the CalDAV server's copy expands, equal those Graph reports; reruns add
nothing; a changed event updates its object."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import icalendar
import pytest
import recurring_ical_events
import vobject

from migrator.config import load_config
from migrator.job import Job, Selection
from migrator.sandbox.api_calendar import calendars
from migrator.sandbox.app import Sandbox
from migrator.sandbox.gen_calendar import instances, listed_events, with_time_zone
from migrator.sandbox.tenant import Tenant
from state.ledger import Ledger
from tests.fixtures.radicale import running_radicale
from tests.graph.configs import sandbox_source

WINDOW = (dt.datetime(2025, 6, 1, tzinfo=dt.UTC), dt.datetime(2027, 6, 1, tzinfo=dt.UTC))
PASSWORD = "dav-secret"


@pytest.fixture
def tenant_sandbox(tls_files):
    with Sandbox(Tenant(seed=9, users=2), tls_files) as running:
        yield running


def members_of(sandbox):
    return [u for u in sandbox.tenant.users if u["department"] == sandbox.tenant.users[0]["department"]]


def local(user: dict) -> str:
    return user["userPrincipalName"].split("@")[0]


def dav_config(tmp_path, sandbox, server):
    (tmp_path / "dav-secret").write_text(PASSWORD)
    (tmp_path / "migrator.toml").write_text(f"""
{sandbox_source(tmp_path, sandbox)}
[workloads]
enabled = ["calendar", "contacts"]

[targets.calendar]
kind = "caldav"
url = "{server.url}"
password = {{ file = "dav-secret" }}

[targets.contacts]
kind = "carddav"
url = "{server.url}"
password = {{ file = "dav-secret" }}

[run]
retry_base_seconds = 0.01
retry_max_seconds = 0.05
""")
    return load_config(tmp_path / "migrator.toml")


def run(config):
    job = Job(config)
    try:
        result = asyncio.run(job.run("run", Selection.from_config(config)))
        problems = [(p.workload, p[4], p.last_error) for p in job.ledger.problems()]
    finally:
        job.close()
    return result, problems


def stored_objects(server, user: str) -> list[bytes]:
    """Every object in every collection of the user's home, read back over plain WebDAV."""
    auth = (user, PASSWORD)
    with httpx.Client(base_url=server.url, auth=auth, timeout=30) as client:
        listing = client.request("PROPFIND", f"/{user}/", headers={"Depth": "1"})
        collections = [href for href in _hrefs(listing.text) if href.rstrip("/") != f"/{user}"]
        bodies = []
        for collection in collections:
            inner = client.request("PROPFIND", collection, headers={"Depth": "1"})
            for href in _hrefs(inner.text):
                if href.endswith((".ics", ".vcf")):
                    bodies.append(client.get(href).content)
        return bodies


def _hrefs(xml: str) -> list[str]:
    import re

    return re.findall(r"<(?:\w+:)?href>([^<]+)</(?:\w+:)?href>", xml)


def utc_pairs_from_graph(cal, master) -> set[tuple]:
    """(start, end) instants of each occurrence; all-day ones as (start date, end date)."""
    found = set()
    for occurrence in instances(cal, master, *WINDOW):
        utc = with_time_zone(occurrence, "UTC")
        if occurrence.get("isAllDay"):
            found.add((_parse(utc["start"]["dateTime"]).date(), _parse(utc["end"]["dateTime"]).date()))
        else:
            found.add((_parse(utc["start"]["dateTime"]), _parse(utc["end"]["dateTime"])))
    return found


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text[:19]).replace(tzinfo=dt.UTC)


def utc_pairs_from_caldav(body: bytes) -> set[tuple]:
    calendar = icalendar.Calendar.from_ical(body)
    found = set()
    for event in recurring_ical_events.of(calendar).between(*WINDOW):
        start, end = event["DTSTART"].dt, event["DTEND"].dt
        if isinstance(start, dt.datetime):
            found.add((start.astimezone(dt.UTC), end.astimezone(dt.UTC)))
        else:
            found.add((start, end))
    return found


def test_calendars_and_contacts_move_and_every_occurrence_matches(tmp_path, tenant_sandbox):
    members = members_of(tenant_sandbox)
    with running_radicale(tmp_path / "radicale", {local(u): PASSWORD for u in members}) as server:
        config = dav_config(tmp_path, tenant_sandbox, server)
        first, problems = run(config)
        assert problems == [] and first.exit_code == 0, problems[:3]
        assert first.verify.outcomes["mismatch"] == 0 and first.verify.outcomes["verified"] == first.copy.outcomes["copied"]
        assert [(where, f.detail()) for where, f in first.verify.reconciled.disagreements()] == []
        assert first.verify.outcomes["deep_checked"] >= first.plan.by_workload()["calendar"]["new"], "every event re-read on both sides"
        second, _ = run(config)
        assert second.copy.outcomes["copied"] == 0

        owner = members[0]
        objects = stored_objects(server, local(owner))
        calendars_by_uid = {}
        for body in objects:
            if body.startswith(b"BEGIN:VCALENDAR"):
                calendars_by_uid[icalendar.Calendar.from_ical(body).walk("VEVENT")[0]["UID"]] = body
            else:
                assert vobject.readOne(body.decode()).fn.value  # parses with a second library
        cals = calendars(tenant_sandbox.tenant, owner["id"])
        series = [(cal, m) for cal in cals.data for m in listed_events(cal) if m["type"] == "seriesMaster"]
        assert len(series) >= 8 and any(m.get("isAllDay") for _, m in series)
        zones = set()
        for cal, master in series:
            body = calendars_by_uid[master["iCalUId"]]
            assert utc_pairs_from_caldav(body) == utc_pairs_from_graph(cal, master), master["subject"]
            zones.add(master["originalStartTimeZone"])
        assert {"W. Europe Standard Time", "Pacific Standard Time"} <= zones

        single = next(e for e in listed_events(cals.default) if e["type"] == "singleInstance")
        cals.update(single["id"], subject="Verplaatst: nieuw onderwerp")
        third, _ = run(config)
        assert third.plan.by_workload()["calendar"]["changed"] == 1 and third.copy.outcomes["copied"] == 1
        updated = [b for b in stored_objects(server, local(owner)) if b"Verplaatst: nieuw onderwerp" in b]
        assert len(updated) == 1
        ledger = Ledger(config.ledger_url)
        try:
            assert [p for p in ledger.problems() if p.state != "removed"] == []
        finally:
            ledger.close()
