"""The files sinks through one contract: a local folder, plain WebDAV against WsgiDAV, Nextcloud
against the sandbox's stand-in written to Nextcloud's documentation."""

from __future__ import annotations

import shutil

import pytest

from connectors.directory import DirectorySink
from connectors.nextcloud import NextcloudSink
from connectors.webdav import WebDavSink
from migrator.model import DestRef
from migrator.sandbox.nextcloud import NextcloudServer
from tests.fixtures.wsgidav import wsgidav  # noqa: F401
from tests.sink_contract import OWNER, FileSinkContract, run


class TestDirectoryTreeSink(FileSinkContract):
    """A local folder as a files target: the OneDrive's tree below the container's folder."""

    @pytest.fixture
    def sink(self, tmp_path):
        return DirectorySink(tmp_path / "target", tree=True)

    def remove(self, sink, ref: DestRef) -> None:
        assert run(sink.delete(OWNER, ref)) is True


class TestWebDavSink(FileSinkContract):
    @pytest.fixture
    def sink(self, wsgidav):  # noqa: F811
        home = wsgidav.root / OWNER
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir()
        return WebDavSink(wsgidav.url, lambda owner: (owner, wsgidav.users[owner]))

    def remove(self, sink, ref: DestRef) -> None:
        assert run(sink.delete(OWNER, ref)) is True


class TestNextcloudSink(FileSinkContract):
    """The same contract against the sandbox's Nextcloud stand-in, files above 1 MiB chunked."""

    @pytest.fixture
    def sink(self, tmp_path):
        server = NextcloudServer(tmp_path / "nc", users={OWNER: "ada-app-password", "bob": "bob-app-password"},
                                 min_chunk_size=64 * 1024).start()
        sink = NextcloudSink(server.url, lambda owner: (owner, "ada-app-password" if owner == OWNER else "bob-app-password"),
                             chunk_size=1 << 20)
        yield sink
        server.stop()

    def remove(self, sink, ref: DestRef) -> None:
        assert run(sink.delete(OWNER, ref)) is True
