from __future__ import annotations

import asyncio

import pytest

from mappings.example import container_path, dest_key, map_item
from migrator.model import Container, Item, ItemRef, Payload, Skip, Target


@pytest.mark.parametrize(
    ("source_id", "name", "kind", "expected"),
    [
        ("m-1", "budget 2027", "message", "budget-2027--a461b472cb.eml"),
        ("m-2", "../../etc/passwd", "file", "etc-passwd--8ae2a41095"),
        ("m-3", "", "event", "item--6a7199fb97.ics"),
        ("m-4", "Überweisung März.pdf", "file", "Überweisung-März.pdf--65c0a26039"),
    ],
)
def test_dest_keys_are_readable_safe_and_stable(source_id, name, kind, expected):
    assert dest_key(source_id, name, kind) == expected


def test_two_items_with_one_name_get_two_keys():
    assert dest_key("a", "report", "file") != dest_key("b", "report", "file")


def test_unsupported_items_are_skipped_with_the_reason():
    container = Container("c", "Calendar", "calendar", ("Calendar",))
    poll = Item(ItemRef("p", "ck", "event", "poll"), Payload.from_bytes(b""), {"unsupported": "no CalDAV equivalent"})
    assert map_item(poll, container) == Skip("no CalDAV equivalent")
    event = Item(ItemRef("e", "ck", "event", "standup"), Payload.from_bytes(b"BEGIN:VCALENDAR"))
    mapped = map_item(event, container)
    assert isinstance(mapped, Target) and asyncio.run(mapped.payload.read_all()) == b"BEGIN:VCALENDAR"
    assert container_path(container) == ("Calendar",)
