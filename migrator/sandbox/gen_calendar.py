"""Synthetic calendars for one user: a default "Agenda" and a project calendar, holding single and
all-day events and series of every Graph recurrence pattern and range type, with modified and
cancelled occurrences, in several time zones (some series cross a daylight-saving change).

Stored events keep `start`/`end` in the zone they were created in, as Exchange stores them; Graph
itself answers in UTC unless `Prefer: outlook.timezone` asks otherwise, which `with_time_zone`
does for the server. Occurrences are never stored: `instances` and `calendar_view` compute them
from the series master, its exceptions and the cancelled original starts, every time, so a
server that edits `CalendarData.events` or `.cancelled` sees the change at once."""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import random
import struct
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from urllib.parse import quote

from migrator.sandbox.names import DEPARTMENTS, DOMAIN, FAMILY, GIVEN, TENANT_ID, TOPICS
from migrator.sandbox.recurrence import (
    DAYS,
    NO_DATE,
    WINDOWS_TO_IANA,
    first_date,
    format_local,
    format_utc,
    from_utc,
    occurrence_starts,
    parse_local,
    to_utc,
)

HOME_ZONE = "W. Europe Standard Time"
ZONES = (HOME_ZONE, "GMT Standard Time", "Pacific Standard Time", "UTC")
NEVER = "0001-01-01T00:00:00Z"  # Graph's "no time" for a response that was not given


@dataclass
class CalendarData:
    calendar: dict  # Graph v1.0 `calendar` JSON
    events: list[dict]  # singleInstance, seriesMaster and exception events stored in the calendar
    cancelled: dict[str, list[str]] = field(default_factory=dict)  # master id -> local original starts


# --- ids ----------------------------------------------------------------------------------------
# Exchange ids are base64url of a binary entry id: a fixed head (hence "AAMkA"), the mailbox GUID as
# text, then store, folder and item keys. Imitating that layout makes ids the right length and
# shape, and lets ids of one mailbox share their long prefix as real ones do.

_HEAD = b"\x00\x03\x24\x00"


@dataclass(frozen=True)
class _Mailbox:
    text: bytes  # mailbox GUID as ASCII
    store: bytes  # 16 bytes
    database: bytes  # 16 bytes

    @classmethod
    def of(cls, user: dict) -> _Mailbox:
        """Derived from the user id rather than from `rng`, so `make_event` can place events in the
        same mailbox without knowing how `build_calendars` consumed its random numbers."""
        digest = hashlib.sha256(("mailbox:" + user["id"]).encode()).digest()
        text = _uuid_text(digest[:16]).encode()
        return cls(text, digest[16:32], hashlib.sha256(digest).digest()[:16])

    def folder_key(self, index: int) -> bytes:
        return self.database + struct.pack(">HI", 0, 0x0D + index * 0x100)  # 22 bytes

    def calendar_id(self, index: int) -> str:
        raw = _HEAD + self.text + b"\x00\x2e" + bytes(5) + self.store + b"\x01\x00" + self.folder_key(index) + bytes(2)
        return _b64url(raw)

    def event_id(self, rng: random.Random, folder: int) -> str:
        item = self.database + rng.randbytes(6)
        raw = (
            _HEAD + self.text + b"\x00\x46" + bytes(5) + self.store + b"\x07\x00"
            + self.folder_key(folder) + bytes(2) + item + bytes(2)
        )
        return _b64url(raw)


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


# An occurrence id is its master's id bytes followed by this trailer: the original start (Unix
# seconds), the length of the master part and how that part is held (1: the master id was
# base64url, as all ids made here are; 2: it was some other text, e.g. an id a server made up).
_TRAILER = struct.Struct(">qHB")


def _id_bytes(event_id: str) -> tuple[bytes, int]:
    try:
        raw = base64.urlsafe_b64decode(event_id)
        if _b64url(raw) == event_id:
            return raw, 1
    except (ValueError, TypeError):
        pass
    return event_id.encode(), 2


def occurrence_id(master_id: str, original_start: datetime) -> str:
    """The id of one occurrence (or of the exception that replaced it): the master's id with the
    original start appended, so it is stable and `parse_occurrence_id` can take it apart again."""
    raw, kind = _id_bytes(master_id)
    return _b64url(raw + _TRAILER.pack(int(original_start.timestamp()), len(raw), kind))


def parse_occurrence_id(event_id: str) -> tuple[str, datetime] | None:
    """(master id, original start in UTC) for an occurrence or exception id, else None."""
    raw, kind = _id_bytes(event_id)
    if kind != 1 or len(raw) < _TRAILER.size:
        return None
    seconds, length, head_kind = _TRAILER.unpack(raw[-_TRAILER.size :])
    if length != len(raw) - _TRAILER.size or head_kind not in (1, 2):
        return None
    head = raw[:length]
    try:
        master_id = _b64url(head) if head_kind == 1 else head.decode()
        return master_id, datetime.fromtimestamp(seconds, UTC)
    except (UnicodeDecodeError, ValueError, OverflowError, OSError):
        return None


def _change_key(rng: random.Random, database: bytes) -> str:
    """Standard base64 (with + and /), like Exchange change keys, which start "DwAAABYAAAA"."""
    return base64.b64encode(b"\x0f\x00\x00\x00\x16\x00\x00\x00" + database + rng.randbytes(6)).decode()


def _ical_uid(rng: random.Random, created: datetime) -> str:
    """An Outlook global object id: fixed class id, zero instance date, creation FILETIME, a GUID."""
    filetime = int((created - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)
    return (
        "040000008200E00074C5B7101A82E008" + "00000000" + struct.pack("<Q", filetime).hex().upper()
        + "0" * 16 + "10000000" + rng.randbytes(16).hex().upper()
    )


def _web_link(event_id: str) -> str:
    return f"https://outlook.office365.com/owa/?itemid={quote(event_id, safe='')}&exvsurl=1&path=/calendar/item"


def _timestamp(value: datetime) -> str:
    """createdDateTime / lastModifiedDateTime, with the seven fractional digits Graph writes."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0Z"


# --- people, places, words ------------------------------------------------------------------------

ROOMS = ("Vergaderruimte 2.14", "Vergaderzaal De Hofvijver", "Stiltekamer 4.02", "Projectruimte 3.07")
PLACES = (
    ("Kantoor Utrecht, zaal Dom", "Kanaalweg 17", "Utrecht", "3526 KL"),
    ("Provinciehuis, foyer", "Stationsplein 101", "Zwolle", "8011 CW"),
    ("Congrescentrum De Linde", "Lindelaan 5", "Amersfoort", "3811 AA"),
)
CATEGORIES = ("Blauwe categorie", "Groene categorie", "Oranje categorie", "Paarse categorie", "Rode categorie")


def _address(person: dict) -> dict:
    return {"name": person["displayName"], "address": person.get("mail") or person["userPrincipalName"]}


def _room(name: str) -> dict:
    slug = name.lower().replace(" ", "-")
    return {"name": name, "address": f"{slug}@{DOMAIN}"}


def _room_location(name: str) -> dict:
    room = _room(name)
    return {
        "displayName": name,
        "locationType": "conferenceRoom",
        "locationEmailAddress": room["address"],
        "uniqueId": room["address"],
        "uniqueIdType": "directory",
        "address": {},
        "coordinates": {},
    }


def _place_location(place: tuple[str, str, str, str]) -> dict:
    name, street, city, postcode = place
    return {
        "displayName": name,
        "locationType": "default",
        "uniqueId": name,
        "uniqueIdType": "private",
        "address": {"street": street, "city": city, "postalCode": postcode, "countryOrRegion": "Nederland"},
        "coordinates": {},
    }


def _no_location() -> dict:
    return {"displayName": "", "locationType": "default", "uniqueIdType": "unknown", "address": {}, "coordinates": {}}


def _join_url(rng: random.Random, organizer_id: str) -> str:
    thread = base64.b64encode(rng.randbytes(24)).decode().replace("+", "").replace("/", "")[:32]
    context = f'{{"Tid":"{TENANT_ID}","Oid":"{organizer_id}"}}'
    meeting = f"19%3ameeting_{thread}%40thread.v2"
    return f"https://teams.microsoft.com/l/meetup-join/{meeting}/0?context={quote(context, safe='')}"


def _body(text: str, join_url: str | None) -> tuple[dict, str]:
    """(body, bodyPreview): HTML as Outlook writes it, and its text, at most 255 characters."""
    parts = [f"<div>{html.escape(text)}</div>"]
    plain = [text]
    if join_url:
        parts.append(
            '<div><hr><div><span style="font-size:24px">Microsoft Teams-vergadering</span></div>'
            f'<div><a href="{html.escape(join_url)}">Nu deelnemen aan de vergadering</a></div><hr></div>'
        )
        plain.append("________________ Microsoft Teams-vergadering Nu deelnemen aan de vergadering")
    content = (
        '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>\r\n'
        "<body>\r\n" + "\r\n".join(parts) + "\r\n</body>\r\n</html>\r\n"
    )
    return {"contentType": "html", "content": content}, " ".join(plain)[:255]


# --- one event -------------------------------------------------------------------------------------


@dataclass
class _Context:
    rng: random.Random
    user: dict
    colleagues: list[dict]
    mailbox: _Mailbox
    folder: int = 0

    @classmethod
    def of(cls, rng: random.Random, user: dict, colleagues: list[dict], folder: int = 0) -> _Context:
        others = [c for c in colleagues if c.get("id") != user.get("id")]
        return cls(rng, user, others, _Mailbox.of(user), folder)

    def pick(self, count: int) -> list[dict]:
        return self.rng.sample(self.colleagues, min(count, len(self.colleagues)))


@dataclass
class _Spec:
    """What varies between events; everything else is filled in the same way for all of them."""

    subject: str
    start: datetime  # local wall-clock time in `zone`
    duration: timedelta
    zone: str = HOME_ZONE
    all_day: bool = False
    organizer: dict | None = None  # None: the calendar's owner organizes
    invitees: int = 0
    room: str | None = None
    place: tuple[str, str, str, str] | None = None
    online: bool = False
    sensitivity: str = "normal"
    show_as: str = "busy"
    importance: str = "normal"
    categories: tuple[str, ...] = ()
    reminder: int | None = 15
    text: str = ""


def _response(rng: random.Random, choices: tuple[str, ...], after: datetime) -> dict:
    answer = rng.choice(choices)
    if answer in ("none", "notResponded"):
        return {"response": answer, "time": NEVER}
    return {"response": answer, "time": format_utc(after + timedelta(seconds=rng.randint(300, 240_000)))}


def _attendees(ctx: _Context, spec: _Spec, created: datetime) -> list[dict]:
    rng = ctx.rng
    people = ctx.pick(spec.invitees)
    if spec.organizer is not None:
        people = [p for p in people if p is not spec.organizer] + [ctx.user]
    found = []
    for person in people:
        kind = "optional" if rng.random() < 0.25 else "required"
        answers = ("accepted", "tentativelyAccepted", "declined", "none", "notResponded")
        status = _response(rng, answers, created) if spec.organizer is None else {"response": "none", "time": NEVER}
        found.append({"type": kind, "status": status, "emailAddress": _address(person)})
    if spec.room:  # rooms answer for themselves, and always accept here
        status = _response(rng, ("accepted",), created)
        found.append({"type": "resource", "status": status, "emailAddress": _room(spec.room)})
    return found


def _location(spec: _Spec) -> dict | None:
    if spec.room:
        return _room_location(spec.room)
    if spec.place:
        return _place_location(spec.place)
    if spec.online:  # Outlook fills the location of an online-only meeting with the meeting kind
        name = "Microsoft Teams-vergadering"
        return {"displayName": name, "locationType": "default", "uniqueId": name, "uniqueIdType": "private"}
    return None


def _own_response(ctx: _Context, spec: _Spec, created: datetime) -> dict:
    """The owner's responseStatus: "organizer" on what they organize, else their answer, if any."""
    if spec.organizer is None:
        return {"response": "organizer", "time": NEVER}
    return _response(ctx.rng, ("accepted", "tentativelyAccepted", "notResponded", "none"), created)


def _build(ctx: _Context, spec: _Spec, created: datetime) -> dict:
    """A singleInstance event; series and exceptions are derived from it."""
    rng = ctx.rng
    event_id = ctx.mailbox.event_id(rng, ctx.folder)
    organizer = spec.organizer or ctx.user
    join_url = _join_url(rng, organizer["id"]) if spec.online else None
    body, preview = _body(spec.text or spec.subject, join_url)
    location = _location(spec)
    modified = created + timedelta(seconds=rng.randint(0, 180_000), microseconds=rng.randint(0, 999_999))
    change_key = _change_key(rng, ctx.mailbox.database)
    mine = spec.organizer is None
    end = spec.start + spec.duration
    return {
        "@odata.etag": f'W/"{change_key}"',
        "id": event_id,
        "createdDateTime": _timestamp(created),
        "lastModifiedDateTime": _timestamp(modified),
        "changeKey": change_key,
        "categories": list(spec.categories),
        "transactionId": None,
        "originalStartTimeZone": spec.zone,
        "originalEndTimeZone": spec.zone,
        "iCalUId": _ical_uid(rng, created),
        "reminderMinutesBeforeStart": spec.reminder if spec.reminder is not None else 15,
        "isReminderOn": spec.reminder is not None,
        "hasAttachments": False,
        "subject": spec.subject,
        "bodyPreview": preview,
        "importance": spec.importance,
        "sensitivity": spec.sensitivity,
        "isAllDay": spec.all_day,
        "isCancelled": False,
        "isOrganizer": mine,
        "responseRequested": True,
        "seriesMasterId": None,
        "showAs": spec.show_as,
        "type": "singleInstance",
        "webLink": _web_link(event_id),
        "onlineMeetingUrl": None,
        "isOnlineMeeting": spec.online,
        "onlineMeetingProvider": "teamsForBusiness" if spec.online else "unknown",
        "allowNewTimeProposals": True,
        "isDraft": False,
        "hideAttendees": False,
        "responseStatus": _own_response(ctx, spec, created),
        "body": body,
        "start": {"dateTime": format_local(spec.start), "timeZone": spec.zone},
        "end": {"dateTime": format_local(end), "timeZone": spec.zone},
        "location": location or _no_location(),
        "locations": [location] if location else [],
        "recurrence": None,
        "attendees": _attendees(ctx, spec, created),
        "organizer": {"emailAddress": _address(organizer)},
        "onlineMeeting": {"joinUrl": join_url} if join_url else None,
    }


def _created_before(rng: random.Random, start: datetime, zone_name: str) -> datetime:
    """Created days or weeks before the event, never before 2025 (the tenant's first year)."""
    created = to_utc(start, zone_name) - timedelta(days=rng.randint(2, 60), seconds=rng.randint(0, 86_399))
    created = max(created, datetime(2025, 1, 2, 8, 30, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 600_000)))
    return created + timedelta(microseconds=rng.randint(0, 999_999))


def _single(ctx: _Context, spec: _Spec) -> dict:
    return _build(ctx, spec, _created_before(ctx.rng, spec.start, spec.zone))


# --- series ---------------------------------------------------------------------------------------


def full_pattern(pattern: dict) -> dict:
    """A pattern as Graph returns it: every property present, zeros and defaults where unused."""
    full = {
        "type": pattern["type"],
        "interval": pattern.get("interval", 1),
        "month": pattern.get("month", 0),
        "dayOfMonth": pattern.get("dayOfMonth", 0),
    }
    if pattern["type"] in ("weekly", "relativeMonthly", "relativeYearly"):
        full["daysOfWeek"] = list(pattern["daysOfWeek"])
    full["firstDayOfWeek"] = pattern.get("firstDayOfWeek", "sunday")
    full["index"] = pattern.get("index", "first")
    return full


def full_range(range_: dict, start: date, zone_name: str) -> dict:
    """A range as Graph returns it: an unused endDate reads 0001-01-01, an unused count 0."""
    return {
        "type": range_["type"],
        "startDate": start.isoformat(),
        "endDate": range_["endDate"] if range_["type"] == "endDate" else NO_DATE,
        "recurrenceTimeZone": zone_name,
        "numberOfOccurrences": range_.get("numberOfOccurrences", 0) if range_["type"] == "numbered" else 0,
    }


def _series(ctx: _Context, spec: _Spec, pattern: dict, range_: dict) -> dict:
    """A series master. Its start moves to the first date the pattern yields on or after
    `spec.start`, which is where Outlook puts it too, and range.startDate follows."""
    recurrence = {"pattern": full_pattern(pattern), "range": full_range(range_, spec.start.date(), spec.zone)}
    first = first_date(recurrence)
    if first is None:
        raise ValueError(f"recurrence yields no occurrence: {recurrence}")
    spec.start = datetime.combine(first, spec.start.time())
    recurrence["range"]["startDate"] = first.isoformat()
    event = _single(ctx, spec)
    event["type"] = "seriesMaster"
    event["recurrence"] = recurrence
    return event


def _nth_occurrence(master: dict, n: int) -> datetime:
    """The local original start of the n-th occurrence (0-based)."""
    start = parse_local(master["start"]["dateTime"])
    far = datetime(2200, 1, 1, tzinfo=UTC)
    starts = occurrence_starts(master["recurrence"], start.time(), _series_zone(master), far)
    for index, (local, _) in enumerate(starts):
        if index == n:
            return local
    raise IndexError(n)


def make_exception(
    rng: random.Random,
    master: dict,
    original_start: datetime,
    *,
    start: datetime | None = None,
    duration: timedelta | None = None,
    subject: str | None = None,
    location: dict | None = None,
) -> dict:
    """An exception replacing the occurrence that originally started at `original_start` (local
    wall-clock time in the series' zone); the new start is local time in that zone too."""
    zone_name = _series_zone(master)
    base_start, base_end = parse_local(master["start"]["dateTime"]), parse_local(master["end"]["dateTime"])
    start = original_start if start is None else start
    duration = base_end - base_start if duration is None else duration
    original = to_utc(original_start, zone_name)
    event = copy.deepcopy(master)
    event_id = occurrence_id(master["id"], original)
    modified = datetime.fromisoformat(master["lastModifiedDateTime"])
    modified += timedelta(days=rng.randint(1, 20), seconds=rng.randint(0, 36_000), microseconds=rng.randint(0, 999_999))
    change_key = _change_key(rng, _database_of(master))
    event.update({
        "@odata.etag": f'W/"{change_key}"',
        "id": event_id,
        "lastModifiedDateTime": _timestamp(modified),
        "changeKey": change_key,
        "seriesMasterId": master["id"],
        "type": "exception",
        "webLink": _web_link(event_id),
        "start": {"dateTime": format_local(start), "timeZone": zone_name},
        "end": {"dateTime": format_local(start + duration), "timeZone": zone_name},
        "recurrence": None,
        "originalStart": format_utc(original),
    })
    if subject is not None:
        event["subject"] = subject
    if location is not None:
        event["location"], event["locations"] = location, [location]
    return event


def _database_of(event: dict) -> bytes:
    """The mailbox part of an event's change key, so an exception's key looks like its master's."""
    try:
        key = base64.b64decode(event.get("changeKey") or "", validate=True)
    except ValueError:
        key = b""
    return key[8:24] if len(key) >= 24 else hashlib.sha256(event["id"].encode()).digest()[:16]


def _series_zone(master: dict) -> str:
    return master["recurrence"]["range"].get("recurrenceTimeZone") or master["start"]["timeZone"]


# --- expansion ------------------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    """Query bounds without an offset count as UTC, as Graph reads startDateTime/endDateTime."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def bounds(event: dict) -> tuple[datetime, datetime]:
    """The event's start and end as UTC instants."""
    start, end = event["start"], event["end"]
    return (
        to_utc(parse_local(start["dateTime"]), start["timeZone"]),
        to_utc(parse_local(end["dateTime"]), end["timeZone"]),
    )


def _overlaps(span: tuple[datetime, datetime], start: datetime, end: datetime) -> bool:
    """Graph's window test: starts before the window ends and ends after it starts (a zero-length
    event counts when it starts inside the window)."""
    first, last = span
    return first < end and (last > start or (first == last and first >= start))


def _occurrence(master: dict, local: datetime, instant: datetime, duration: timedelta) -> dict:
    zone_name = _series_zone(master)
    event = copy.deepcopy(master)
    event_id = occurrence_id(master["id"], instant)
    event.update({
        "id": event_id,
        "seriesMasterId": master["id"],
        "type": "occurrence",
        "webLink": _web_link(event_id),
        "start": {"dateTime": format_local(local), "timeZone": zone_name},
        "end": {"dateTime": format_local(local + duration), "timeZone": zone_name},
        "recurrence": None,
        "originalStart": format_utc(instant),
    })
    return event


def _exceptions_of(calendar: CalendarData, master_id: str) -> list[dict]:
    return [e for e in calendar.events if e.get("type") == "exception" and e.get("seriesMasterId") == master_id]


def _sort_key(event: dict) -> tuple[datetime, str]:
    return bounds(event)[0], event["id"]


def instances(calendar: CalendarData, master: dict, start: datetime, end: datetime) -> list[dict]:
    """Occurrences and exceptions of the series that overlap [start, end), cancelled ones left out,
    in start order; start/end in the series' zone (see `with_time_zone`)."""
    start, end = _aware(start), _aware(end)
    local_start, local_end = parse_local(master["start"]["dateTime"]), parse_local(master["end"]["dateTime"])
    duration = local_end - local_start
    cancelled = set(calendar.cancelled.get(master["id"], ()))
    exceptions = _exceptions_of(calendar, master["id"])
    replaced = {e["originalStart"] for e in exceptions}
    found = [copy.deepcopy(e) for e in exceptions if _overlaps(bounds(e), start, end)]
    zone_name = _series_zone(master)
    for local, instant in occurrence_starts(master["recurrence"], local_start.time(), zone_name, end):
        if format_local(local) in cancelled or format_utc(instant) in replaced:
            continue
        span = (instant, to_utc(local + duration, zone_name))
        if _overlaps(span, start, end):
            found.append(_occurrence(master, local, instant, duration))
    return sorted(found, key=_sort_key)


def calendar_view(calendar: CalendarData, start: datetime, end: datetime) -> list[dict]:
    """Single events, occurrences and exceptions overlapping [start, end), in start order."""
    start, end = _aware(start), _aware(end)
    singles = (e for e in calendar.events if e.get("type") == "singleInstance")
    found = [copy.deepcopy(e) for e in singles if _overlaps(bounds(e), start, end)]
    for master in calendar.events:
        if master.get("type") == "seriesMaster":
            found += instances(calendar, master, start, end)
    return sorted(found, key=_sort_key)


def listed_events(calendar: CalendarData) -> list[dict]:
    """What GET .../events lists: single events and series masters; exceptions only show up in
    instances and calendarView."""
    return [e for e in calendar.events if e.get("type") in ("singleInstance", "seriesMaster")]


def find_event(calendar: CalendarData, event_id: str) -> dict | None:
    """GET .../events/{id}: the stored event itself (so an update can change it in place), or a
    computed occurrence if the series really has a non-cancelled one at that original start."""
    for event in calendar.events:
        if event["id"] == event_id:
            return event
    parsed = parse_occurrence_id(event_id)
    if parsed is None:
        return None
    master_id, original = parsed
    master = next((e for e in calendar.events if e["id"] == master_id and e.get("type") == "seriesMaster"), None)
    if master is None:
        return None
    found = instances(calendar, master, original, original + timedelta(seconds=1))
    return next((e for e in found if e["id"] == event_id), None)


def cancel_occurrence(calendar: CalendarData, event_id: str) -> bool:
    """DELETE on an occurrence or exception: the series remembers its original start as cancelled
    (and an exception is dropped). False when the id names no live occurrence of a stored series."""
    parsed = parse_occurrence_id(event_id)
    if parsed is None or find_event(calendar, event_id) is None:
        return False
    master_id, original = parsed
    master = next(e for e in calendar.events if e["id"] == master_id)
    calendar.events[:] = [e for e in calendar.events if e["id"] != event_id]
    local = from_utc(original, _series_zone(master))
    calendar.cancelled.setdefault(master_id, []).append(format_local(local))
    return True


def with_time_zone(event: dict, zone_name: str = "UTC", tz: tzinfo | None = None) -> dict:
    """A copy with start/end expressed in `zone_name`, as Graph answers (UTC by default, else the
    zone of `Prefer: outlook.timezone`). Pass `tz` for a zone outside this module's small table.
    All-day events keep their midnight dates: they float, whatever zone is asked for."""
    copy_ = copy.deepcopy(event)
    for key in ("start", "end"):
        value = copy_[key]
        if not event.get("isAllDay"):
            instant = to_utc(parse_local(value["dateTime"]), value["timeZone"])
            local = instant.astimezone(tz).replace(tzinfo=None) if tz else from_utc(instant, zone_name)
            value["dateTime"] = format_local(local)
        value["timeZone"] = zone_name
    return copy_


# --- what a user's calendars hold ---------------------------------------------------------------------


def _calendar_json(ctx: _Context, index: int, name: str, color: str, hex_color: str) -> dict:
    primary = index == 0
    return {
        "id": ctx.mailbox.calendar_id(index),
        "name": name,
        "color": color,
        "hexColor": hex_color,
        "isDefaultCalendar": primary,
        "changeKey": _change_key(ctx.rng, ctx.mailbox.database),
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": primary,  # only invitations sent from the primary calendar tally responses
        "isRemovable": not primary,
        "owner": _address(ctx.user),
    }


def _weekday_on_or_after(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def _random_day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randint(0, (last - first).days))


def _organizer(ctx: _Context, chance: float) -> dict | None:
    """A colleague organizes with the given chance, else the owner (also when there is nobody else)."""
    if ctx.colleagues and ctx.rng.random() < chance:
        return ctx.rng.choice(ctx.colleagues)
    return None


def _default_series(ctx: _Context, data: CalendarData) -> None:
    """One series per pattern type, every range type, a few crossing daylight-saving changes."""
    rng = ctx.rng
    dept, topic = rng.choice(DEPARTMENTS), rng.choice(TOPICS)

    # weekly, two days, Monday-first weeks, no end; crosses both 2025-10-26 and 2026-03-29 (W. Europe)
    monday = _weekday_on_or_after(date(2025, 9, 1), 0) + timedelta(weeks=rng.randint(0, 2))
    team = _series(ctx, _Spec(
        f"Werkoverleg {dept}", datetime.combine(monday, datetime.min.time()).replace(hour=9, minute=30),
        timedelta(minutes=30), invitees=4, room=rng.choice(ROOMS), online=True, categories=("Blauwe categorie",),
        text=f"Wekelijks werkoverleg van {dept}: lopende zaken en planning.",
    ), {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"], "firstDayOfWeek": "monday"},
        {"type": "noEnd"})
    _modify(ctx, data, team, moved=[(3, timedelta(hours=1), "Werkoverleg (verschoven)"), (9, timedelta(days=1), None)],
            cancelled=[16, 17])

    # weekly every other Tuesday, Sunday-first weeks, end date; crosses 2026-03-29 (GMT Standard Time)
    tuesday = _weekday_on_or_after(date(2026, 1, 5), 1) + timedelta(weeks=rng.randint(0, 3))
    london = _series(ctx, _Spec(
        "Afstemming met Londen", datetime.combine(tuesday, datetime.min.time()).replace(hour=14),
        timedelta(minutes=45), zone="GMT Standard Time", organizer=_organizer(ctx, 0.8), invitees=2, online=True,
        text="Tweewekelijkse afstemming met het team in Londen.",
    ), {"type": "weekly", "interval": 2, "daysOfWeek": ["tuesday"], "firstDayOfWeek": "sunday"},
        {"type": "endDate", "endDate": date(2026, 6, 30).isoformat()})
    _modify(ctx, data, london, moved=[(2, timedelta(minutes=30), None)], cancelled=[4])

    # daily, every 2 days, numbered; 8 occurrences that straddle 2026-03-29 (W. Europe)
    training = _series(ctx, _Spec(
        f"Training {topic}", datetime(2026, 3, 20 + rng.randint(0, 6), 9, 0), timedelta(hours=3),
        room=rng.choice(ROOMS), invitees=3, show_as="busy", categories=("Groene categorie",),
        text=f"Trainingsreeks over {topic}.",
    ), {"type": "daily", "interval": 2}, {"type": "numbered", "numberOfOccurrences": 8})
    _modify(ctx, data, training, moved=[], cancelled=[rng.randint(1, 6)])

    # absoluteMonthly in Pacific time, end date; crosses 2025-11-02 and 2026-03-08
    report = _series(ctx, _Spec(
        "Maandrapportage Noord-Amerika", datetime(2025, 10, 1, 8, 0), timedelta(hours=1),
        zone="Pacific Standard Time", organizer=_organizer(ctx, 1.0), invitees=2, online=True,
        show_as="tentative", reminder=30,
    ), {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": rng.randint(3, 25)},
        {"type": "endDate", "endDate": "2026-12-31"})
    data.events.append(report)

    # relativeMonthly, last Friday, numbered
    closing = _series(ctx, _Spec(
        "Maandafsluiting", datetime(2026, 1, 1, 16, 0), timedelta(hours=1), invitees=3,
        place=rng.choice(PLACES), importance="high", categories=("Oranje categorie",),
    ), {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
        {"type": "numbered", "numberOfOccurrences": 12})
    _modify(ctx, data, closing, moved=[(5, timedelta(days=-1), "Maandafsluiting (donderdag)")], cancelled=[])

    # relativeMonthly every other month, first..fourth, a single day or "weekday"; UTC, no end
    index = rng.choice(("first", "second", "third", "fourth"))
    days = rng.choice((["tuesday"], ["wednesday"], list(DAYS[:5])))
    review = _series(ctx, _Spec(
        f"Review {topic}", datetime(2025, 7, 1, 13, 0), timedelta(hours=1), zone="UTC",
        organizer=_organizer(ctx, 0.5), invitees=3, online=True,
    ), {"type": "relativeMonthly", "interval": 2, "daysOfWeek": days, "index": index}, {"type": "noEnd"})
    data.events.append(review)

    # absoluteYearly all-day birthday, no end
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    born = date(2025, rng.randint(1, 12), rng.randint(1, 28))
    birthday = _series(ctx, _Spec(
        f"Verjaardag {given} {family}", datetime.combine(born, datetime.min.time()), timedelta(days=1),
        all_day=True, show_as="free", sensitivity="personal", reminder=1080, categories=("Paarse categorie",),
    ), {"type": "absoluteYearly", "interval": 1, "month": born.month, "dayOfMonth": born.day}, {"type": "noEnd"})
    data.events.append(birthday)

    # relativeYearly, third Tuesday of September (budget day), numbered
    budget = _series(ctx, _Spec(
        "Prinsjesdag: toelichting begroting", datetime(2025, 1, 1, 15, 0), timedelta(hours=2),
        invitees=5, room=rng.choice(ROOMS), online=True, importance="high",
    ), {"type": "relativeYearly", "interval": 1, "month": 9, "daysOfWeek": ["tuesday"], "index": "third"},
        {"type": "numbered", "numberOfOccurrences": 3})
    data.events.append(budget)


def _modify(
    ctx: _Context,
    data: CalendarData,
    master: dict,
    *,
    moved: list[tuple[int, timedelta, str | None]],
    cancelled: list[int],
) -> None:
    """Stores the master, an exception for each (occurrence number, shift, new subject) and records
    the cancelled occurrence numbers."""
    data.events.append(master)
    for n, shift, subject in moved:
        original = _nth_occurrence(master, n)
        location = _room_location(ctx.rng.choice(ROOMS)) if subject is None else None
        data.events.append(make_exception(ctx.rng, master, original, start=original + shift, subject=subject,
                                          location=location))
    if cancelled:
        data.cancelled[master["id"]] = [format_local(_nth_occurrence(master, n)) for n in cancelled]


def _weighted(rng: random.Random, table: dict[str, int]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _working_time(rng: random.Random, first: date, last: date) -> datetime:
    day = _random_day(rng, first, last)
    if day.weekday() >= 5:
        day += timedelta(days=7 - day.weekday())
    return datetime.combine(day, datetime.min.time()).replace(hour=rng.randint(8, 16), minute=rng.choice((0, 30)))


def _meeting(ctx: _Context, start: datetime, zone_name: str) -> _Spec:
    """An ordinary meeting whose properties vary over everything Graph allows."""
    rng = ctx.rng
    topic = rng.choice(TOPICS)
    where = rng.random()
    return _Spec(
        subject=rng.choice(("Overleg", "Bespreking", "Voorbereiding", "Terugkoppeling")) + f" {topic}",
        start=start,
        duration=timedelta(minutes=rng.choice((30, 45, 60, 90, 120))),
        zone=zone_name,
        organizer=_organizer(ctx, 0.5),
        invitees=rng.randint(1, 5),
        room=rng.choice(ROOMS) if where < 0.4 else None,
        place=rng.choice(PLACES) if 0.4 <= where < 0.6 else None,
        online=rng.random() < 0.6,
        sensitivity=_weighted(rng, {"normal": 8, "private": 1, "confidential": 1}),
        show_as=_weighted(rng, {"busy": 15, "tentative": 3, "workingElsewhere": 2}),
        importance=_weighted(rng, {"normal": 8, "low": 1, "high": 1}),
        categories=tuple(rng.sample(CATEGORIES, rng.choice((0, 0, 1, 2)))),
        reminder=rng.choice((15, 15, 30, 5, 0, None)),
        text=f"Agenda: stand van zaken {topic}, besluiten en actiepunten.",
    )


def _day_span(first: date, days: int) -> tuple[datetime, timedelta]:
    """All-day events run from midnight to the midnight after their last day (end exclusive)."""
    return datetime.combine(first, datetime.min.time()), timedelta(days=days)


def _default_singles(ctx: _Context, data: CalendarData) -> None:
    rng = ctx.rng
    for _ in range(rng.randint(5, 9)):
        zone_name = _weighted(rng, {HOME_ZONE: 4, "GMT Standard Time": 1, "Pacific Standard Time": 1, "UTC": 1})
        start = _working_time(rng, date(2025, 6, 2), date(2027, 6, 25))
        data.events.append(_single(ctx, _meeting(ctx, start, zone_name)))

    data.events.append(_single(ctx, _Spec(
        "Tandarts", _working_time(rng, date(2025, 9, 1), date(2026, 12, 18)), timedelta(minutes=45),
        sensitivity="private", show_as="oof", reminder=60, categories=("Rode categorie",),
        text="Controle, daarna direct terug naar kantoor.",
    )))
    # On the day clocks go forward in Europe, after the jump.
    data.events.append(_single(ctx, _Spec(
        "Stadsloop (vrijwilligers)", datetime(2026, 3, 29, 10, 30), timedelta(hours=3),
        sensitivity="personal", show_as="free", place=rng.choice(PLACES),
    )))
    # In London on the day clocks go back there.
    data.events.append(_single(ctx, _Spec(
        "Terugreis Londen", datetime(2025, 10, 26, 15, 0), timedelta(hours=4), zone="GMT Standard Time",
        show_as="oof", reminder=120,
    )))
    start, length = _day_span(_random_day(rng, date(2025, 9, 1), date(2026, 6, 30)), 1)
    data.events.append(_single(ctx, _Spec(
        f"Heidag {rng.choice(DEPARTMENTS)}", start, length, all_day=True, show_as="workingElsewhere",
        place=rng.choice(PLACES), invitees=4, reminder=1080,
    )))
    holiday = _weekday_on_or_after(_random_day(rng, date(2026, 7, 1), date(2026, 8, 10)), 0)
    start, length = _day_span(holiday, rng.choice((5, 12)))
    data.events.append(_single(ctx, _Spec("Vakantie", start, length, all_day=True, show_as="oof", reminder=None)))
    start, length = _day_span(date(2026, 4, 27), 1)
    data.events.append(_single(ctx, _Spec(
        "Koningsdag", start, length, all_day=True, show_as="free", reminder=None, categories=("Oranje categorie",),
    )))
    cancelled = _meeting(ctx, _working_time(rng, date(2026, 1, 5), date(2026, 11, 27)), HOME_ZONE)
    cancelled.organizer = _organizer(ctx, 1.0)
    cancelled.subject, cancelled.show_as = "Geannuleerd: " + cancelled.subject, "free"
    event = _single(ctx, cancelled)
    event["isCancelled"] = True
    data.events.append(event)


def _project_calendar(ctx: _Context) -> CalendarData:
    rng = ctx.rng
    topic = rng.choice(TOPICS)
    data = CalendarData(_calendar_json(ctx, 1, f"Project {topic}", "lightGreen", "#87d28e"), [])
    # weekly every third week on two days, Monday-first weeks, numbered
    sync = _series(ctx, _Spec(
        f"Projectsync {topic}", datetime(2026, 9, 1, 11, 0), timedelta(minutes=30), invitees=3, online=True,
        categories=("Groene categorie",),
    ), {"type": "weekly", "interval": 3, "daysOfWeek": ["wednesday", "friday"], "firstDayOfWeek": "monday"},
        {"type": "numbered", "numberOfOccurrences": 9})
    _modify(ctx, data, sync, moved=[], cancelled=[rng.randint(2, 7)])
    data.events.append(_single(ctx, _meeting(ctx, datetime(2026, 8, 24, 10, 0), HOME_ZONE)))
    start, length = _day_span(date(2026, 12, 4) + timedelta(days=rng.randint(0, 7)), 1)
    data.events.append(_single(ctx, _Spec(f"Oplevering {topic}", start, length, all_day=True, show_as="free",
                                          importance="high", reminder=1080)))
    start = _working_time(rng, date(2026, 9, 1), date(2026, 12, 1))
    data.events.append(_single(ctx, _meeting(ctx, start, "GMT Standard Time")))
    return data


def build_calendars(rng: random.Random, user: dict, colleagues: list[dict]) -> list[CalendarData]:
    """The user's default calendar ("Agenda") first, then one project calendar."""
    ctx = _Context.of(rng, user, colleagues, folder=0)
    agenda = CalendarData(_calendar_json(ctx, 0, "Agenda", "auto", ""), [])
    _default_series(ctx, agenda)
    _default_singles(ctx, agenda)
    ctx.folder = 1
    return [agenda, _project_calendar(ctx)]


# --- for tests that change the tenant -------------------------------------------------------------

_IANA_TO_WINDOWS = {iana: windows for windows, iana in WINDOWS_TO_IANA.items()}


def _zone_name_of(start: datetime) -> tuple[datetime, str]:
    """(local wall-clock start, Windows zone) for a datetime: naive counts as UTC, as in Graph queries."""
    if start.tzinfo is None:
        return start, "UTC"
    key = getattr(start.tzinfo, "key", None)
    if key in _IANA_TO_WINDOWS:
        return start.replace(tzinfo=None), _IANA_TO_WINDOWS[key]
    return start.astimezone(UTC).replace(tzinfo=None), "UTC"


def make_event(rng: random.Random, user: dict, colleagues: list[dict], *, start: datetime) -> dict:
    """A fresh single meeting in the user's default calendar. A naive `start` is UTC; an aware one
    keeps its zone when it is one of this module's zones, else it is stored in UTC."""
    local, zone_name = _zone_name_of(start)
    ctx = _Context.of(rng, user, colleagues)
    return _single(ctx, _meeting(ctx, local, zone_name))


def make_series(
    rng: random.Random,
    user: dict,
    colleagues: list[dict],
    *,
    start: datetime,
    duration: timedelta,
    time_zone: str,
    pattern: dict,
    range_: dict,
    subject: str | None = None,
    all_day: bool = False,
) -> dict:
    """A series master in the default calendar. `start` is local wall-clock time in `time_zone`;
    `pattern` and `range_` need only the properties their type uses (range_ without startDate or
    recurrenceTimeZone), and come back in Graph's full form."""
    ctx = _Context.of(rng, user, colleagues)
    spec = _meeting(ctx, start.replace(tzinfo=None), time_zone)
    spec.duration, spec.all_day = duration, all_day
    spec.subject = subject or spec.subject
    return _series(ctx, spec, pattern, range_)
