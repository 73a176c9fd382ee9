"""Graph `patternedRecurrence` to an RFC 5545 RRULE, and that RRULE's own expansion.

Exchange counts intervals from the first occurrence and, for weekly patterns, in weeks that begin
on firstDayOfWeek; RFC 5545 does the same with DTSTART and WKST, and Graph always puts the master's
start on the first occurrence, so DTSTART is a real occurrence (RFC 5545 counts it whether or not
it matches the rule). One difference needs care: Outlook moves "day 31 of every month" to the last
day of a shorter month, where BYMONTHDAY=31 would skip the month. Days above 28 are therefore
written as BYMONTHDAY=28,...,N;BYSETPOS=-1: the last of those days the month has, which is N or
the month's last day.

The EXDATEs are found by expanding the very RRULE written, with dateutil, so what a client
expands and what was compared against Graph's instances cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dateutil.rrule import rrulestr

from migrator.errors import ItemError

DAY_CODES = {"monday": "MO", "tuesday": "TU", "wednesday": "WE", "thursday": "TH",
             "friday": "FR", "saturday": "SA", "sunday": "SU"}
SET_POSITION = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_DAY_ORDER = tuple(DAY_CODES)  # Monday first, so BYDAY is written in a stable order
_SHORTEST_MONTH = 28
_MAX_EXPANSION = 100_000  # occurrences; a bound so a malformed rule cannot run for ever


@dataclass(frozen=True)
class Rule:
    """An RRULE value and whether the series' range is bounded (UNTIL or COUNT)."""

    value: str
    bounded: bool


def rrule(recurrence: dict[str, Any], zone: tzinfo, all_day: bool) -> Rule:
    """The RRULE for a Graph recurrence; `zone` is the recurrenceTimeZone, in which endDate is a
    local, inclusive date."""
    pattern, range_ = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    parts = _pattern_parts(pattern)
    interval = int(pattern.get("interval") or 1)
    if interval > 1:
        parts.append(f"INTERVAL={interval}")
    bound = _range_part(range_, zone, all_day)
    if bound:
        parts.append(bound)
    if pattern.get("type") == "weekly":
        parts.append(f"WKST={DAY_CODES.get(pattern.get('firstDayOfWeek') or 'sunday', 'SU')}")
    return Rule(";".join(parts), bound is not None)


def _pattern_parts(pattern: dict[str, Any]) -> list[str]:
    kind = pattern.get("type")
    if kind == "daily":
        return ["FREQ=DAILY"]
    if kind == "weekly":
        return ["FREQ=WEEKLY", f"BYDAY={_days(pattern)}"]
    if kind == "absoluteMonthly":
        return ["FREQ=MONTHLY", *_month_day(pattern)]
    if kind == "relativeMonthly":
        return ["FREQ=MONTHLY", f"BYDAY={_days(pattern)}", f"BYSETPOS={_position(pattern)}"]
    if kind == "absoluteYearly":
        return ["FREQ=YEARLY", f"BYMONTH={_month(pattern)}", *_month_day(pattern)]
    if kind == "relativeYearly":
        return ["FREQ=YEARLY", f"BYMONTH={_month(pattern)}", f"BYDAY={_days(pattern)}", f"BYSETPOS={_position(pattern)}"]
    raise ItemError(f"recurrence pattern type {kind!r} is not one Graph documents")


def _days(pattern: dict[str, Any]) -> str:
    days = {d for d in pattern.get("daysOfWeek") or () if d in DAY_CODES}
    if not days:
        raise ItemError(f"{pattern.get('type')} recurrence without daysOfWeek")
    return ",".join(DAY_CODES[d] for d in _DAY_ORDER if d in days)


def _position(pattern: dict[str, Any]) -> int:
    return SET_POSITION.get(pattern.get("index") or "first", 1)


def _month(pattern: dict[str, Any]) -> int:
    month = int(pattern.get("month") or 0)
    if not 1 <= month <= 12:
        raise ItemError(f"{pattern.get('type')} recurrence with month {month}")
    return month


def _month_day(pattern: dict[str, Any]) -> list[str]:
    day = int(pattern.get("dayOfMonth") or 0)
    if not 1 <= day <= 31:
        raise ItemError(f"{pattern.get('type')} recurrence with dayOfMonth {day}")
    if day <= _SHORTEST_MONTH:
        return [f"BYMONTHDAY={day}"]
    return [f"BYMONTHDAY={','.join(str(d) for d in range(_SHORTEST_MONTH, day + 1))}", "BYSETPOS=-1"]


def _range_part(range_: dict[str, Any], zone: tzinfo, all_day: bool) -> str | None:
    kind = range_.get("type")
    if kind == "numbered":
        return f"COUNT={max(int(range_.get('numberOfOccurrences') or 1), 1)}"
    if kind == "endDate":
        last = date.fromisoformat(range_["endDate"])
        if all_day:
            return f"UNTIL={last:%Y%m%d}"
        return f"UNTIL={end_of_day_utc(last, zone):%Y%m%dT%H%M%SZ}"
    return None


def end_of_day_utc(day: date, zone: tzinfo) -> datetime:
    """The last second of a local date as a UTC instant: UNTIL is inclusive and must be UTC when
    DTSTART has a TZID (RFC 5545 3.3.10)."""
    midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return midnight.astimezone(UTC) - timedelta(seconds=1)


def expand(rule: str, first: datetime, until: datetime | None) -> Iterator[datetime]:
    """Starts the rule yields from DTSTART `first` (aware, or naive for all-day dates), up to and
    including `until` when given; bounded rules end by themselves."""
    parsed = rrulestr(rule, dtstart=first, ignoretz=False)
    for count, start in enumerate(parsed):
        if until is not None and start > until or count >= _MAX_EXPANSION:
            return
        yield start
