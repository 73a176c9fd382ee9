"""Expansion of Graph `patternedRecurrence` values into occurrence dates, as Exchange does it.

Dates are computed in the series' own time zone and only then turned into instants, so a series
keeps its wall-clock time across a daylight-saving change while its UTC offset moves."""

from __future__ import annotations

import calendar as cal
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

# Only the zones the sandbox's calendars use; the full CLDR mapping lives elsewhere.
WINDOWS_TO_IANA = {
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "GMT Standard Time": "Europe/London",
    "Pacific Standard Time": "America/Los_Angeles",
    "Eastern Standard Time": "America/New_York",
    "UTC": "UTC",
}

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")  # index = date.weekday()
WEEK_INDEX = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": -1}
GRAPH_DATETIME = "%Y-%m-%dT%H:%M:%S.0000000"
NO_DATE = "0001-01-01"  # how Graph writes an endDate that does not apply

_zones: dict[str, tzinfo] = {}


def zone(name: str) -> tzinfo:
    """The tzinfo for a Windows zone name in the table, or for an IANA name as Graph also accepts."""
    found = _zones.get(name)
    if found is None:
        found = UTC if name in ("UTC", "Etc/GMT") else ZoneInfo(WINDOWS_TO_IANA.get(name, name))
        _zones[name] = found
    return found


def parse_local(value: str) -> datetime:
    """A naive datetime from Graph's dateTime form, which carries seven fractional digits."""
    return datetime.fromisoformat(value[:19])


def format_local(value: datetime) -> str:
    return value.strftime(GRAPH_DATETIME)


def format_utc(value: datetime) -> str:
    """An instant as Graph writes DateTimeOffset properties such as originalStart."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_utc(local: datetime, zone_name: str) -> datetime:
    return local.replace(tzinfo=zone(zone_name)).astimezone(UTC)


def from_utc(instant: datetime, zone_name: str) -> datetime:
    return instant.astimezone(zone(zone_name)).replace(tzinfo=None)


def occurrence_dates(recurrence: dict) -> Iterator[date]:
    """Every date of the series in order, honouring the range; endless for a `noEnd` range."""
    pattern, range_ = recurrence["pattern"], recurrence["range"]
    start = date.fromisoformat(range_["startDate"])
    dates = pattern_dates(pattern, start)
    kind = range_["type"]
    if kind == "numbered":
        for count, day in enumerate(dates):
            if count >= range_["numberOfOccurrences"]:
                return
            yield day
    elif kind == "endDate":
        last = date.fromisoformat(range_["endDate"])
        for day in dates:
            if day > last:  # endDate is inclusive
                return
            yield day
    else:
        yield from dates


def pattern_dates(pattern: dict, start: date) -> Iterator[date]:
    """The pattern's dates on or after `start`, which also anchors the interval counting."""
    kind = pattern["type"]
    interval = max(int(pattern.get("interval") or 1), 1)
    days = {DAYS.index(d) for d in pattern.get("daysOfWeek") or ()}
    if kind == "daily":
        return _daily(start, interval)
    if kind == "weekly":
        return _weekly(start, interval, days, DAYS.index(pattern.get("firstDayOfWeek") or "sunday"))
    if kind in ("absoluteMonthly", "relativeMonthly"):
        pick = _absolute(pattern["dayOfMonth"]) if kind == "absoluteMonthly" else _relative(days, pattern)
        return _monthly(start, interval, pick)
    if kind in ("absoluteYearly", "relativeYearly"):
        pick = _absolute(pattern["dayOfMonth"]) if kind == "absoluteYearly" else _relative(days, pattern)
        return _yearly(start, interval, int(pattern["month"]), pick)
    raise ValueError(f"unknown recurrence pattern type {kind!r}")


def _daily(start: date, interval: int) -> Iterator[date]:
    day = start
    while True:
        yield day
        day += timedelta(days=interval)


def _weekly(start: date, interval: int, days: set[int], first_day: int) -> Iterator[date]:
    """Weeks are counted from the one holding `start`, and a week begins on firstDayOfWeek:
    with an interval above 1 that choice decides which weeks are "on"."""
    if not days:
        return
    week = start - timedelta(days=(start.weekday() - first_day) % 7)
    while True:
        for offset in range(7):
            day = week + timedelta(days=offset)
            if day.weekday() in days and day >= start:
                yield day
        week += timedelta(weeks=interval)


def _absolute(day_of_month: int):
    """Day N of a month; a month too short for N gets its last day, as Outlook does."""

    def pick(year: int, month: int) -> date:
        return date(year, month, min(int(day_of_month), cal.monthrange(year, month)[1]))

    return pick


def _relative(days: set[int], pattern: dict):
    """The index-th day of the month that is one of daysOfWeek, so "first weekday" or "last friday"."""
    index = WEEK_INDEX[pattern.get("index") or "first"]

    def pick(year: int, month: int) -> date | None:
        if not days:
            return None
        length = cal.monthrange(year, month)[1]
        matching = [d for d in range(1, length + 1) if date(year, month, d).weekday() in days]
        return date(year, month, matching[index])

    return pick


def _monthly(start: date, interval: int, pick) -> Iterator[date]:
    """Months are counted from the month of `start`; a date in it before `start` is skipped, not moved."""
    months = start.year * 12 + start.month - 1
    while True:
        year, month_index = divmod(months, 12)
        day = pick(year, month_index + 1)
        if day is None:
            return
        if day >= start:
            yield day
        months += interval


def _yearly(start: date, interval: int, month: int, pick) -> Iterator[date]:
    year = start.year
    while True:
        day = pick(year, month)
        if day is None:
            return
        if day >= start:
            yield day
        year += interval


def first_date(recurrence: dict) -> date | None:
    return next(occurrence_dates(recurrence), None)


def occurrence_starts(
    recurrence: dict, start_time: time, zone_name: str, until: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """(local start, UTC start) of each occurrence whose start is before `until` (an aware instant)."""
    for day in occurrence_dates(recurrence):
        local = datetime.combine(day, start_time)
        instant = to_utc(local, zone_name)
        if instant >= until:
            return
        yield local, instant
