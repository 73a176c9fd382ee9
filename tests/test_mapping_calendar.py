"""Calendar mapping: golden Graph events to iCalendar bytes, structure checked with two other
parsers, and every sandbox series expanded from the produced object compared with the sandbox's
own instances."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
import vobject

from connectors.graph.calendar import INSTANCE_FIELDS, series_window
from mappings.calendar import (
    body_text,
    calendar_mapping,
    collection_name,
    event_to_ics,
    safe_uid,
)
from mappings.recurrence_rules import rrule
from mappings.timezones import resolve
from migrator.errors import ItemError
from migrator.model import Container, Item, ItemRef, Payload, Skip, Target
from migrator.sandbox.gen_calendar import (
    CalendarData,
    build_calendars,
    instances,
    listed_events,
    make_exception,
    make_series,
    with_time_zone,
)
from migrator.sandbox.people import build_users
from migrator.sandbox.recurrence import parse_local

GOLDEN = Path(__file__).parent / "golden" / "calendar"
CASES = sorted(p for p in GOLDEN.glob("*.json"))
TODAY = date(2026, 1, 1)  # the reader's clock, fixed, for the window of open-ended series
WINDOW = (datetime(2025, 7, 1, tzinfo=UTC), datetime(2027, 7, 1, tzinfo=UTC))
SEEDS = (1, 2, 3)
USERS = build_users(7, 4)
_SLIM = set(INSTANCE_FIELDS.split(","))


# --- what the Graph reader would hand the mapping -------------------------------------------------------


def _at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def reader_metadata(calendar: CalendarData, event: dict) -> dict[str, Any]:
    """The metadata CalendarReader.fetch builds, from the sandbox's data instead of over HTTP."""
    zone = event["originalStartTimeZone"]
    found: list[dict] = []
    if event["type"] == "seriesMaster":
        first, last = series_window(event, today=TODAY)
        found = instances(calendar, event, _at(first), _at(last))
    return {
        "event": with_time_zone(event, zone),
        "instances": [{k: v for k, v in with_time_zone(i, "UTC").items() if k in _SLIM} for i in found],
        "exceptions": [with_time_zone(i, zone) for i in found if i["type"] == "exception"],
        "calendar": calendar.calendar["name"],
    }


def sandbox_calendars(seed: int) -> list[CalendarData]:
    user = USERS[seed]
    return build_calendars(random.Random(seed), user, [u for u in USERS if u is not user][:6])


def _extra_series() -> CalendarData:
    """Series the generated tenant does not hold: clamped month days, a multi-day relative
    pattern, Pacific weekly across both DST changes, an all-day weekly series, a leap day."""
    rng, user, colleagues = random.Random(7), USERS[0], USERS[1:4]
    data = CalendarData({"name": "Extra"}, [])

    def add(start, duration, zone, pattern, range_, all_day=False):
        master = make_series(rng, user, colleagues, start=start, duration=duration, time_zone=zone,
                             pattern=pattern, range_=range_, all_day=all_day)
        data.events.append(master)
        return master

    add(datetime(2025, 8, 31, 9), timedelta(hours=1), "W. Europe Standard Time",
        {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}, {"type": "numbered", "numberOfOccurrences": 14})
    add(datetime(2025, 7, 1, 10), timedelta(minutes=30), "GMT Standard Time",
        {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
         "index": "last"}, {"type": "endDate", "endDate": "2027-03-31"})
    pacific = add(datetime(2025, 10, 20, 8, 30), timedelta(minutes=45), "Pacific Standard Time",
                  {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"},
                  {"type": "endDate", "endDate": "2026-04-27"})
    original = datetime(2025, 11, 3, 8, 30)  # the Monday after clocks went back
    data.events.append(make_exception(rng, pacific, original, start=original + timedelta(hours=2), subject="Verplaatst"))
    data.cancelled[pacific["id"]] = ["2026-03-09T08:30:00.0000000"]  # the Monday after clocks went forward
    weekly_all_day = add(datetime(2025, 9, 5), timedelta(days=1), "W. Europe Standard Time",
                         {"type": "weekly", "interval": 2, "daysOfWeek": ["friday"], "firstDayOfWeek": "monday"},
                         {"type": "endDate", "endDate": "2026-06-26"}, all_day=True)
    data.cancelled[weekly_all_day["id"]] = ["2025-10-31T00:00:00.0000000"]
    add(datetime(2024, 2, 29), timedelta(days=1), "W. Europe Standard Time",
        {"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29}, {"type": "noEnd"}, all_day=True)
    add(datetime(2025, 10, 30, 23, 30), timedelta(hours=1), "Pacific Standard Time",
        {"type": "daily", "interval": 3}, {"type": "noEnd"})
    add(datetime(2025, 7, 1, 7), timedelta(minutes=15), "UTC",
        {"type": "relativeYearly", "interval": 1, "month": 10, "daysOfWeek": ["saturday", "sunday"], "index": "first"},
        {"type": "noEnd"})
    return data


def _all_cases() -> list[tuple[CalendarData, dict]]:
    calendars = [c for seed in SEEDS for c in sandbox_calendars(seed)] + [_extra_series()]
    return [(c, e) for c in calendars for e in listed_events(c)]


ALL = _all_cases()
SERIES = [(c, e) for c, e in ALL if e["type"] == "seriesMaster"]


def _ids(cases):
    return [f"{c.calendar['name']}:{e['subject']}:{n}" for n, (c, e) in enumerate(cases)]


# --- golden files -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_golden_events(case: Path):
    metadata = json.loads(case.read_text("utf-8"))
    expected_file = case.with_suffix(".ics")
    actual = event_to_ics(metadata)
    if os.environ.get("UPDATE_GOLDEN"):
        expected_file.write_bytes(actual)
    assert actual == expected_file.read_bytes()


def test_golden_cases_cover_every_pattern_and_kind():
    kinds = set()
    for case in CASES:
        event = json.loads(case.read_text("utf-8"))["event"]
        kinds.add("allDay" if event["isAllDay"] else event["type"])
        if event.get("recurrence"):
            kinds.add(event["recurrence"]["pattern"]["type"])
    assert kinds >= {"singleInstance", "allDay", "seriesMaster", "daily", "weekly", "absoluteMonthly",
                     "relativeMonthly", "absoluteYearly", "relativeYearly"}


# --- structure, read back by other parsers ------------------------------------------------------------------


@pytest.mark.parametrize(("calendar", "event"), ALL, ids=_ids(ALL))
def test_icalendar_and_vobject_read_the_same_structure(calendar: CalendarData, event: dict):
    metadata = reader_metadata(calendar, event)
    data = event_to_ics(metadata)
    assert data == event_to_ics(copy.deepcopy(metadata))  # deterministic
    assert data.endswith(b"\r\n") and all(len(line) <= 75 for line in data.split(b"\r\n"))

    parsed = icalendar.Calendar.from_ical(data)
    assert str(parsed["PRODID"]) == "-//migrator//EN" and str(parsed["VERSION"]) == "2.0"
    vevents = parsed.walk("VEVENT")
    assert len(vevents) == 1 + len(metadata["exceptions"])
    assert {str(v["UID"]) for v in vevents} == {event["iCalUId"]}
    master = vevents[0]
    assert str(master["SUMMARY"]) == event["subject"]
    assert ("RRULE" in master) == (event["type"] == "seriesMaster")
    assert all("RECURRENCE-ID" in v for v in vevents[1:])
    tzids = {p.params["TZID"] for v in vevents for k in ("DTSTART", "DTEND", "RECURRENCE-ID") if k in v
             for p in [v[k]] if "TZID" in p.params}
    assert tzids == {str(z["TZID"]) for z in parsed.walk("VTIMEZONE")}
    if event["isAllDay"]:
        assert type(master.decoded("DTSTART")) is date and master.decoded("DTEND") > master.decoded("DTSTART")
    assert ("VALARM" in [c.name for c in master.subcomponents]) == event["isReminderOn"]

    read = vobject.readOne(data.decode("utf-8"))
    assert len(read.vevent_list) == len(vevents)
    assert read.vevent.uid.value == event["iCalUId"]
    assert read.vevent.dtstart.value == master.decoded("DTSTART")


# --- occurrences: the produced object against the sandbox's own expansion -----------------------------------


def _sandbox_occurrences(calendar: CalendarData, master: dict) -> set[tuple]:
    found = instances(calendar, master, *WINDOW)
    if master["isAllDay"]:
        return {(parse_local(i["start"]["dateTime"]).date(), parse_local(i["end"]["dateTime"]).date()) for i in found}
    out = set()
    for instance in found:
        utc = with_time_zone(instance, "UTC")
        out.add(tuple(parse_local(utc[k]["dateTime"]).replace(tzinfo=UTC) for k in ("start", "end")))
    return out


def _ics_occurrences(data: bytes, all_day: bool) -> set[tuple]:
    parsed = icalendar.Calendar.from_ical(data)
    found = recurring_ical_events.of(parsed).between(*WINDOW)
    if all_day:
        return {(o.decoded("DTSTART"), o.decoded("DTEND")) for o in found}
    return {(o.decoded("DTSTART").astimezone(UTC), o.decoded("DTEND").astimezone(UTC)) for o in found}


@pytest.mark.parametrize(("calendar", "master"), SERIES, ids=_ids(SERIES))
def test_expanding_the_object_gives_the_sandbox_occurrences(calendar: CalendarData, master: dict):
    data = event_to_ics(reader_metadata(calendar, master))
    expected = _sandbox_occurrences(calendar, master)
    assert expected
    assert _ics_occurrences(data, master["isAllDay"]) == expected


def test_the_series_include_dst_crossings_in_both_zones():
    zones = {m["originalStartTimeZone"] for _, m in SERIES}
    assert {"W. Europe Standard Time", "Pacific Standard Time", "GMT Standard Time"} <= zones


def test_cancelled_occurrences_become_exdates_and_exceptions_keep_their_recurrence_id():
    extra = _extra_series()
    pacific = next(e for e in extra.events if e["type"] == "seriesMaster" and e["originalStartTimeZone"] == "Pacific Standard Time"
                   and e["recurrence"]["pattern"]["type"] == "weekly")
    text = event_to_ics(reader_metadata(extra, pacific)).decode()
    assert "EXDATE;TZID=America/Los_Angeles:20260309T083000\r\n" in text
    assert "RECURRENCE-ID;TZID=America/Los_Angeles:20251103T083000\r\n" in text
    assert "DTSTART;TZID=America/Los_Angeles:20251103T103000\r\n" in text
    # endDate 2026-04-27 is inclusive in Pacific time: its last second, in UTC (PDT, UTC-7).
    assert "UNTIL=20260428T065959Z" in text


def test_an_exception_the_rule_does_not_yield_is_kept_as_an_rdate():
    extra = _extra_series()
    pacific = next(e for e in extra.events if e["type"] == "seriesMaster" and e["originalStartTimeZone"] == "Pacific Standard Time"
                   and e["recurrence"]["pattern"]["type"] == "weekly")
    metadata = reader_metadata(extra, pacific)
    stray = "2025-11-04T16:30:00Z"  # a Tuesday: the weekly Monday rule never yields it
    for listed in metadata["instances"] + metadata["exceptions"]:
        if listed["type"] == "exception":
            listed["originalStart"] = stray
    data = event_to_ics(metadata)
    assert b"RDATE;TZID=America/Los_Angeles:20251104T083000\r\n" in data
    assert b"EXDATE;TZID=America/Los_Angeles:20251103T083000\r\n" in data
    starts = {s for s, _ in _ics_occurrences(data, False)}
    assert datetime(2025, 11, 3, 18, 30, tzinfo=UTC) in starts  # the exception's own start
    assert datetime(2025, 11, 3, 16, 30, tzinfo=UTC) not in starts


# --- time zones ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tzid", ["Europe/Berlin", "America/Los_Angeles", "Europe/London", "Asia/Tokyo", "Australia/Sydney"])
def test_vtimezone_gives_zoneinfo_offsets_within_and_beyond_the_span(tzid: str):
    from mappings.timezones import vtimezone

    text = "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:x", *vtimezone(tzid, 2025, 2026), "END:VCALENDAR"]) + "\r\n"
    component = icalendar.Calendar.from_ical(text).walk("VTIMEZONE")[0]
    tz = component.to_tz(lookup_tzid=False)
    zone = ZoneInfo(tzid)
    moment = datetime(2024, 1, 1, 12, tzinfo=UTC)
    while moment < datetime(2034, 1, 1, tzinfo=UTC):
        assert moment.astimezone(tz).utcoffset() == moment.astimezone(zone).utcoffset(), moment
        moment += timedelta(hours=61)


def test_a_zone_missing_from_the_table_fails_the_item_naming_it():
    event = copy.deepcopy(listed_events(sandbox_calendars(1)[0])[-1])
    for key in ("start", "end"):
        event[key]["timeZone"] = "Customized Time Zone"
    event["isAllDay"] = False
    with pytest.raises(ItemError, match="'Customized Time Zone' is not in the Windows-to-IANA table"):
        event_to_ics({"event": event, "instances": [], "exceptions": [], "calendar": "Agenda"})


def test_utc_names_and_windows_names_resolve():
    assert resolve("UTC").tzid is None and resolve("Coordinated Universal Time").tzid is None
    assert resolve("W. Europe Standard Time").tzid == "Europe/Berlin"
    assert resolve("Pacific Standard Time").tzid == "America/Los_Angeles"
    assert resolve("Tokyo Standard Time").tzid == "Asia/Tokyo"


# --- rules ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "range_", "expected"), [
    ({"type": "daily", "interval": 1}, {"type": "noEnd"}, "FREQ=DAILY"),
    ({"type": "weekly", "interval": 2, "daysOfWeek": ["friday", "monday"], "firstDayOfWeek": "monday"},
     {"type": "numbered", "numberOfOccurrences": 5}, "FREQ=WEEKLY;BYDAY=MO,FR;INTERVAL=2;COUNT=5;WKST=MO"),
    ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15}, {"type": "noEnd"}, "FREQ=MONTHLY;BYMONTHDAY=15"),
    ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 30}, {"type": "noEnd"},
     "FREQ=MONTHLY;BYMONTHDAY=28,29,30;BYSETPOS=-1"),
    ({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["saturday", "sunday"], "index": "second"},
     {"type": "noEnd"}, "FREQ=MONTHLY;BYDAY=SA,SU;BYSETPOS=2"),
    ({"type": "absoluteYearly", "interval": 1, "month": 4, "dayOfMonth": 27}, {"type": "noEnd"},
     "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=27"),
    ({"type": "relativeYearly", "interval": 1, "month": 9, "daysOfWeek": ["tuesday"], "index": "third"},
     {"type": "noEnd"}, "FREQ=YEARLY;BYMONTH=9;BYDAY=TU;BYSETPOS=3"),
    ({"type": "daily", "interval": 1}, {"type": "endDate", "endDate": "2026-03-29"},
     "FREQ=DAILY;UNTIL=20260329T215959Z"),
])
def test_rrule_from_graph(pattern: dict, range_: dict, expected: str):
    rule = rrule({"pattern": pattern, "range": range_}, ZoneInfo("Europe/Berlin"), all_day=False)
    assert rule.value == expected


def test_all_day_until_is_a_date():
    recurrence = {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "endDate", "endDate": "2026-03-29"}}
    assert rrule(recurrence, ZoneInfo("Europe/Berlin"), all_day=True).value == "FREQ=DAILY;UNTIL=20260329"


# --- the mapping ------------------------------------------------------------------------------------------


def test_mapping_target_and_collection_name():
    calendar, event = ALL[0]
    metadata = reader_metadata(calendar, event)
    container = Container("cal-1", "Project A/B: 2026?", "calendar", ("Project A/B: 2026?",))
    mapping = calendar_mapping()
    assert mapping.container_path(container) == ("Project A_B_ 2026_",)
    item = Item(ItemRef(event["id"], event["changeKey"], "event"), Payload.from_bytes(b"{}"), metadata)
    target = mapping.item(item, container)
    assert isinstance(target, Target)
    assert target.dest_key == f"{event['iCalUId']}.ics"
    assert target.metadata == {"uid": event["iCalUId"], "content_type": "text/calendar; charset=utf-8"}
    assert asyncio.run(target.payload.read_all()) == event_to_ics(metadata)
    occurrence = Item(item.ref, item.payload, {**metadata, "event": {**metadata["event"], "type": "occurrence"}})
    assert isinstance(mapping.item(occurrence, container), Skip)


def test_safe_uid_and_collection_names():
    assert safe_uid("040000008200E00074C5B7101A82E008") == "040000008200E00074C5B7101A82E008"
    assert safe_uid("a/b@c") == b"a/b@c".hex()
    assert collection_name("..") == "calendar" and collection_name("Agenda") == "Agenda"


def test_html_body_becomes_tidy_text():
    body = {"contentType": "html", "content": (
        "<html><head><style>p{}</style><title>x</title></head><body><div>Eerste&nbsp;regel &amp; meer</div>"
        "<p>  Tweede   regel<br>derde</p><div><br></div><div><br></div><div>&lt;einde&gt; &#233;</div></body></html>")}
    assert body_text(body) == "Eerste regel & meer\n\nTweede regel\nderde\n\n<einde> é"
    assert body_text({"contentType": "text", "content": "a\r\n\r\n\r\n\r\nb  c"}) == "a\n\nb c"
