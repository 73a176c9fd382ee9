"""Mail mapping: golden Graph messages to IMAP metadata, the exact payload bytes, and properties."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings.mail import (
    X_SOURCE_ID,
    MailOptions,
    keywords,
    mail_mapping,
    map_message,
    with_source_header,
)
from mappings.mail_folders import FolderRules
from migrator.errors import ItemError
from migrator.model import Container, Item, ItemRef, Payload, Skip, Target

GOLDEN = Path(__file__).parent / "golden" / "mail"
CASES = sorted(p for p in GOLDEN.glob("*.json") if not p.name.endswith(".expected.json"))
# An IMAP atom: one or more characters other than atom-specials (RFC 3501 §9), and a keyword
# must not start with a backslash, which marks system flags.
ATOM = re.compile(r'[^(){ %*"\\\]\x00-\x1f\x7f-\U0010ffff]+')

MIME = (
    b"From: Anouk de Vries <anouk.devries@example.org>\r\n"
    b"To: Daan Jansen <daan.jansen@contoso.example>\r\n"
    b"Subject: =?utf-8?q?Overleg_=C3=BCber_budget?=\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"Date: Mon, 05 Jan 2026 10:15:30 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Tot maandag.\r\n"
)


def _container(role: str = "inbox", path: tuple[str, ...] = ("Postvak IN",)) -> Container:
    return Container("folder-1", path[-1], "mail", path, role)


def _item(message: dict, role: str = "inbox", payload: Payload | None = None) -> Item:
    ref = ItemRef(message["id"], message.get("changeKey", ""), "message", message.get("subject") or "")
    return Item(ref, payload or Payload.from_bytes(MIME), {"message": message, "folder_role": role})


def _read(payload: Payload) -> bytes:
    return asyncio.run(payload.read_all())


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_golden_messages(case: Path):
    given_ = json.loads(case.read_text("utf-8"))
    expected_file = case.with_name(case.stem + ".expected.json")
    role = given_["folder_role"]
    mapped = map_message(_item(given_["message"], role), _container(role), MailOptions())
    assert isinstance(mapped, Target)
    actual = {"dest_key": mapped.dest_key, "metadata": mapped.metadata}
    if os.environ.get("UPDATE_GOLDEN"):
        expected_file.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert actual == json.loads(expected_file.read_text("utf-8"))


def test_the_header_is_prepended_and_nothing_else_changes():
    item = _item({"id": "AAMkAG1="})
    mapped = map_message(item, _container())
    assert isinstance(mapped, Target)
    assert _read(mapped.payload) == b"X-Migrator-Source-Id: AAMkAG1=\r\n" + MIME
    assert mapped.payload.size == len(MIME) + len(b"X-Migrator-Source-Id: AAMkAG1=\r\n")
    # chunks() starts over on every call, as the copier reads a payload again to verify it.
    assert _read(mapped.payload) == _read(mapped.payload)


def test_without_the_header_the_payload_is_the_source_itself():
    item = _item({"id": "AAMkAG1="})
    mapped = map_message(item, _container(), MailOptions(add_source_header=False))
    assert isinstance(mapped, Target)
    assert mapped.payload is item.payload
    assert _read(mapped.payload) == MIME


def test_an_unknown_source_size_stays_unknown():
    async def chunks():
        yield MIME

    mapped = with_source_header(Payload(chunks, None), "AAMkAG1=")
    assert mapped.size is None
    assert _read(mapped).endswith(MIME)


def test_an_id_that_cannot_be_a_header_fails_the_item():
    with pytest.raises(ItemError, match=X_SOURCE_ID):
        map_message(_item({"id": "bad\r\nBcc: someone@example.org"}), _container())


def test_the_outbox_and_excluded_folders_are_skipped_with_a_reason():
    outbox = map_message(_item({"id": "m1"}, "outbox"), _container("outbox", ("Postvak UIT",)))
    assert isinstance(outbox, Skip) and "outbox" in outbox.reason
    rules = FolderRules(exclude=frozenset({("Postvak IN", "Nieuwsbrieven")}))
    mapping = mail_mapping(rules)
    letters = _container("", ("Postvak IN", "Nieuwsbrieven", "2025"))
    skipped = mapping.item(_item({"id": "m2"}, ""), letters)
    assert isinstance(skipped, Skip) and "Postvak IN/Nieuwsbrieven/2025" in skipped.reason
    assert mapping.container_path(letters) == ()


def test_the_mapping_places_folders_and_maps_items():
    mapping = mail_mapping(FolderRules(special_use_names={"sentitems": "Sent Items"}))
    assert mapping.container_path(_container("inbox", ("Postvak IN",))) == ("INBOX",)
    assert mapping.container_path(_container("sentitems", ("Verzonden items",))) == ("Sent Items",)
    mapped = mapping.item(_item({"id": "m3", "isRead": True}), _container())
    assert isinstance(mapped, Target) and mapped.dest_key == "m3" and mapped.metadata["flags"] == ["\\Seen"]


def test_a_message_without_graph_json_falls_back_to_the_listing_id():
    item = Item(ItemRef("AAMkRef=", "ck", "message"), Payload.from_bytes(MIME), {})
    mapped = map_message(item, _container())
    assert isinstance(mapped, Target) and mapped.dest_key == "AAMkRef="
    assert mapped.metadata == {"flags": [], "internal_date": None, "message_id": None, "source_id": "AAMkRef=", "subject": ""}


@given(st.lists(st.one_of(st.text(), st.none(), st.integers())))
def test_keywords_are_always_valid_distinct_imap_atoms(categories):
    result = keywords(categories)
    for keyword in result:
        assert ATOM.fullmatch(keyword), keyword
        assert not keyword.startswith("\\") and not keyword.startswith("$")
    assert len({k.lower() for k in result}) == len(result)


@given(st.binary(), st.integers(min_value=1, max_value=64), st.from_regex(r"[\x21-\x7e]{1,200}", fullmatch=True))
def test_the_payload_minus_the_header_is_the_source(source, chunk_size, graph_id):
    mapped = with_source_header(Payload.from_bytes(source, chunk_size), graph_id)
    header = f"{X_SOURCE_ID}: {graph_id}\r\n".encode()
    data = _read(mapped)
    assert data[: len(header)] == header
    assert data[len(header) :] == source
    assert mapped.size == len(data)
