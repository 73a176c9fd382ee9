"""Calendar: a Graph event, with its series' exceptions and cancellations, becomes one iCalendar
(RFC 5545) object, as a CalDAV server stores one resource per UID.

The object holds the single event or the series master (with RRULE and EXDATE), one VEVENT per
exception (same UID, RECURRENCE-ID), and a VTIMEZONE for every zone used. Wall-clock times stay in
the zone the organizer used (mapped from Windows to IANA names), so a series keeps its local time
across daylight-saving changes as it did in Outlook.

Graph does not say which occurrences were deleted; it only stops listing them. The reader lists
every occurrence and exception of the series (`instances`), so a cancelled occurrence is a start
the RRULE yields that no instance claims as its originalStart. For an open-ended series that is
only known up to the last listed instance; starts beyond it are left to the rule.

Everything is computed from the metadata alone: DTSTAMP is lastModifiedDateTime, not the clock,
so the same event gives the same bytes on every run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from mappings.calendar_check import occurrence_problem
from mappings.recurrence_rules import expand, rrule
from mappings.timezones import Zone, resolve, vtimezone
from migrator.contracts import WorkloadMapping
from migrator.errors import ItemError
from migrator.model import Container, Item, Payload, Skip, Target

PRODID = "-//migrator//EN"
CONTENT_TYPE = "text/calendar; charset=utf-8"

CLASS = {"normal": "PUBLIC", "personal": "PRIVATE", "private": "PRIVATE", "confidential": "CONFIDENTIAL"}
PRIORITY = {"high": 1, "normal": 5, "low": 9}
ROLE = {"required": "REQ-PARTICIPANT", "optional": "OPT-PARTICIPANT", "resource": "NON-PARTICIPANT"}
PARTSTAT = {
    "accepted": "ACCEPTED", "declined": "DECLINED", "tentativelyAccepted": "TENTATIVE",
    "none": "NEEDS-ACTION", "notResponded": "NEEDS-ACTION", "organizer": "ACCEPTED",
}

_SAFE_KEY = re.compile(r"[A-Za-z0-9._-]+")
# Characters a CalDAV collection name cannot hold as they are (path separators, URL syntax,
# characters Windows and Nextcloud reject) and control characters.
_UNSAFE_COLLECTION = re.compile(r'[/\\?#%:*"<>|\x00-\x1f\x7f]')
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?")
_FOLD_AT = 75  # octets a content line may hold before it is folded (RFC 5545 3.1)


# --- the mapping -----------------------------------------------------------------------------------


def calendar_mapping() -> WorkloadMapping:
    return WorkloadMapping(
        container_path=lambda container: (collection_name(container.name),),
        item=map_event,
        verify=occurrence_problem,
    )


def map_event(item: Item, container: Container) -> Target | Skip:
    """The CalDAV target of one single event or series master (exceptions travel inside it)."""
    event = item.metadata.get("event")
    if not isinstance(event, dict):
        raise ItemError("calendar item without its Graph event")
    if event.get("type") in ("occurrence", "exception"):
        return Skip("an occurrence or exception is migrated inside its series master")
    uid = event_uid(event)
    ics = event_to_ics(item.metadata)
    metadata = {"uid": uid, "content_type": CONTENT_TYPE}
    return Target(dest_key=f"{safe_uid(uid)}.ics", payload=Payload.from_bytes(ics), metadata=metadata)


def collection_name(name: str) -> str:
    """A calendar name usable as one path segment: unsafe characters become "_", and a name
    that would be empty or a relative-path dot name becomes "calendar"."""
    cleaned = _UNSAFE_COLLECTION.sub("_", name).strip()
    return "calendar" if cleaned.strip(".") == "" else cleaned


def safe_uid(uid: str) -> str:
    """The UID as a resource name: itself when it only holds URL-path-safe characters (Outlook's
    hex global object ids do), else its UTF-8 in hex, which is as stable and cannot collide."""
    return uid if _SAFE_KEY.fullmatch(uid) and uid.strip(".") else uid.encode().hex()


def event_uid(event: dict[str, Any]) -> str:
    """iCalUId is the same for the organizer's and every attendee's copy and survives reruns;
    the Graph id is only the fallback, being per mailbox."""
    uid = event.get("iCalUId") or event.get("id")
    if not uid:
        raise ItemError("event has neither iCalUId nor id")
    return str(uid)


# --- the iCalendar object --------------------------------------------------------------------------


@dataclass
class _Writer:
    """Content lines being collected, and the years each TZID is used in (for its VTIMEZONE)."""

    lines: list[str] = field(default_factory=list)
    years: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def uses(self, zone: Zone, when: datetime) -> None:
        if zone.tzid is None:
            return
        first, last = self.years.get(zone.tzid, (when.year, when.year))
        self.years[zone.tzid] = (min(first, when.year), max(last, when.year))


def event_to_ics(metadata: dict[str, Any]) -> bytes:
    """One VCALENDAR for a single event or a whole series, as UTF-8 bytes with CRLF line ends."""
    event = metadata["event"]
    writer = _Writer()
    uid = event_uid(event)
    if event.get("type") == "seriesMaster" and event.get("recurrence"):
        _series(writer, uid, event, metadata.get("instances") or [], metadata.get("exceptions") or [])
    else:
        _vevent(writer, uid, event, _own_zone(event, "start"), _own_zone(event, "end"))
    head = ["BEGIN:VCALENDAR", f"PRODID:{PRODID}", "VERSION:2.0", "CALSCALE:GREGORIAN"]
    zones = [line for tzid in sorted(writer.years) for line in vtimezone(tzid, *writer.years[tzid])]
    lines = head + zones + writer.lines + ["END:VCALENDAR"]
    return "".join(_fold(line) + "\r\n" for line in lines).encode("utf-8")


def _own_zone(event: dict[str, Any], key: str) -> Zone:
    """The zone of start or end; all-day events float, so their zone is never needed."""
    if event.get("isAllDay"):
        return Zone(None, UTC)
    return resolve((event.get(key) or {}).get("timeZone"))


def _series_zone(event: dict[str, Any]) -> Zone:
    """Graph expands a series in recurrenceTimeZone; start's zone stands in when it is empty."""
    name = ((event.get("recurrence") or {}).get("range") or {}).get("recurrenceTimeZone")
    return resolve(name or (event.get("start") or {}).get("timeZone"))


def _series(writer: _Writer, uid: str, master: dict[str, Any], instances: list[dict], exceptions: list[dict]) -> None:
    all_day = bool(master.get("isAllDay"))
    zone = _series_zone(master)
    rule = rrule(master["recurrence"], zone.tz, all_day)
    first = _start_of(master, zone)
    present, latest = _listed_starts(instances + exceptions, zone, all_day)
    until = None if rule.bounded else latest
    expanded = list(expand(rule.value, first, until)) if present else []
    cancelled = [s for s in expanded if _key(s, all_day) not in present]
    if latest is not None and not all_day:
        writer.uses(zone, latest)
    extra = [f"RRULE:{rule.value}"] + [_datetime_line("EXDATE", s, zone, all_day, writer) for s in cancelled]
    ordered = sorted(exceptions, key=lambda e: str(e.get("originalStart") or ""))
    originals = [(e, _original_start(e, zone, all_day)) for e in ordered]
    # An exception whose original start the rule does not yield (the pattern was edited after
    # it was made) is added as an RDATE, or clients would have no occurrence for it to override.
    yielded = {_key(s, all_day) for s in expanded}
    extra += [_datetime_line("RDATE", o, zone, all_day, writer) for _, o in originals
              if o is not None and expanded and _key(o, all_day) not in yielded]
    _vevent(writer, uid, master, zone, zone, extra)
    for exception, original in originals:
        if original is None:
            continue
        recurrence_id = _datetime_line("RECURRENCE-ID", original, zone, all_day, writer)
        _vevent(writer, uid, exception, _own_zone(exception, "start"), _own_zone(exception, "end"), [recurrence_id])


def _start_of(event: dict[str, Any], zone: Zone) -> datetime:
    """DTSTART of a series as dateutil expands it: aware in the series' zone, naive for all-day."""
    local = _local(event["start"])
    if event.get("isAllDay"):
        return datetime.combine(local.date(), datetime.min.time())
    return local.replace(tzinfo=resolve(event["start"].get("timeZone")).tz).astimezone(zone.tz)


def _listed_starts(listed: list[dict], zone: Zone, all_day: bool) -> tuple[set, datetime | None]:
    """The original starts Graph still lists (as comparison keys) and the latest of them."""
    keys: set = set()
    latest: datetime | None = None
    for instance in listed:
        original = _original_start(instance, zone, all_day)
        if original is None:
            continue
        keys.add(_key(original, all_day))
        latest = original if latest is None or original > latest else latest
    return keys, latest


def _original_start(instance: dict[str, Any], zone: Zone, all_day: bool) -> datetime | None:
    """Where an occurrence was meant to start: originalStart (UTC), or its start when it is a
    plain occurrence. Aware in the series' zone, or the local midnight for all-day series."""
    instant = _timestamp(instance.get("originalStart"))
    if instant is None and instance.get("type") == "occurrence" and instance.get("start"):
        start = instance["start"]
        if all_day:
            return datetime.combine(_local(start).date(), datetime.min.time())
        instant = _local(start).replace(tzinfo=resolve(start.get("timeZone")).tz)
    if instant is None:
        return None
    local = instant.astimezone(zone.tz)
    if all_day:
        # An all-day original start is the local midnight; rounding also absorbs a Graph that
        # wrote midnight UTC instead.
        return datetime.combine((local + timedelta(hours=12)).date(), datetime.min.time())
    return local


def _key(start: datetime, all_day: bool) -> date | datetime:
    return start.date() if all_day else start.astimezone(UTC)


# --- one VEVENT ---------------------------------------------------------------------------------------


def _vevent(writer: _Writer, uid: str, event: dict[str, Any], start_zone: Zone, end_zone: Zone, extra: list[str] = ()) -> None:
    add = writer.add
    add("BEGIN:VEVENT")
    add(f"UID:{_text(uid)}")
    add(f"DTSTAMP:{_utc_stamp(event.get('lastModifiedDateTime') or event.get('createdDateTime'))}")
    add(_when("DTSTART", event, "start", start_zone, writer))
    add(_when("DTEND", event, "end", end_zone, writer))
    for line in extra:
        add(line)
    add(f"SUMMARY:{_text(event.get('subject') or '')}")
    description = body_text(event.get("body") or {})
    if description:
        add(f"DESCRIPTION:{_text(description)}")
    location = _location(event)
    if location:
        add(f"LOCATION:{_text(location)}")
    categories = [c for c in event.get("categories") or [] if isinstance(c, str) and c]
    if categories:
        add("CATEGORIES:" + ",".join(_text(c) for c in categories))
    add(f"CLASS:{CLASS.get(event.get('sensitivity') or 'normal', 'PUBLIC')}")
    add(f"TRANSP:{'TRANSPARENT' if event.get('showAs') == 'free' else 'OPAQUE'}")
    add(f"STATUS:{'CANCELLED' if event.get('isCancelled') else 'CONFIRMED'}")
    add(f"PRIORITY:{PRIORITY.get(event.get('importance') or 'normal', 5)}")
    for line in _people(event):
        add(line)
    join_url = _join_url(event)
    if join_url:
        add(f"URL:{join_url}")
        add(f"X-MICROSOFT-SKYPETEAMSMEETINGURL:{_text(join_url)}")
    if event.get("createdDateTime"):
        add(f"CREATED:{_utc_stamp(event['createdDateTime'])}")
    if event.get("lastModifiedDateTime"):
        add(f"LAST-MODIFIED:{_utc_stamp(event['lastModifiedDateTime'])}")
    if event.get("isReminderOn"):
        minutes = max(int(event.get("reminderMinutesBeforeStart") or 0), 0)
        for line in ("BEGIN:VALARM", "ACTION:DISPLAY", f"DESCRIPTION:{_text(event.get('subject') or 'Reminder')}",
                     f"TRIGGER:-PT{minutes}M", "END:VALARM"):
            add(line)
    add("END:VEVENT")


def _when(name: str, event: dict[str, Any], key: str, zone: Zone, writer: _Writer) -> str:
    """DTSTART/DTEND: a DATE for all-day events (DTEND exclusive, as Graph's end already is),
    else the wall-clock time in `zone`."""
    value = event.get(key) or {}
    if event.get("isAllDay"):
        day = _local(value).date()
        if key == "end":
            day = max(day, _local(event["start"]).date() + timedelta(days=1))
        return f"{name};VALUE=DATE:{day:%Y%m%d}"
    instant = _local(value).replace(tzinfo=resolve(value.get("timeZone")).tz)
    return _datetime_line(name, instant, zone, False, writer)


def _datetime_line(name: str, when: datetime, zone: Zone, all_day: bool, writer: _Writer) -> str:
    if all_day:
        return f"{name};VALUE=DATE:{when:%Y%m%d}"
    if zone.tzid is None:
        return f"{name}:{when.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    local = when.astimezone(zone.tz)
    writer.uses(zone, local)
    return f"{name};TZID={zone.tzid}:{local:%Y%m%dT%H%M%S}"


def _location(event: dict[str, Any]) -> str:
    location = event.get("location") or {}
    name = (location.get("displayName") or "").strip()
    if name:
        return name
    address = location.get("address") or {}
    parts = [address.get(k) for k in ("street", "postalCode", "city", "countryOrRegion")]
    return ", ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def _join_url(event: dict[str, Any]) -> str:
    url = (event.get("onlineMeeting") or {}).get("joinUrl") or event.get("onlineMeetingUrl") or ""
    return url if re.fullmatch(r"[\x21-\x7e]+", url) else ""


def _people(event: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    organizer = ((event.get("organizer") or {}).get("emailAddress") or {})
    if organizer.get("address"):
        lines.append(f"ORGANIZER{_cn(organizer)}:mailto:{organizer['address']}")
    for attendee in event.get("attendees") or []:
        address = (attendee.get("emailAddress") or {})
        if not address.get("address"):
            continue
        kind = attendee.get("type") or "required"
        params = ";CUTYPE=RESOURCE" if kind == "resource" else ""
        params += f";ROLE={ROLE.get(kind, 'REQ-PARTICIPANT')}"
        params += f";PARTSTAT={PARTSTAT.get((attendee.get('status') or {}).get('response') or 'none', 'NEEDS-ACTION')}"
        lines.append(f"ATTENDEE{params}{_cn(address)}:mailto:{address['address']}")
    return lines


def _cn(address: dict[str, Any]) -> str:
    """The CN parameter, always quoted; a double quote cannot appear in a parameter value at all."""
    name = re.sub(r'[\x00-\x1f\x7f"]', "", address.get("name") or "").strip()
    return f';CN="{name}"' if name else ""


# --- values ---------------------------------------------------------------------------------------------


def _local(value: dict[str, Any]) -> datetime:
    """Graph's dateTime ("2026-03-29T10:30:00.0000000") as a naive wall-clock time."""
    text = (value or {}).get("dateTime") or ""
    try:
        return datetime.fromisoformat(text[:19])
    except ValueError:
        raise ItemError(f"event time {text!r} is not a Graph dateTime") from None


def _timestamp(text: Any) -> datetime | None:
    """A Graph DateTimeOffset (seven fractional digits, Z or an offset) as an aware datetime."""
    found = _TIMESTAMP.fullmatch(text) if isinstance(text, str) else None
    if not found:
        return None
    value = datetime.fromisoformat(found.group(1))
    offset = found.group(2)
    if offset and offset != "Z":
        return datetime.fromisoformat(found.group(1) + offset)
    return value.replace(tzinfo=UTC)


def _utc_stamp(text: Any) -> str:
    value = _timestamp(text)
    return f"{value.astimezone(UTC):%Y%m%dT%H%M%SZ}" if value else "19700101T000000Z"


def _text(value: str) -> str:
    """A TEXT value: backslash, semicolon, comma and line breaks escaped (RFC 5545 3.3.11)."""
    value = re.sub(r"\r\n?", "\n", value)
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", value)


def _fold(line: str) -> str:
    """Lines longer than 75 octets continue on lines starting with a space, never splitting a
    UTF-8 sequence."""
    encoded = line.encode("utf-8")
    if len(encoded) <= _FOLD_AT:
        return line
    parts: list[str] = []
    current, size, limit = [], 0, _FOLD_AT
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            parts.append("".join(current))
            current, size, limit = [], 0, _FOLD_AT - 1
        current.append(char)
        size += width
    parts.append("".join(current))
    return "\r\n ".join(parts)


# --- HTML bodies ------------------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset({
    "address", "article", "blockquote", "br", "dd", "div", "dl", "dt", "footer", "h1", "h2", "h3", "h4",
    "h5", "h6", "header", "hr", "li", "ol", "p", "pre", "section", "table", "tr", "ul",
})
_HIDDEN_TAGS = frozenset({"head", "script", "style", "title"})


class _TextExtractor(HTMLParser):
    """Text of an HTML body: hidden elements dropped, a line break at every block boundary."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(self.hidden - 1, 0)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def body_text(body: dict[str, Any]) -> str:
    """The body as plain text: HTML tags stripped and entities decoded; in both cases spaces
    collapsed within lines and runs of blank lines reduced to one."""
    content = body.get("content") or ""
    if (body.get("contentType") or "").lower() == "html":
        parser = _TextExtractor()
        parser.feed(content)
        parser.close()
        content = "".join(parser.parts)
    lines = [re.sub(r"[ \t\f\v\u00a0]+", " ", line).strip() for line in re.split(r"\r\n?|\n", content)]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
