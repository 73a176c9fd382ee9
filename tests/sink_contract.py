"""The contract every sink must keep, run against each implementation (see test_sinks.py)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from migrator.model import DestRef, Payload, Target

OWNER = "ada"


def run(coro):
    return asyncio.run(coro)


def target(key: str, data: bytes) -> Target:
    return Target(dest_key=key, payload=Payload.from_bytes(data, chunk_size=7))


class SinkContract:
    """Subclasses provide a `sink` fixture returning a fresh, empty sink."""

    @pytest.fixture
    def sink(self):  # pragma: no cover - always overridden
        raise NotImplementedError

    def test_ensure_container_is_idempotent(self, sink):
        first = run(sink.ensure_container(OWNER, ("Projects", "2026")))
        assert run(sink.ensure_container(OWNER, ("Projects", "2026"))) == first

    def test_find_on_an_empty_container_finds_nothing(self, sink):
        run(sink.ensure_container(OWNER, ("INBOX",)))
        assert run(sink.find(OWNER, ("INBOX",), target("a.eml", b"x"))) is None

    def test_put_then_find_and_stat_agree_on_size_and_hash(self, sink):
        run(sink.ensure_container(OWNER, ("INBOX",)))
        data = b"Subject: hello\r\n\r\n" + bytes(range(256)) * 3
        stored = run(sink.put(OWNER, ("INBOX",), target("a.eml", data)))
        found = run(sink.find(OWNER, ("INBOX",), target("a.eml", data)))
        assert isinstance(found, DestRef) and found.dest_id == stored.dest_id
        again = run(sink.stat(OWNER, stored))
        assert again.size == len(data)
        if "sha256" in sink.caps.hashes:
            assert again.content_hash == hashlib.sha256(data).hexdigest()

    def test_put_with_replace_leaves_one_item_with_the_new_content(self, sink):
        path = ("Documents",)
        run(sink.ensure_container(OWNER, path))
        old = run(sink.put(OWNER, path, target("report.pdf", b"version 1")))
        new = run(sink.put(OWNER, path, target("report.pdf", b"version 2, longer"), replace=old))
        assert run(sink.stat(OWNER, new)).size == len(b"version 2, longer")
        if sink.caps.listing:
            assert run(sink.list_keys(OWNER, path)) == {"report.pdf"}

    def test_stat_of_a_missing_item_is_none(self, sink):
        run(sink.ensure_container(OWNER, ("INBOX",)))
        stored = run(sink.put(OWNER, ("INBOX",), target("gone.eml", b"x")))
        self.remove(sink, stored)
        assert run(sink.stat(OWNER, stored)) is None

    def test_listing_names_every_stored_key(self, sink):
        if not sink.caps.listing:
            pytest.skip("this sink does not declare listing")
        run(sink.ensure_container(OWNER, ("Chat",)))
        for n in range(3):
            run(sink.put(OWNER, ("Chat",), target(f"m{n}.json", b"{}")))
        assert run(sink.list_keys(OWNER, ("Chat",))) == {"m0.json", "m1.json", "m2.json"}

    def test_empty_item_round_trips(self, sink):
        run(sink.ensure_container(OWNER, ("Files",)))
        stored = run(sink.put(OWNER, ("Files",), target("empty.txt", b"")))
        assert run(sink.stat(OWNER, stored)).size == 0

    def remove(self, sink, ref: DestRef) -> None:  # pragma: no cover - per implementation
        raise NotImplementedError
