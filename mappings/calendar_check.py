"""The occurrence check verify runs on a stored series: expanding what the CalDAV server returns
must give exactly the occurrences Graph reports, as absolute instants. Pure: the caller reads both."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import icalendar
import recurring_ical_events

from migrator.model import Item

Span = tuple[datetime, datetime]


def _instant(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0), UTC)  # all-day: compared by their dates


def graph_occurrences(instances: list[dict[str, Any]]) -> set[Span]:
    """The reader asks for instances in UTC, so their dateTime values are UTC wall times."""
    spans = set()
    for occurrence in instances:
        start, end = occurrence["start"]["dateTime"][:19], occurrence["end"]["dateTime"][:19]
        spans.add((_instant(datetime.fromisoformat(start)), _instant(datetime.fromisoformat(end))))
    return spans


def stored_occurrences(stored: bytes, window: Span) -> set[Span]:
    calendar = icalendar.Calendar.from_ical(stored)
    return {(_instant(e["DTSTART"].dt), _instant(e["DTEND"].dt)) for e in recurring_ical_events.of(calendar).between(*window)}


def occurrence_problem(stored: bytes, item: Item) -> str:
    """"" when the stored series expands to Graph's occurrences over the span Graph listed."""
    expected = graph_occurrences(item.metadata.get("instances") or [])
    if not expected:
        return ""
    window = (min(s for s, _ in expected), max(e for _, e in expected) + timedelta(seconds=1))
    found = {span for span in stored_occurrences(stored, window) if span[0] >= window[0]}
    if found == expected:
        return ""
    missing, extra = len(expected - found), len(found - expected)
    return f"occurrences differ: {missing} of Graph's missing at the target, {extra} only at the target"
