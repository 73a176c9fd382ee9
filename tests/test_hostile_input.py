"""Hostile input for every mapping: real items from the golden cases with fields replaced by what
Graph should never send (wrong types, control characters, 10,000-character strings, nonsense
recurrences, unknown time zones), and MIME that is not MIME. A mapping answers with a target, a
skip with its reason, or an ItemError naming the problem; nothing else may escape, so a bad item
fails alone. And through the whole engine: hostile items fail or are skipped, the rest move."""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.calendar import calendar_mapping
from mappings.contacts import contacts_mapping
from mappings.mail import mail_mapping
from mappings.mail_folders import FolderRules
from migrator.errors import ItemError
from migrator.job import Job, Selection
from migrator.model import Container, Item, ItemRef, Payload, Skip, Target
from tests.helpers import memory_config, sinks_for, small_source

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(min_codepoint=0, max_codepoint=31), min_size=1, max_size=10),
    st.just("x" * 10_000),
    st.sampled_from(["", "../../etc/passwd", '"*%\\', "<script>alert(1)</script>", "\u202egnp.exe", "\ud7ff\ufffe"]),
)
nasty = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=True), nasty_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)),
    max_leaves=12,
)


def cases(workload: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((GOLDEN / workload).glob("*.json")) if not p.name.endswith(".expected.json")]


def replaced(record: dict[str, Any], data) -> dict[str, Any]:
    """The record with one to three of its fields (perhaps nested one level) replaced by garbage."""
    hostile = copy.deepcopy(record)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(hostile)))
        value = hostile[key]
        if isinstance(value, dict) and value and data.draw(st.booleans()):
            value[data.draw(st.sampled_from(sorted(value)))] = data.draw(nasty)
        else:
            hostile[key] = data.draw(nasty)
    return hostile


def outcome(mapped_call) -> Target | Skip | ItemError:
    try:
        mapped = mapped_call()
        if isinstance(mapped, Target):
            asyncio.run(mapped.payload.read_all())  # a mapping may fail only once its bytes are read
        return mapped
    except ItemError as exc:
        assert str(exc), "an item error says what is wrong"
        return exc


MAIL, EVENTS, CONTACTS = cases("mail"), cases("calendar"), cases("contacts")


@SETTINGS
@given(st.data())
def test_mail_with_hostile_fields_and_bytes(data):
    case = data.draw(st.sampled_from(MAIL))
    message = replaced(case["message"], data)
    mime = data.draw(st.one_of(st.binary(max_size=2000), st.just(b"\xff\xfe\x00" * 300), st.just(b"Subject: " + b"a" * 20_000 + b"\r\n\r\nx")))
    ref = ItemRef(str(case["message"].get("id", "x")), "", "message", "")
    item = Item(ref, Payload.from_bytes(mime), {"message": message, "folder_role": case.get("folder_role", "inbox")})
    outcome(lambda: mail_mapping(FolderRules.from_toml({})).map(item, Container("f", "Inbox", "mail", ("INBOX",), "inbox")))


@SETTINGS
@given(st.data())
def test_events_with_hostile_fields_and_recurrences(data):
    case = data.draw(st.sampled_from(EVENTS))
    metadata = {**case, "event": replaced(case["event"], data)}
    if data.draw(st.booleans()) and isinstance(metadata["event"].get("recurrence"), dict) and metadata["event"]["recurrence"]:
        metadata["event"]["recurrence"] = replaced(metadata["event"]["recurrence"], data)
    ref = ItemRef(str(case["event"].get("id", "e")), "", "event", "")
    item = Item(ref, Payload.from_bytes(b""), metadata)
    outcome(lambda: calendar_mapping().map(item, Container("c", "Agenda", "calendar", ("Agenda",), "default")))


@SETTINGS
@given(st.data())
def test_contacts_with_hostile_fields(data):
    case = data.draw(st.sampled_from(CONTACTS))
    metadata = {**case, "contact": replaced(case["contact"], data)}
    ref = ItemRef(str(case["contact"].get("id", "c")), "", "contact", "")
    item = Item(ref, Payload.from_bytes(b""), metadata)
    outcome(lambda: contacts_mapping().map(item, Container("c", "Contacten", "contacts", ("Contacten",), "default")))


def test_a_mapping_surprised_by_its_input_fails_that_item_alone_with_the_reason(tmp_path):
    """Through the whole engine: one message whose data the mapping cannot handle fails, named;
    its neighbours arrive; the run completes."""
    config = memory_config(tmp_path, ("mail",))
    good = [b"Subject: een\r\n\r\nhallo", b"Subject: twee\r\n\r\nhallo"]
    source = small_source({("ada@example.org", "mail"): [good[0], b"\x00poison", good[1]]})
    sinks = sinks_for(("mail",))
    job = Job(config, source=source, sinks=sinks)
    plain = job.mappings["mail"]

    def choking(item: Item, container: Container):
        if item.ref.name.endswith("-1"):
            return None.get("flags")  # what a field of the wrong type does to a mapping
        return plain.item(item, container)

    job.mappings["mail"] = replace(plain, item=choking)
    try:
        result = asyncio.run(job.run("run", Selection.from_config(config)))
        problems = [(p.state, p.last_error) for p in job.ledger.problems()]
    finally:
        job.close()
    assert result.exit_code == 1 and result.copy.outcomes["copied"] == 2 and result.copy.outcomes["failed"] == 1
    assert problems == [("failed", "the source's mail data has an unexpected shape: AttributeError: 'NoneType' object has no attribute 'get'")]
    assert sorted(data for *_, data in sinks["mail"].contents("ada@example.org")) == good
