"""The files sinks against real servers: plain WebDAV against WsgiDAV."""

from __future__ import annotations

import shutil

import pytest

from connectors.webdav import WebDavSink
from migrator.model import DestRef
from tests.fixtures.wsgidav import wsgidav  # noqa: F401
from tests.sink_contract import OWNER, FileSinkContract, run


class TestWebDavSink(FileSinkContract):
    @pytest.fixture
    def sink(self, wsgidav):  # noqa: F811
        home = wsgidav.root / OWNER
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir()
        return WebDavSink(wsgidav.url, lambda owner: (owner, wsgidav.users[owner]))

    def remove(self, sink, ref: DestRef) -> None:
        assert run(sink.delete(OWNER, ref)) is True
