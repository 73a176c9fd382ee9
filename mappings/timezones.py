"""Time zones for calendar mapping: Outlook's Windows zone names to IANA zones, and VTIMEZONE
components generated from zoneinfo.

Graph names zones the Windows way ("W. Europe Standard Time"). The only trustworthy translation
is Unicode CLDR's windowsZones table, which tzlocal ships; a name outside it (a custom zone an old
Outlook wrote, a typo) fails the item instead of being read as UTC, which would silently move
every occurrence by hours.

A VTIMEZONE lists each offset change in the years the event uses, one observance per change
(exact whatever rules the zone had then), and lets the last standard and daylight observances
repeat with a yearly RRULE when the zone keeps following that rule, so a client expanding an
open-ended series past those years still gets the right offsets.
"""

from __future__ import annotations

import calendar as cal
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from tzlocal.windows_tz import win_tz

from migrator.errors import ItemError

# Names Graph uses for UTC besides the table's "UTC" (which CLDR maps to Etc/UTC).
_UTC_NAMES = frozenset({"UTC", "Coordinated Universal Time", "tzone://Microsoft/Utc", "Etc/UTC", "Etc/GMT", "GMT"})
# IANA names the table itself produces are accepted too: Graph answers in one when an event was
# created through the API with an IANA zone.
_IANA_NAMES = frozenset(win_tz.values())
_DAY_NAMES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_RULE_CHECK_YEARS = 10  # a derived yearly rule must hold this long past the span to be written


@dataclass(frozen=True)
class Zone:
    """A resolved zone: `tzid` is the IANA name written as TZID, None for UTC (written with Z)."""

    tzid: str | None
    tz: tzinfo


def resolve(name: str | None) -> Zone:
    """The zone for a Graph timeZone value; ItemError when the table does not know it."""
    text = (name or "").strip()
    if text in _UTC_NAMES:
        return Zone(None, UTC)
    iana = win_tz.get(text) or (text if text in _IANA_NAMES else None)
    if iana is None:
        raise ItemError(
            f"time zone {text!r} is not in the Windows-to-IANA table (CLDR windowsZones); "
            "the event was not migrated rather than shifted to UTC"
        )
    if iana in _UTC_NAMES:
        return Zone(None, UTC)
    return Zone(iana, _zoneinfo(iana))


@cache
def _zoneinfo(key: str) -> ZoneInfo:
    return ZoneInfo(key)


# --- VTIMEZONE ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    at: datetime  # UTC instant of the change
    before: timedelta
    after: timedelta
    name: str
    dst: bool


@lru_cache(maxsize=1024)
def vtimezone(tzid: str, first_year: int, last_year: int) -> tuple[str, ...]:
    """Content lines of a VTIMEZONE valid from the year before `first_year` through `last_year`
    (and beyond when the zone keeps a yearly rule). Cached: it depends on its arguments alone
    and every event of a calendar asks for much the same zones and years."""
    tz = _zoneinfo(tzid)
    changes = _from_before(transitions(tz, first_year - 2, last_year), datetime(first_year - 1, 1, 1, tzinfo=UTC))
    lines = ["BEGIN:VTIMEZONE", f"TZID:{tzid}"]
    if not changes:
        lines += _fixed_observance(tz, first_year - 1)
    else:
        last_of_kind = {c.dst: c for c in changes}
        for change in changes:
            rule = _yearly_rule(tz, change, last_year) if last_of_kind[change.dst] is change else None
            lines += _observance(change, rule)
    return tuple(lines + ["END:VTIMEZONE"])


def _from_before(changes: list[Transition], start: datetime) -> list[Transition]:
    """The changes from the last one before `start` on: a time before the first observance's
    onset has no defined offset, so the observance in force at `start` must be listed too."""
    earlier = [n for n, change in enumerate(changes) if change.at <= start]
    return changes[earlier[-1]:] if earlier else changes


def transitions(tz: tzinfo, first_year: int, last_year: int) -> list[Transition]:
    """Every offset change from the start of `first_year` to the end of `last_year`, found by
    stepping a day at a time and bisecting to the second: zoneinfo does not expose its table."""
    found: list[Transition] = []
    moment = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    offset = _offset(tz, moment)
    while moment < end:
        step = moment + timedelta(days=1)
        if _offset(tz, step) != offset:
            at = _bisect(tz, moment, step, offset)
            local = at.astimezone(tz)
            found.append(Transition(at, offset, _offset(tz, at), local.tzname() or "", bool(local.dst())))
            offset = _offset(tz, at)
        moment = step
    return found


def _offset(tz: tzinfo, instant: datetime) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)


def _bisect(tz: tzinfo, low: datetime, high: datetime, before: timedelta) -> datetime:
    """The first instant in (low, high] whose offset differs from `before`."""
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if _offset(tz, middle) == before:
            low = middle
        else:
            high = middle
    return high


def _observance(change: Transition, rule: str | None) -> list[str]:
    kind = "DAYLIGHT" if change.dst else "STANDARD"
    onset = (change.at + change.before).replace(tzinfo=None)  # local time as the clock showed it before
    lines = [
        f"BEGIN:{kind}",
        f"DTSTART:{onset:%Y%m%dT%H%M%S}",
        f"TZOFFSETFROM:{_format_offset(change.before)}",
        f"TZOFFSETTO:{_format_offset(change.after)}",
    ]
    if change.name:
        lines.append(f"TZNAME:{change.name}")
    if rule:
        lines.append(f"RRULE:{rule}")
    return lines + [f"END:{kind}"]


def _fixed_observance(tz: tzinfo, year: int) -> list[str]:
    """A zone without changes in the span: one STANDARD observance with its constant offset."""
    local = datetime(year, 1, 1, tzinfo=UTC).astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    lines = ["BEGIN:STANDARD", f"DTSTART:{year:04d}0101T000000",
             f"TZOFFSETFROM:{_format_offset(offset)}", f"TZOFFSETTO:{_format_offset(offset)}"]
    if local.tzname():
        lines.append(f"TZNAME:{local.tzname()}")
    return lines + ["END:STANDARD"]


def _format_offset(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{secs:02d}" if secs else "")


def _yearly_rule(tz: tzinfo, change: Transition, last_year: int) -> str | None:
    """FREQ=YEARLY;BYMONTH;BYDAY (nth or last weekday) reproducing `change` each following year,
    or None when the zone does not keep such a rule for _RULE_CHECK_YEARS more years."""
    onset = (change.at + change.before).replace(tzinfo=None)
    day = onset.date()
    length = cal.monthrange(day.year, day.month)[1]
    weekday = _DAY_NAMES[day.weekday()]
    position = -1 if day.day + 7 > length else (day.day - 1) // 7 + 1
    rule = f"FREQ=YEARLY;BYMONTH={day.month};BYDAY={position}{weekday}"
    later = transitions(tz, day.year + 1, max(last_year, day.year) + _RULE_CHECK_YEARS)
    expected = [c for c in later if c.dst == change.dst]
    if len(expected) != max(last_year, day.year) + _RULE_CHECK_YEARS - day.year:
        return None
    for year, found in zip(range(day.year + 1, day.year + 1 + len(expected)), expected):
        local = (found.at + found.before).replace(tzinfo=None)
        if (found.before, found.after) != (change.before, change.after) or local.time() != onset.time():
            return None
        if local.date() != _nth_weekday(year, day.month, day.weekday(), position):
            return None
    return rule


def _nth_weekday(year: int, month: int, weekday: int, position: int) -> date:
    days = [d for d in range(1, cal.monthrange(year, month)[1] + 1) if date(year, month, d).weekday() == weekday]
    return date(year, month, days[position - 1 if position > 0 else position])
