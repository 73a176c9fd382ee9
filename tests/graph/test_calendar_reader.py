"""The calendar reader against the sandbox: containers and full listings equal the tenant's own
calendars, series come with every occurrence and exception, and a second listing shows changes."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

import connectors.graph.calendar as calendar_module
from connectors.graph.calendar import CalendarReader, series_window
from migrator.errors import ItemError
from migrator.model import Cursor, User
from migrator.sandbox.api_calendar import calendars
from migrator.sandbox.gen_calendar import instances, listed_events, occurrence_id
from migrator.sandbox.recurrence import parse_local, to_utc
from tests.graph.conftest import collect, run, session_for

UTC = dt.UTC
CHANGEABLE = ("subject", "start", "end", "body", "attendees", "location")  # what an exception may differ in


def user_of(sandbox, index: int = 0) -> User:
    data = sandbox.tenant.users[index]
    return User(data["userPrincipalName"], data["displayName"], data["department"], data["id"])


async def listing(reader: CalendarReader, user: User) -> dict:
    """Calendar id -> (container, the changes of one full pass)."""
    return {c.source_id: (c, await collect(reader.changes(user, c, None))) async for c in reader.containers(user)}


async def fetch_all(reader: CalendarReader, user: User, wanted: set[str] | None = None) -> list:
    """Every listed event of every calendar, or only those whose ids are `wanted`."""
    items = []
    async for container in reader.containers(user):
        async for ref in reader.changes(user, container, None):
            if wanted is None or ref.source_id in wanted:
                items.append(await reader.fetch(user, container, ref))
    return items


def window(master: dict) -> tuple[dt.datetime, dt.datetime]:
    first, last = series_window(master)
    return dt.datetime.combine(first, dt.time(), UTC), dt.datetime.combine(last, dt.time(), UTC)


def with_session(sandbox, work):
    async def go():
        session = session_for(sandbox)
        try:
            return await work(CalendarReader(session))
        finally:
            await session.close()

    return run(go())


@pytest.mark.parametrize("index,page", [(0, 100), (3, 4)])
def test_full_listing_equals_the_tenant(sandbox, monkeypatch, index, page):
    monkeypatch.setattr(calendar_module, "PAGE", page)  # 4: many pages, each followed by its nextLink
    user = user_of(sandbox, index)
    truth = calendars(sandbox.tenant, user.source_id).data
    found = with_session(sandbox, lambda reader: listing(reader, user))

    assert list(found) == [cal.calendar["id"] for cal in truth]
    for cal in truth:
        container, changes = found[cal.calendar["id"]]
        assert (container.name, container.path, container.workload) == (cal.calendar["name"], (cal.calendar["name"],), "calendar")
        assert container.role == ("default" if cal.calendar["isDefaultCalendar"] else "")
        assert not any(isinstance(change, Cursor) for change in changes)  # no delta: every pass is a full listing
        expected = {e["id"]: e["changeKey"] for e in listed_events(cal)}
        assert len(changes) == len(expected)
        assert {ref.source_id: ref.change_key for ref in changes} == expected
        assert {ref.kind for ref in changes} == {"event"}


def test_series_come_with_every_instance_and_exception(sandbox, monkeypatch):
    monkeypatch.setattr(calendar_module, "INSTANCE_PAGE", 50)  # the longest series needs several pages
    user = user_of(sandbox)
    cals = calendars(sandbox.tenant, user.source_id)
    masters = {e["id"] for cal in cals.data for e in listed_events(cal) if e["type"] == "seriesMaster"}
    items = with_session(sandbox, lambda reader: fetch_all(reader, user, masters))
    assert {item.ref.source_id for item in items} == masters

    exceptions_seen = cancelled_checked = 0
    for item in items:
        cal, master = cals.event(item.ref.source_id)
        got = [i["id"] for i in item.metadata["instances"]]
        assert got == [i["id"] for i in instances(cal, master, *window(master))]
        assert len(got) == len(set(got)) and got
        assert {i["seriesMasterId"] for i in item.metadata["instances"]} == {master["id"]}
        assert {i["start"]["timeZone"] for i in item.metadata["instances"]} == {"UTC"}

        stored = {e["id"]: e for e in cal.events if e.get("seriesMasterId") == master["id"]}
        assert set(stored) <= set(got)  # every exception is there, and in full
        assert {e["id"] for e in item.metadata["exceptions"]} == set(stored)
        for exception in item.metadata["exceptions"]:
            assert {k: exception[k] for k in CHANGEABLE} == {k: stored[exception["id"]][k] for k in CHANGEABLE}
        exceptions_seen += len(stored)
        zone = master["recurrence"]["range"]["recurrenceTimeZone"]
        for local in cal.cancelled.get(master["id"], []):
            assert occurrence_id(master["id"], to_utc(parse_local(local), zone)) not in got
            cancelled_checked += 1

        if master["recurrence"]["range"]["type"] != "noEnd":  # the window misses nothing of a bounded series
            everything = instances(cal, master, dt.datetime(1900, 1, 1, tzinfo=UTC), dt.datetime(2200, 1, 1, tzinfo=UTC))
            assert got == [i["id"] for i in everything]
        if master["recurrence"]["range"]["type"] == "numbered":
            count = master["recurrence"]["range"]["numberOfOccurrences"]
            assert len(got) == count - len(cal.cancelled.get(master["id"], []))
    assert exceptions_seen >= 3 and cancelled_checked >= 3


def test_fetched_events_keep_their_zone_and_their_payload_is_the_metadata(sandbox):
    user = user_of(sandbox)
    items = with_session(sandbox, lambda reader: fetch_all(reader, user))
    assert len(items) == sum(len(listed_events(cal)) for cal in calendars(sandbox.tenant, user.source_id).data)
    zones = set()
    for item in items:
        event = item.metadata["event"]
        assert event["id"] == item.ref.source_id and "@odata.context" not in event
        if not event["isAllDay"]:
            assert event["start"]["timeZone"] == event["originalStartTimeZone"]
            zones.add(event["originalStartTimeZone"])
        if event["type"] == "singleInstance":
            assert item.metadata["instances"] == item.metadata["exceptions"] == []
        data = run(item.payload.read_all())
        assert json.loads(data) == item.metadata and item.payload.size == len(data)
    assert len(zones) >= 3  # the sandbox mixes Amsterdam, London, Pacific and UTC


def test_payload_is_deterministic(sandbox):
    user = user_of(sandbox)
    cals = calendars(sandbox.tenant, user.source_id)
    events = listed_events(cals.default)
    wanted = {next(e["id"] for e in events if e["type"] == "seriesMaster"), next(e["id"] for e in events if e["isAllDay"]),
              next(e["id"] for e in events if e["type"] == "singleInstance" and not e["isAllDay"])}

    async def twice(reader):
        return [[await item.payload.read_all() for item in await fetch_all(reader, user, wanted)] for _ in range(2)]

    first, second = with_session(sandbox, twice)
    assert len(first) == 3 and first == second


def test_master_start_is_local_wall_clock_time(sandbox):
    user = user_of(sandbox)
    cals = calendars(sandbox.tenant, user.source_id)
    master = next(e for e in listed_events(cals.default) if e["type"] == "seriesMaster" and e["originalStartTimeZone"] != "UTC")

    async def work(reader):
        container = await anext(reader.containers(user))
        ref = next(r for r in await collect(reader.changes(user, container, None)) if r.source_id == master["id"])
        return await reader.fetch(user, container, ref)

    item = with_session(sandbox, work)
    assert item.metadata["event"]["start"] == master["start"]
    assert item.metadata["event"]["end"] == master["end"]
    assert item.metadata["calendar"] == cals.default.calendar["name"]


def test_second_listing_shows_added_changed_and_removed_events(sandbox):
    user = user_of(sandbox)
    tenant = sandbox.tenant
    cals = calendars(tenant, user.source_id)
    default_id = cals.default.calendar["id"]
    before = {r.source_id: r.change_key for r in with_session(sandbox, lambda reader: listing(reader, user))[default_id][1]}

    singles = [e for e in listed_events(cals.default) if e["type"] == "singleInstance"]
    master = next(e for e in listed_events(cals.default) if e["type"] == "seriesMaster")
    added = cals.add(random.Random(11), tenant.by_id[user.source_id], tenant.colleagues(tenant.by_id[user.source_id]),
                     dt.datetime(2026, 5, 12, 9, 0))
    changed = cals.update(singles[0]["id"], subject="Verplaatst overleg")
    cals.delete(singles[1]["id"])
    cals.delete(master["id"])

    after = {r.source_id: r.change_key for r in with_session(sandbox, lambda reader: listing(reader, user))[default_id][1]}
    assert set(after) - set(before) == {added["id"]}
    assert set(before) - set(after) == {singles[1]["id"], master["id"]}
    assert after[changed["id"]] == changed["changeKey"] != before[changed["id"]]
    assert {k for k in set(after) & set(before) if after[k] != before[k]} == {changed["id"]}


def test_fetching_a_deleted_event_fails_that_item_alone(sandbox):
    user = user_of(sandbox)
    cals = calendars(sandbox.tenant, user.source_id)

    async def work(reader):
        container = await anext(reader.containers(user))
        refs = await collect(reader.changes(user, container, None))
        cals.delete(refs[0].source_id)
        with pytest.raises(ItemError, match="404"):
            await reader.fetch(user, container, refs[0])
        return refs[1], await reader.fetch(user, container, refs[1])

    other, item = with_session(sandbox, work)
    assert item.metadata["event"]["id"] == other.source_id


def test_series_window_bounds():
    def master(range_: dict, pattern: dict | None = None) -> dict:
        return {"recurrence": {"pattern": pattern or {"type": "daily", "interval": 1}, "range": {"startDate": "2020-03-02", **range_}}}

    first, last = series_window(master({"type": "endDate", "endDate": "2020-06-30"}))
    assert first < dt.date(2020, 3, 1) and last > dt.date(2020, 7, 1)
    _, last = series_window(master({"type": "numbered", "numberOfOccurrences": 10}, {"type": "absoluteYearly", "interval": 2}))
    assert last > dt.date(2040, 3, 2)
    weekly = {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]}
    _, last = series_window(master({"type": "numbered", "numberOfOccurrences": 52}, weekly))
    assert last > dt.date(2021, 3, 1)
    # an open-ended series begun long ago still reaches years past today; the window moves once a year
    _, last = series_window(master({"type": "noEnd"}), today=dt.date(2031, 8, 15))
    assert last > dt.date(2036, 1, 1)
    open_ended = master({"type": "noEnd"})
    assert series_window(open_ended, today=dt.date(2031, 1, 1)) == series_window(open_ended, today=dt.date(2031, 12, 31))
