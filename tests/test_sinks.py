from __future__ import annotations

import asyncio

import pytest

from connectors.directory import DirectorySink
from connectors.memory import MemorySink
from migrator.errors import ItemError
from migrator.model import Payload, Target
from tests.sink_contract import SinkContract


class TestMemorySink(SinkContract):
    @pytest.fixture
    def sink(self):
        return MemorySink()

    def remove(self, sink, ref):
        for folder in sink.folders.values():
            folder[:] = [s for s in folder if s.dest_id != ref.dest_id]


class TestDirectorySink(SinkContract):
    @pytest.fixture
    def sink(self, tmp_path):
        return DirectorySink(tmp_path / "target")

    def remove(self, sink, ref):
        (sink.root / ref.dest_id).unlink()

    def test_an_unsafe_name_is_an_item_error_not_a_write_elsewhere(self, sink):
        asyncio.run(sink.ensure_container("ada", ("Files",)))
        with pytest.raises(ItemError):
            asyncio.run(sink.put("ada", ("Files",), Target("../escape", Payload.from_bytes(b"x"))))
        with pytest.raises(ItemError):
            asyncio.run(sink.ensure_container("ada", ("..", "..")))
        assert not (sink.root / "escape").exists() and not (sink.root.parent / "escape").exists()

    def test_a_write_killed_midway_leaves_no_item_and_a_rerun_completes(self, sink):
        asyncio.run(sink.ensure_container("ada", ("Files",)))

        async def dies_after_first_chunk():
            yield b"first half "
            raise ConnectionResetError("source went away")

        broken = Target("big.bin", Payload(dies_after_first_chunk))
        with pytest.raises(ItemError):
            asyncio.run(sink.put("ada", ("Files",), broken))
        whole = Target("big.bin", Payload.from_bytes(b"first half second half"))
        assert asyncio.run(sink.find("ada", ("Files",), whole)) is None
        stored = asyncio.run(sink.put("ada", ("Files",), whole))
        assert stored.size == len(b"first half second half")
        assert asyncio.run(sink.list_keys("ada", ("Files",))) == {"big.bin"}
