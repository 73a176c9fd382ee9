from __future__ import annotations

import json
import random
import re
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from msgraph.generated.models.calendar import Calendar
from msgraph.generated.models.event import Event

from migrator.sandbox.gen_calendar import (
    ZONES,
    CalendarData,
    bounds,
    build_calendars,
    calendar_view,
    cancel_occurrence,
    find_event,
    instances,
    listed_events,
    make_event,
    make_series,
    occurrence_id,
    parse_occurrence_id,
    with_time_zone,
)
from migrator.sandbox.names import DOMAIN, guid, local_part, person
from migrator.sandbox.recurrence import parse_local, to_utc, zone
from tests.sandbox.graph_models import assert_parses

EVERYTHING = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
LOCAL_FORM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}$")
UTC_FORM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{7})?Z$")


def _user(rng: random.Random) -> dict:
    given, family = person(rng)
    address = f"{local_part(given, family)}@{DOMAIN}"
    return {"id": guid(rng), "displayName": f"{given} {family}", "userPrincipalName": address, "mail": address}


def _people(seed: int) -> tuple[dict, list[dict]]:
    rng = random.Random(seed)
    return _user(rng), [_user(rng) for _ in range(6)]


def _tenant(seed: int) -> list[CalendarData]:
    user, colleagues = _people(seed)
    return build_calendars(random.Random(seed), user, colleagues)


@pytest.fixture(scope="module")
def calendars() -> list[CalendarData]:
    return _tenant(7)


def _masters(data: CalendarData) -> list[dict]:
    return [e for e in data.events if e["type"] == "seriesMaster"]


def _all_masters(calendars: list[CalendarData]) -> list[tuple[CalendarData, dict]]:
    return [(data, master) for data in calendars for master in _masters(data)]


def _series(pattern: dict, range_: dict, start: datetime, zone: str = "W. Europe Standard Time",
            duration: timedelta = timedelta(hours=1)) -> tuple[CalendarData, dict]:
    user, colleagues = _people(3)
    master = make_series(random.Random(5), user, colleagues, start=start, duration=duration, time_zone=zone,
                         pattern=pattern, range_=range_)
    return CalendarData({"id": "cal"}, [master], {}), master


def _local_starts(found: list[dict]) -> list[datetime]:
    return [parse_local(e["start"]["dateTime"]) for e in found]


def _dates(found: list[dict]) -> list[date]:
    return [d.date() for d in _local_starts(found)]


# --- Graph shapes ----------------------------------------------------------------------------------


def _check_shape(event: dict) -> None:
    for key in ("start", "end"):
        assert LOCAL_FORM.match(event[key]["dateTime"]), event[key]
        assert event[key]["timeZone"] in ZONES
    assert event["originalStartTimeZone"] == event["start"]["timeZone"]
    for key in ("createdDateTime", "lastModifiedDateTime"):
        assert UTC_FORM.match(event[key]), event[key]
    assert event["lastModifiedDateTime"] >= event["createdDateTime"]
    assert event["id"].startswith("AAMkA") and re.fullmatch(r"[A-Za-z0-9_=-]+", event["id"])
    assert event["@odata.etag"] == f'W/"{event["changeKey"]}"'
    for attendee in event["attendees"]:
        assert UTC_FORM.match(attendee["status"]["time"])
    if event["isAllDay"]:
        start, end = (parse_local(event[k]["dateTime"]) for k in ("start", "end"))
        assert start.time() == end.time() == datetime.min.time() and end > start
    if event["type"] in ("occurrence", "exception"):
        assert UTC_FORM.match(event["originalStart"]) and event["seriesMasterId"] and event["recurrence"] is None
    if event["isOnlineMeeting"]:
        assert event["onlineMeetingProvider"] == "teamsForBusiness"
        assert event["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")


def test_calendars_and_stored_events_parse_with_the_sdk_models(calendars):
    assert [c.calendar["isDefaultCalendar"] for c in calendars] == [True, False]
    assert calendars[0].calendar["name"] == "Agenda"
    for data in calendars:
        assert_parses(Calendar, data.calendar)
        for event in data.events:
            assert_parses(Event, event)
            _check_shape(event)
    assert 25 <= sum(len(c.events) for c in calendars) <= 35


def test_instances_and_calendar_view_parse_with_the_sdk_models(calendars):
    for data, master in _all_masters(calendars):
        found = instances(data, master, datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
        for event in found[:6]:
            assert_parses(Event, event)
            _check_shape(event)
    for data in calendars:
        for event in calendar_view(data, datetime(2026, 3, 20), datetime(2026, 4, 20)):
            assert_parses(Event, event)
            _check_shape(event)


def test_every_pattern_range_index_zone_and_property_value_occurs():
    datas = [d for seed in (7, 8, 9) for d in _tenant(seed)]
    events = [e for d in datas for e in d.events]
    patterns = {e["recurrence"]["pattern"]["type"] for e in events if e["recurrence"]}
    ranges = {e["recurrence"]["range"]["type"] for e in events if e["recurrence"]}
    assert patterns == {"daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"}
    assert ranges == {"endDate", "noEnd", "numbered"}
    indexes = {e["recurrence"]["pattern"]["index"] for e in events if e["recurrence"]
               and e["recurrence"]["pattern"]["type"].startswith("relative")}
    assert {"last", "third"} <= indexes and len(indexes) >= 3
    assert {e["start"]["timeZone"] for e in events} == set(ZONES)
    assert {e["type"] for e in events} == {"singleInstance", "seriesMaster", "exception"}
    assert {e["sensitivity"] for e in events} == {"normal", "personal", "private", "confidential"}
    assert {e["showAs"] for e in events} == {"free", "tentative", "busy", "oof", "workingElsewhere"}
    assert {a["type"] for e in events for a in e["attendees"]} == {"required", "optional", "resource"}
    responses = {a["status"]["response"] for e in events for a in e["attendees"]} | {
        e["responseStatus"]["response"] for e in events}
    assert responses == {"none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded"}
    assert any(e["isAllDay"] and e["recurrence"] for e in events)
    assert any(e["isAllDay"] and bounds(e)[1] - bounds(e)[0] > timedelta(days=3) for e in events)
    assert all(2025 <= int(e["start"]["dateTime"][:4]) <= 2027 for e in events)
    assert all(len(d.cancelled) >= 1 for d in datas)


# --- expansion by hand ----------------------------------------------------------------------------


def test_daily_interval_with_end_date_is_inclusive():
    data, master = _series({"type": "daily", "interval": 3}, {"type": "endDate", "endDate": "2026-05-10"},
                           datetime(2026, 5, 1, 9, 0))
    assert _dates(instances(data, master, *EVERYTHING)) == [date(2026, 5, d) for d in (1, 4, 7, 10)]
    assert master["recurrence"]["range"] == {"type": "endDate", "startDate": "2026-05-01", "endDate": "2026-05-10",
                                             "recurrenceTimeZone": "W. Europe Standard Time", "numberOfOccurrences": 0}


@pytest.mark.parametrize(("first_day", "expected"), [
    # weeks Sun..Sat: the week of Sun 1 March is "on" but its days precede the start; then 15/16, 29/30 March
    ("sunday", [date(2026, 3, 15), date(2026, 3, 16), date(2026, 3, 29), date(2026, 3, 30)]),
    # weeks Mon..Sun: the week of Mon 2 March is "on" and its Sunday 8 March follows the start
    ("monday", [date(2026, 3, 8), date(2026, 3, 16), date(2026, 3, 22), date(2026, 3, 30)]),
])
def test_weekly_every_other_week_depends_on_the_first_day_of_the_week(first_day, expected):
    pattern = {"type": "weekly", "interval": 2, "daysOfWeek": ["sunday", "monday"], "firstDayOfWeek": first_day}
    data, master = _series(pattern, {"type": "numbered", "numberOfOccurrences": 4}, datetime(2026, 3, 4, 10, 0))
    assert _dates(instances(data, master, *EVERYTHING)) == expected
    assert master["start"]["dateTime"] == expected[0].isoformat() + "T10:00:00.0000000"


def test_absolute_monthly_counts_months_from_the_start_and_skips_an_earlier_day():
    pattern = {"type": "absoluteMonthly", "interval": 3, "dayOfMonth": 15}
    data, master = _series(pattern, {"type": "numbered", "numberOfOccurrences": 3}, datetime(2026, 1, 20, 8, 0))
    assert _dates(instances(data, master, *EVERYTHING)) == [date(2026, 4, 15), date(2026, 7, 15), date(2026, 10, 15)]


def test_absolute_monthly_on_the_31st_falls_on_the_last_day_of_shorter_months():
    pattern = {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}
    data, master = _series(pattern, {"type": "numbered", "numberOfOccurrences": 4}, datetime(2026, 1, 1, 8, 0))
    assert _dates(instances(data, master, *EVERYTHING)) == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31),
                                                            date(2026, 4, 30)]


def test_relative_monthly_last_friday():
    pattern = {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"}
    data, master = _series(pattern, {"type": "numbered", "numberOfOccurrences": 4}, datetime(2026, 1, 1, 16, 0))
    assert _dates(instances(data, master, *EVERYTHING)) == [date(2026, 1, 30), date(2026, 2, 27), date(2026, 3, 27),
                                                            date(2026, 4, 24)]


def test_relative_monthly_first_weekday_every_other_month():
    weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday"]
    pattern = {"type": "relativeMonthly", "interval": 2, "daysOfWeek": weekdays, "index": "first"}
    data, master = _series(pattern, {"type": "endDate", "endDate": "2026-08-03"}, datetime(2026, 2, 1, 9, 0))
    # 1 Feb and 1 Aug 2026 are weekend days, so the first weekday is the Monday after
    assert _dates(instances(data, master, *EVERYTHING)) == [date(2026, 2, 2), date(2026, 4, 1), date(2026, 6, 1),
                                                            date(2026, 8, 3)]


def test_absolute_yearly_every_other_year():
    pattern = {"type": "absoluteYearly", "interval": 2, "month": 11, "dayOfMonth": 11}
    data, master = _series(pattern, {"type": "numbered", "numberOfOccurrences": 2}, datetime(2025, 12, 1, 11, 0))
    assert _dates(instances(data, master, datetime(2025, 1, 1), datetime(2031, 1, 1))) == [date(2027, 11, 11),
                                                                                          date(2029, 11, 11)]


def test_relative_yearly_third_tuesday_of_september():
    pattern = {"type": "relativeYearly", "interval": 1, "month": 9, "daysOfWeek": ["tuesday"], "index": "third"}
    data, master = _series(pattern, {"type": "numbered", "numberOfOccurrences": 3}, datetime(2025, 1, 1, 15, 0))
    assert _dates(instances(data, master, *EVERYTHING)) == [date(2025, 9, 16), date(2026, 9, 15), date(2027, 9, 21)]


def test_a_weekly_series_keeps_its_wall_clock_time_across_daylight_saving():
    pattern = {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"}
    data, master = _series(pattern, {"type": "numbered", "numberOfOccurrences": 3}, datetime(2026, 3, 16, 9, 0))
    found = instances(data, master, *EVERYTHING)
    assert {e["start"]["dateTime"][11:] for e in found} == {"09:00:00.0000000"}
    assert [e["originalStart"] for e in found] == ["2026-03-16T08:00:00Z", "2026-03-23T08:00:00Z", "2026-03-30T07:00:00Z"]
    assert [with_time_zone(e)["start"]["dateTime"] for e in found][-1] == "2026-03-30T07:00:00.0000000"


def test_a_pacific_series_moves_in_utc_when_the_us_changes_clocks():
    pattern = {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 5}
    data, master = _series(pattern, {"type": "noEnd"}, datetime(2026, 2, 1, 10, 0), zone="Pacific Standard Time")
    found = instances(data, master, datetime(2026, 2, 1), datetime(2026, 4, 1))
    assert [e["originalStart"] for e in found] == ["2026-02-05T18:00:00Z", "2026-03-05T18:00:00Z"]
    found = instances(data, master, datetime(2026, 3, 10), datetime(2026, 4, 10))
    assert [e["originalStart"] for e in found] == ["2026-04-05T17:00:00Z"]


# --- the generated series ---------------------------------------------------------------------------


def test_numbered_series_yield_their_count_less_the_cancelled_ones(calendars):
    numbered = [(d, m) for d, m in _all_masters(calendars) if m["recurrence"]["range"]["type"] == "numbered"]
    assert numbered
    for data, master in numbered:
        found = instances(data, master, *EVERYTHING)
        count = master["recurrence"]["range"]["numberOfOccurrences"]
        assert len(found) == count - len(data.cancelled.get(master["id"], ()))


def test_end_date_series_stop_on_their_end_date(calendars):
    ended = [(d, m) for d, m in _all_masters(calendars) if m["recurrence"]["range"]["type"] == "endDate"]
    assert ended
    for data, master in ended:
        last = date.fromisoformat(master["recurrence"]["range"]["endDate"])
        found = instances(data, master, *EVERYTHING)
        originals = [datetime.fromisoformat(e["originalStart"]) for e in found]
        final = max(o.astimezone(zone(master["start"]["timeZone"])).date() for o in originals)
        assert final <= last and (last - final).days < 31


def test_exceptions_replace_their_occurrence(calendars):
    exceptions = [(d, e) for d in calendars for e in d.events if e["type"] == "exception"]
    assert len(exceptions) >= 3
    for data, exception in exceptions:
        master = next(e for e in data.events if e["id"] == exception["seriesMasterId"])
        found = instances(data, master, *EVERYTHING)
        same = [e for e in found if e["originalStart"] == exception["originalStart"]]
        assert [e["id"] for e in same] == [exception["id"]] and same[0]["type"] == "exception"
        original = datetime.fromisoformat(exception["originalStart"])
        assert exception["id"] == occurrence_id(master["id"], original)
        assert exception["start"] != _occurrence_start(master, original) or exception["subject"] != master["subject"]
        assert exception["iCalUId"] == master["iCalUId"]


def _occurrence_start(master: dict, original: datetime) -> dict:
    zone_name = master["start"]["timeZone"]
    return {"dateTime": original.astimezone(zone(zone_name)).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone_name}


def test_cancelled_occurrences_vanish(calendars):
    for data in calendars:
        for master_id, starts in data.cancelled.items():
            master = next(e for e in data.events if e["id"] == master_id)
            found = instances(data, master, *EVERYTHING)
            assert not {e["start"]["dateTime"] for e in found if e["type"] == "occurrence"} & set(starts)
            data.cancelled[master_id] = []
            try:
                restored = instances(data, master, *EVERYTHING)
            finally:
                data.cancelled[master_id] = starts
            assert len(restored) == len(found) + len(starts)


def test_generated_series_cross_daylight_saving_at_constant_local_time(calendars):
    crossings = 0
    for data, master in _all_masters(calendars):
        if master["isAllDay"]:
            continue
        found = [e for e in instances(data, master, *EVERYTHING) if e["type"] == "occurrence"]
        times = {e["start"]["dateTime"][11:] for e in found}
        assert len(times) == 1, master["subject"]
        crossings += len({bounds(e)[0].astimezone(ZoneInfo("UTC")).time() for e in found}) > 1
    assert crossings >= 3


def test_occurrences_carry_the_master_properties_and_stable_ids(calendars):
    data, master = _all_masters(calendars)[0]
    first = instances(data, master, *EVERYTHING)
    again = instances(data, master, *EVERYTHING)
    assert [e["id"] for e in first] == [e["id"] for e in again] and len({e["id"] for e in first}) == len(first)
    for event in first[:10]:
        assert event["seriesMasterId"] == master["id"] and event["iCalUId"] == master["iCalUId"]
        if event["type"] == "occurrence":
            assert event["subject"] == master["subject"] and event["attendees"] == master["attendees"]
            master_id, original = parse_occurrence_id(event["id"])
            assert master_id == master["id"] and event["originalStart"] == original.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert find_event(data, event["id"]) == event
    assert parse_occurrence_id(master["id"]) is None
    cancelled = data.cancelled[master["id"]][0]
    gone = occurrence_id(master["id"], to_utc(parse_local(cancelled), master["start"]["timeZone"]))
    assert find_event(data, gone) is None


def test_cancelling_an_occurrence_or_an_exception_removes_it_from_the_series():
    data = _tenant(13)[0]
    master = next(e for e in data.events if e["type"] == "seriesMaster" and any(
        x.get("seriesMasterId") == e["id"] for x in data.events))
    before = instances(data, master, *EVERYTHING)
    occurrence = next(e for e in before if e["type"] == "occurrence")
    exception = next(e for e in before if e["type"] == "exception")
    assert cancel_occurrence(data, occurrence["id"]) and cancel_occurrence(data, exception["id"])
    assert not cancel_occurrence(data, occurrence["id"]) and not cancel_occurrence(data, master["id"])
    after = instances(data, master, *EVERYTHING)
    assert [e["id"] for e in after] == [e["id"] for e in before if e["id"] not in (occurrence["id"], exception["id"])]
    assert exception["id"] not in {e["id"] for e in data.events}
    assert occurrence["start"]["dateTime"] in data.cancelled[master["id"]]


def test_calendar_view_holds_singles_occurrences_and_exceptions_in_order(calendars):
    data = calendars[0]
    start, end = datetime(2025, 6, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    view = calendar_view(data, start, end)
    assert {e["type"] for e in view} == {"singleInstance", "occurrence", "exception"}
    starts = [bounds(e)[0] for e in view]
    assert starts == sorted(starts)
    expected = sum(len(instances(data, m, start, end)) for m in _masters(data))
    assert sum(e["type"] != "singleInstance" for e in view) == expected
    assert all(bounds(e)[0] < end and bounds(e)[1] > start for e in view)
    single = next(e for e in data.events if e["type"] == "singleInstance" and not e["isAllDay"])
    first, last = bounds(single)
    assert single["id"] in {e["id"] for e in calendar_view(data, last - timedelta(minutes=1), last)}
    assert single["id"] not in {e["id"] for e in calendar_view(data, last, last + timedelta(hours=1))}
    assert single["id"] not in {e["id"] for e in calendar_view(data, first - timedelta(hours=1), first)}
    assert {e["type"] for e in listed_events(data)} == {"singleInstance", "seriesMaster"}


def test_with_time_zone_converts_timed_events_and_keeps_all_day_dates(calendars):
    events = calendars[0].events
    timed = next(e for e in events if not e["isAllDay"] and e["start"]["timeZone"] == "W. Europe Standard Time")
    in_utc = with_time_zone(timed)
    assert in_utc["start"]["timeZone"] == "UTC" and bounds(in_utc) == bounds(timed)
    in_london = with_time_zone(timed, "Europe/London")
    assert bounds(in_london) == bounds(timed)
    all_day = next(e for e in events if e["isAllDay"])
    assert with_time_zone(all_day, "Pacific Standard Time")["start"]["dateTime"] == all_day["start"]["dateTime"]
    assert timed["start"]["timeZone"] == "W. Europe Standard Time"  # the stored event is left alone


# --- determinism, helpers, speed ----------------------------------------------------------------------


def test_same_seed_same_calendars_other_seed_others():
    def dump(calendars: list[CalendarData]) -> str:
        return json.dumps([(c.calendar, c.events, c.cancelled) for c in calendars], sort_keys=True)

    assert dump(_tenant(11)) == dump(_tenant(11)) != dump(_tenant(12))


def test_ids_are_unique_and_every_icaluid_belongs_to_one_series(calendars):
    events = [e for d in calendars for e in d.events]
    assert len({e["id"] for e in events}) == len(events)
    stored = {e["iCalUId"] for e in events if e["type"] != "exception"}
    assert len(stored) == sum(e["type"] != "exception" for e in events)
    assert len({c.calendar["id"] for c in calendars}) == 2


def test_make_event_gives_a_fresh_single_event_in_the_zone_asked_for():
    user, colleagues = _people(4)
    event = make_event(random.Random(1), user, colleagues, start=datetime(2026, 6, 1, 9, 0, tzinfo=ZoneInfo("Europe/London")))
    assert_parses(Event, event)
    _check_shape(event)
    assert event["type"] == "singleInstance" and event["start"] == {"dateTime": "2026-06-01T09:00:00.0000000",
                                                                    "timeZone": "GMT Standard Time"}
    naive = make_event(random.Random(2), user, colleagues, start=datetime(2026, 6, 1, 9, 0))
    assert naive["start"]["timeZone"] == "UTC" and naive["id"] != event["id"]
    data = CalendarData({"id": "cal"}, [event], {})
    assert [e["id"] for e in calendar_view(data, datetime(2026, 6, 1), datetime(2026, 6, 2))] == [event["id"]]


def test_build_calendars_is_fast():
    people = [_people(seed) for seed in range(20)]
    slowest = 0.0
    for seed, (user, colleagues) in enumerate(people):
        began = time.perf_counter()
        build_calendars(random.Random(seed), user, colleagues)
        slowest = max(slowest, time.perf_counter() - began)
    assert slowest < 0.2


def test_a_user_without_colleagues_still_gets_full_calendars():
    user, _ = _people(5)
    calendars = build_calendars(random.Random(5), user, [])
    for data in calendars:
        for event in data.events:
            _check_shape(event)
            assert all(a["type"] == "resource" or a["emailAddress"]["address"] == user["mail"] for a in event["attendees"])
            assert event["isOrganizer"] and event["organizer"]["emailAddress"]["address"] == user["mail"]


@pytest.mark.parametrize("master_id", ["AAMkAGI2TGuLAAA=", "made-up id/with odd chars", ""])
def test_occurrence_ids_round_trip_whatever_the_master_id(master_id):
    original = datetime(2026, 3, 30, 7, 30, tzinfo=UTC)
    event_id = occurrence_id(master_id, original)
    assert re.fullmatch(r"[A-Za-z0-9_=-]+", event_id)
    assert parse_occurrence_id(event_id) == (master_id, original)
    assert occurrence_id(master_id, original) == event_id != occurrence_id(master_id, original + timedelta(days=7))


def test_stored_ids_are_not_taken_for_occurrence_ids(calendars):
    for data in calendars:
        assert parse_occurrence_id(data.calendar["id"]) is None
        for event in data.events:
            assert (parse_occurrence_id(event["id"]) is None) == (event["type"] != "exception")
    assert parse_occurrence_id("not base64!") is None
