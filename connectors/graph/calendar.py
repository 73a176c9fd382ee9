"""Calendars: every calendar of the mailbox is a container, listed in full on every pass.

Graph v1.0 has no delta on `/events`, and calendarView delta only covers a fixed window, so
`changes` yields every single instance and series master with its change key and no Cursor: the
engine finds removals by absence and skips unchanged change keys itself.

A fetched event's metadata is `{"event", "instances", "exceptions", "calendar"}`:
- `event`: the Graph JSON in the event's own zone (`Prefer: outlook.timezone` set to its
  originalStartTimeZone), so a mapping writes wall-clock times as the organizer saw them;
- `instances` (series masters only, else []): every occurrence and exception over the series'
  span (see `series_window`), in UTC so they compare, with only INSTANCE_FIELDS, because the rest
  of an occurrence is its master's; cancelled occurrences are the ones missing;
- `exceptions`: the full JSON of each instance whose type is "exception", in the master's zone,
  since an exception may change anything (subject, body, attendees...);
- `calendar`: the container's name.
The payload is the canonical JSON of the metadata, so the content hash changes when an exception
or a cancellation does, not only when the master does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

from connectors.graph.reader import canonical
from connectors.graph.session import GraphApiError, GraphSession, item_failure
from migrator.model import Change, Container, Item, ItemRef, Payload, User

LIST_FIELDS = "id,changeKey,subject,type"
INSTANCE_FIELDS = "id,type,seriesMasterId,originalStart,start,end"
PAGE = 100
INSTANCE_PAGE = 500  # a weekly series over the horizon has hundreds of occurrences
HORIZON = timedelta(days=5 * 366)  # how far an open-ended series is expanded, see series_window
LONGEST_SERIES = timedelta(days=100 * 366)  # caps a numbered series' window, whatever its count
# Room on both sides of the window for zones up to UTC+14 and for the first or last occurrence
# moved outside the recurrence range.
MARGIN = timedelta(days=31)
# The longest one step of each pattern can take; count x interval x this bounds a numbered series.
PERIOD = {
    "daily": timedelta(days=1), "weekly": timedelta(days=7),
    "absoluteMonthly": timedelta(days=31), "relativeMonthly": timedelta(days=31),
    "absoluteYearly": timedelta(days=366), "relativeYearly": timedelta(days=366),
}



def series_window(master: dict[str, Any], today: date | None = None) -> tuple[date, date]:
    """The dates whose instances cover the whole series. An open-ended series is cut off
    HORIZON after the later of its start and this year's first day, so an old series still
    brings its recent exceptions and the window only moves once a year."""
    range_ = master["recurrence"]["range"]
    start = date.fromisoformat(range_["startDate"])
    if range_["type"] == "endDate":
        end = date.fromisoformat(range_["endDate"]) + timedelta(days=1)
    elif range_["type"] == "numbered":
        pattern = master["recurrence"]["pattern"]
        steps = max(range_.get("numberOfOccurrences") or 1, 1) * max(pattern.get("interval") or 1, 1)
        end = start + min(steps * PERIOD.get(pattern["type"], PERIOD["absoluteYearly"]), LONGEST_SERIES)
    else:
        end = max(start, (today or date.today()).replace(month=1, day=1)) + HORIZON
    return start - MARGIN, end + MARGIN


def _instant(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


class CalendarReader:
    workload = "calendar"

    def __init__(self, session: GraphSession) -> None:
        self.session = session

    async def containers(self, user: User) -> AsyncIterator[Container]:
        params = {"$select": "id,name,isDefaultCalendar", "$top": str(PAGE)}
        async for calendar in self.session.items(f"users/{user.source_id}/calendars", params):
            role = "default" if calendar.get("isDefaultCalendar") else ""
            yield Container(calendar["id"], calendar["name"], "calendar", (calendar["name"],), role)

    async def changes(self, user: User, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        """Every single instance and series master; `cursor` is always None as none is ever given."""
        url = f"users/{user.source_id}/calendars/{container.source_id}/events"
        async for event in self.session.items(url, {"$select": LIST_FIELDS, "$top": str(PAGE)}):
            yield ItemRef(event["id"], event.get("changeKey", ""), "event", event.get("subject") or "")

    async def fetch(self, user: User, container: Container, ref: ItemRef) -> Item:
        base = f"users/{user.source_id}/events/{ref.source_id}"
        try:
            event = await self._event(base)
            instances = await self._instances(base, event) if event.get("type") == "seriesMaster" else []
            exceptions = await self._exceptions(user, instances, event["start"]["timeZone"])
        except GraphApiError as exc:
            raise item_failure(exc) from None
        metadata = {"event": event, "instances": instances, "exceptions": exceptions, "calendar": container.name}
        return Item(ref, Payload.from_bytes(canonical(metadata)), metadata)

    async def _event(self, base: str) -> dict[str, Any]:
        """The event in its own zone. Graph answers in UTC unless told otherwise, and the zone is
        only known once asked for; a zone Graph will not take in Prefer leaves the UTC answer."""
        zone = (await self.session.get_json(base, {"$select": "originalStartTimeZone"})).get("originalStartTimeZone")
        event: dict[str, Any] | None = None
        if zone and zone != "UTC":
            try:
                event = await self.session.get_json(base, headers={"Prefer": f'outlook.timezone="{zone}"'})
            except GraphApiError as exc:
                if exc.status != 400:
                    raise
        if event is None:
            event = await self.session.get_json(base, headers={"Prefer": 'outlook.timezone="UTC"'})
        return _entity(event)

    async def _instances(self, base: str, master: dict[str, Any]) -> list[dict[str, Any]]:
        """Where each occurrence and exception falls, in UTC so they compare whatever zone moved
        them. Only these few properties: the rest of an occurrence is its master's."""
        first, last = series_window(master)
        params = {"startDateTime": _instant(first), "endDateTime": _instant(last), "$select": INSTANCE_FIELDS, "$top": str(INSTANCE_PAGE)}
        headers = {"Prefer": 'outlook.timezone="UTC"'}
        return [instance async for instance in self.session.items(f"{base}/instances", params, headers)]

    async def _exceptions(self, user: User, instances: list[dict[str, Any]], zone: str) -> list[dict[str, Any]]:
        """Each exception in full, in the master's zone: an exception may change anything."""
        wanted = [i["id"] for i in instances if i.get("type") == "exception"]
        headers = {"Prefer": f'outlook.timezone="{zone}"'}
        requests = [{"id": str(n), "method": "GET", "url": f"/users/{user.source_id}/events/{event_id}", "headers": headers}
                    for n, event_id in enumerate(wanted)]
        answers = await self.session.batch(requests) if requests else {}
        return [_answered(answers[str(n)]) for n in range(len(wanted))]


def _answered(answer: dict[str, Any]) -> dict[str, Any]:
    """One $batch answer's entity, or its error raised as if the request had been sent alone."""
    if answer["status"] != 200:
        error = (answer.get("body") or {}).get("error", {})
        raise GraphApiError(answer["status"], error.get("code", ""), error.get("message", ""))
    return _entity(answer["body"])


def _entity(body: dict[str, Any]) -> dict[str, Any]:
    """Without @odata.context, which describes the response (server URL included), not the event."""
    body.pop("@odata.context", None)
    return body
