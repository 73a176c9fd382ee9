"""The occurrence check verify runs on stored series: equal when the stored object expands to
Graph's occurrences, a clear problem when it does not."""

from __future__ import annotations

import datetime as dt
import random

from mappings.calendar import event_to_ics
from mappings.calendar_check import occurrence_problem
from migrator.model import Item, ItemRef, Payload
from migrator.sandbox.gen_calendar import (
    build_calendars,
    instances,
    listed_events,
    with_time_zone,
)
from migrator.sandbox.people import build_users

WINDOW = (dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2028, 1, 1, tzinfo=dt.UTC))


def series_items():
    users = build_users(7, 4)
    for cal in build_calendars(random.Random(3), users[0], users[1:4]):
        for master in listed_events(cal):
            if master["type"] != "seriesMaster":
                continue
            found = [with_time_zone(o, "UTC") for o in instances(cal, master, *WINDOW)]
            exceptions = [e for e in cal.events if e.get("seriesMasterId") == master["id"]]
            metadata = {"event": master, "instances": found, "exceptions": exceptions, "calendar": cal.calendar["name"]}
            yield Item(ItemRef(master["id"], master["changeKey"], "event"), Payload.from_bytes(b""), metadata)


def test_every_stored_series_matches_graphs_occurrences():
    items = list(series_items())
    assert len(items) >= 8
    for item in items:
        assert occurrence_problem(event_to_ics(item.metadata), item) == "", item.metadata["event"]["subject"]


def test_a_series_that_lost_its_cancellations_is_reported():
    item = next(i for i in series_items() if b"EXDATE" in event_to_ics(i.metadata))
    stored = b"\r\n".join(line for line in event_to_ics(item.metadata).split(b"\r\n") if not line.startswith(b"EXDATE"))
    problem = occurrence_problem(stored, item)
    assert problem.startswith("occurrences differ: 0 of Graph's missing at the target,") and "only at the target" in problem
