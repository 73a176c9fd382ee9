"""Calendars: calendars, events (single instances and series masters), instances of a series in a
window, calendarView, and calendarView delta whose window lives in its links."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from migrator.sandbox.auth import require
from migrator.sandbox.gen_calendar import (
    ZONES,
    CalendarData,
    build_calendars,
    calendar_view,
    cancel_occurrence,
    find_event,
    instances,
    listed_events,
    make_event,
    with_time_zone,
)
from migrator.sandbox.http import GraphError, Request, Response
from migrator.sandbox.odata import collection, entity, removed, select, user_context
from migrator.sandbox.store import Collection

if TYPE_CHECKING:
    from migrator.sandbox.app import GraphApp
    from migrator.sandbox.tenant import Tenant

PAGE = 10


@dataclass
class Calendars:
    data: list[CalendarData]
    views: dict[tuple[str, str, str], Collection] = field(default_factory=dict)  # (calendar, start, end) -> view state for delta

    @property
    def default(self) -> CalendarData:
        return self.data[0]

    def calendar(self, calendar_id: str | None) -> CalendarData:
        if calendar_id is None:
            return self.default
        for cal in self.data:
            if cal.calendar["id"] == calendar_id:
                return cal
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    def event(self, event_id: str) -> tuple[CalendarData, dict[str, Any]]:
        for cal in self.data:
            found = find_event(cal, event_id)
            if found is not None:
                return cal, found
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    # -- mutations, for tests and demos of delta passes ------------------------------------------

    def add(self, rng, user: dict, colleagues: list[dict], start: dt.datetime) -> dict[str, Any]:
        event = make_event(rng, user, colleagues, start=start)
        self.default.events.append(event)
        return event

    def update(self, event_id: str, **changes: Any) -> dict[str, Any]:
        cal, event = self.event(event_id)
        event.update(changes)
        _touch(event)
        self._touch_master(cal, event)
        return event

    def delete(self, event_id: str) -> None:
        cal, event = self.event(event_id)
        if event.get("type") in ("occurrence", "exception"):
            cancel_occurrence(cal, event_id)
            self._touch_master(cal, event)
            return
        cal.events[:] = [e for e in cal.events if e["id"] != event_id and e.get("seriesMasterId") != event_id]

    @staticmethod
    def _touch_master(cal: CalendarData, event: dict[str, Any]) -> None:
        """Exchange stores exceptions and cancellations on the series master, so its change key moves too."""
        master = find_event(cal, event["seriesMasterId"]) if event.get("seriesMasterId") else None
        if master is not None:
            _touch(master)


def _touch(event: dict[str, Any]) -> None:
    event["changeKey"] = secrets.token_urlsafe(12)
    event["@odata.etag"] = f'W/"{event["changeKey"]}"'
    event["lastModifiedDateTime"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def calendars(tenant: Tenant, user_key: str) -> Calendars:
    user = tenant.user(user_key)
    return tenant.lazy(("calendar", user["id"]), lambda: Calendars(build_calendars(tenant.rng("calendar", user["id"]), user, tenant.colleagues(user))))


def _zone(request: Request) -> Callable[[dict], dict]:
    """Graph answers in UTC unless `Prefer: outlook.timezone="..."` names another zone."""
    found = re.search(r'outlook\.timezone="([^"]+)"', request.header("prefer"))
    name = found.group(1) if found else "UTC"
    if name in ZONES:
        return lambda event: with_time_zone(event, name)
    try:
        tz = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return lambda event: with_time_zone(event, "UTC")
    return lambda event: with_time_zone(event, name, tz=tz)


def _window(request: Request) -> tuple[dt.datetime, dt.datetime]:
    try:
        start, end = request.query["startDateTime"], request.query["endDateTime"]
    except KeyError:
        raise GraphError(400, "ErrorInvalidParameter", "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.") from None
    try:
        return _utc(start), _utc(end)
    except ValueError:
        raise GraphError(400, "ErrorInvalidParameter", "The value of StartDateTime or EndDateTime is not a valid date.") from None


def _utc(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def register(app: GraphApp, tenant: Tenant) -> None:
    def guarded(request: Request) -> Calendars:
        require(request.principal, "Calendars.Read", "Calendars.ReadBasic", "Calendars.ReadWrite")
        return calendars(tenant, request.params["user"])

    def list_calendars(request: Request) -> Response:
        cals = guarded(request)
        return collection(request, [c.calendar for c in cals.data], user_context(request, "calendars"), PAGE, shape=lambda c: select(c, request))

    def get_calendar(request: Request) -> Response:
        cal = guarded(request).calendar(request.params.get("calendar"))
        return entity(request, user_context(request, "calendars/$entity"), select(cal.calendar, request))

    def shape(request: Request) -> Callable[[dict], dict]:
        zoned = _zone(request)
        return lambda event: select(zoned(event), request)

    def list_events(request: Request) -> Response:
        cal = guarded(request).calendar(request.params.get("calendar"))
        return collection(request, listed_events(cal), user_context(request, "events"), PAGE, shape=shape(request))

    def get_event(request: Request) -> Response:
        _, event = guarded(request).event(request.params["event"])
        return entity(request, user_context(request, "events/$entity"), shape(request)(event))

    def list_instances(request: Request) -> Response:
        cals = guarded(request)
        cal, master = cals.event(request.params["event"])
        start, end = _window(request)
        found = instances(cal, master, start, end) if master.get("type") == "seriesMaster" else []
        return collection(request, found, user_context(request, f"events('{master['id']}')/instances"), PAGE, shape=shape(request))

    def view(request: Request) -> Response:
        cals = guarded(request)
        start, end = _window(request)
        found = calendar_view(cals.calendar(request.params.get("calendar")), start, end)
        return collection(request, found, user_context(request, "calendarView"), PAGE, shape=shape(request))

    def view_delta(request: Request) -> Response:
        cals = guarded(request)
        start, end = _window(request)
        cal = cals.default
        key = (cal.calendar["id"], start.isoformat(), end.isoformat())
        expected = calendar_view(cal, start, end)
        state = cals.views.get(key)
        if state is None:  # the first read of a window: its content exists from version 0
            state = cals.views[key] = Collection(tenant.clock)
            state.load(expected)
        else:
            _sync(state, expected)
        window = {"startDateTime": request.query["startDateTime"], "endDateTime": request.query["endDateTime"]}
        return tenant.delta.respond(request, f"calendarView/{request.params['user']}/{key}", state, user_context(request, "calendarView/delta"),
                                    PAGE, shape(request), removed("event"), extra_query=window)

    app.route("GET", "/users/{user}/calendars", list_calendars)
    app.route("GET", "/users/{user}/calendar", get_calendar)
    app.route("GET", "/users/{user}/calendars/{calendar}", get_calendar)
    app.route("GET", "/users/{user}/events", list_events)
    app.route("GET", "/users/{user}/calendar/events", list_events)
    app.route("GET", "/users/{user}/calendars/{calendar}/events", list_events)
    app.route("GET", "/users/{user}/events/{event}", get_event)
    app.route("GET", "/users/{user}/events/{event}/instances", list_instances)
    app.route("GET", "/users/{user}/calendarView/delta", view_delta)
    app.route("GET", "/users/{user}/calendarView", view)
    app.route("GET", "/users/{user}/calendar/calendarView", view)
    app.route("GET", "/users/{user}/calendars/{calendar}/calendarView", view)


def _sync(state: Collection, expected: list[dict[str, Any]]) -> None:
    """Brings a window's view state up to date, so only real differences get new versions."""
    wanted = {e["id"]: e for e in expected}
    for event_id in [e["id"] for e in state.current() if e["id"] not in wanted]:
        state.remove(event_id)
    for event_id, event in wanted.items():
        if state.get(event_id) != event:
            state.upsert(event)
