"""The audit chain: each event row carries the hash of the one before it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from state.models import Event

GENESIS = "0" * 64


def event_hash(event: Event) -> str:
    canonical = json.dumps(
        {
            "id": event.id,
            "at": event.at.isoformat(),
            "run_id": event.run_id,
            "kind": event.kind,
            "subject": event.subject,
            "detail": event.detail,
            "prev_hash": event.prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def chain_head(session: Session) -> tuple[int, str]:
    last = session.execute(select(Event.id, Event.hash).order_by(Event.id.desc()).limit(1)).first()
    return (last.id, last.hash) if last else (0, GENESIS)


@dataclass(frozen=True)
class AuditResult:
    events: int
    head: str
    broken_at: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def audit_chain(session: Session, expect_head: str | None = None, batch: int = 5000) -> AuditResult:
    """Recomputes every link; the first row whose hash or back-link does not hold is named."""
    prev_hash, prev_id, count, last_id = GENESIS, 0, 0, 0
    while True:
        rows = session.scalars(select(Event).where(Event.id > last_id).order_by(Event.id).limit(batch)).all()
        if not rows:
            break
        for event in rows:
            count += 1
            if event.prev_hash != prev_hash:
                return AuditResult(count, prev_hash, event.id, f"event {event.id}: {_broken_link(session, event, prev_id)}")
            if event_hash(event) != event.hash:
                return AuditResult(count, prev_hash, event.id, f"event {event.id}: its content no longer matches its hash")
            prev_hash, prev_id = event.hash, event.id
        last_id = rows[-1].id
        session.expunge_all()
    if expect_head is not None and expect_head != prev_hash:
        return AuditResult(count, prev_hash, prev_id, f"chain head is {prev_hash[:16]}…, the report names {expect_head[:16]}…: events were removed from the end or added")
    return AuditResult(count, prev_hash)


def _broken_link(session: Session, event: Event, prev_id: int) -> str:
    """Why an event does not follow the one before it: rows reordered, removed, or a link rewritten."""
    predecessor = session.scalar(select(Event.id).where(Event.hash == event.prev_hash).limit(1))
    if predecessor is not None and predecessor > event.id:
        return f"rows were reordered: it follows event {predecessor}, which now comes after it"
    if event.id != prev_id + 1:
        return "a row before it was removed or altered"
    return "its link to the previous row was altered"
