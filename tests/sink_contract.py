"""The contract every sink must keep, run against each implementation (see test_sinks.py)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from migrator.errors import ItemError
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

    def test_delete_removes_an_item_once(self, sink):
        if not sink.caps.delete:
            pytest.skip("this sink does not declare delete")
        run(sink.ensure_container(OWNER, ("INBOX",)))
        stored = run(sink.put(OWNER, ("INBOX",), target("doomed.eml", b"Subject: x\r\n\r\nbye")))
        kept = run(sink.put(OWNER, ("INBOX",), target("kept.eml", b"Subject: y\r\n\r\nstay")))
        assert run(sink.delete(OWNER, stored)) is True
        assert run(sink.stat(OWNER, stored)) is None and run(sink.stat(OWNER, kept)) is not None
        assert run(sink.delete(OWNER, stored)) is False

    def remove(self, sink, ref: DestRef) -> None:  # pragma: no cover - per implementation
        raise NotImplementedError


def file_target(key: str, data: bytes, mtime: float | None = 1_600_000_000.0, kind: str = "file", chunk_size: int = 7, **metadata) -> Target:
    return Target(dest_key=key, payload=Payload.from_bytes(data, chunk_size=chunk_size),
                  metadata={"kind": kind, "mtime": mtime, "size": len(data) if kind == "file" else None, **metadata})


class FileSinkContract(SinkContract):
    """What every files sink (plain WebDAV, Nextcloud) keeps beyond the general contract."""

    def test_a_file_below_missing_folders_is_stored_at_its_path(self, sink):
        run(sink.ensure_container(OWNER, ("OneDrive",)))
        key = "Documenten/Beleid 2026/Overzicht – concept ü.docx"
        data = b"PK\x03\x04 word"
        stored = run(sink.put(OWNER, ("OneDrive",), file_target(key, data)))
        assert run(sink.stat(OWNER, stored)).size == len(data)
        assert run(sink.list_keys(OWNER, ("OneDrive",))) == {"Documenten", "Documenten/Beleid 2026", key}

    def test_a_folder_item_creates_an_empty_folder(self, sink):
        run(sink.ensure_container(OWNER, ("OneDrive",)))
        run(sink.put(OWNER, ("OneDrive",), file_target("Leeg", b"", kind="folder")))
        run(sink.put(OWNER, ("OneDrive",), file_target("Leeg", b"", kind="folder")))  # again: no error
        assert run(sink.list_keys(OWNER, ("OneDrive",))) == {"Leeg"}

    def test_the_modification_time_is_kept_where_declared(self, sink):
        run(sink.ensure_container(OWNER, ("OneDrive",)))
        stored = run(sink.put(OWNER, ("OneDrive",), file_target("old.txt", b"from 2020", mtime=1_577_880_000.0)))
        found = run(sink.stat(OWNER, stored))
        if sink.caps.mtime_precision is None:
            assert stored.mtime is None
        else:
            assert stored.mtime == 1_577_880_000.0
            assert abs(found.mtime - 1_577_880_000.0) <= sink.caps.mtime_precision

    def test_a_create_never_overwrites_a_file_it_did_not_write(self, sink):
        run(sink.ensure_container(OWNER, ("OneDrive",)))
        run(sink.put(OWNER, ("OneDrive",), file_target("mine.txt", b"written by the user")))
        with pytest.raises(ItemError, match="already exists"):
            run(sink.put(OWNER, ("OneDrive",), file_target("mine.txt", b"migrated")))

    def test_find_reports_the_hash_of_a_file_of_the_expected_size(self, sink):
        run(sink.ensure_container(OWNER, ("OneDrive",)))
        data = b"same size, other bytes"
        run(sink.put(OWNER, ("OneDrive",), file_target("a.txt", data)))
        found = run(sink.find(OWNER, ("OneDrive",), file_target("a.txt", b"x" * len(data))))
        assert found.content_hash == hashlib.sha256(data).hexdigest()

    def test_a_large_file_streams_through(self, sink):
        run(sink.ensure_container(OWNER, ("OneDrive",)))
        data = bytes(range(256)) * 4096 * 7  # 7 MiB in 64 KiB pieces
        stored = run(sink.put(OWNER, ("OneDrive",), file_target("big.bin", data, chunk_size=1 << 16)))
        again = run(sink.stat(OWNER, stored))
        assert again.size == len(data)
        assert again.content_hash == hashlib.sha256(data).hexdigest()
