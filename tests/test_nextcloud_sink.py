"""What the Nextcloud sink adds to plain WebDAV, against the sandbox's Nextcloud stand-in: shares
through OCS (and notes for what cannot be shared), a chunked upload that resumes after a cut,
quota errors, and name rules read from the server's capabilities."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from connectors.nextcloud import NextcloudSink
from migrator.errors import ItemError, TransientError
from migrator.model import Payload, Target
from migrator.sandbox.nextcloud import NextcloudServer
from tests.fixtures.nextcloud import ADMIN, GROUPS, SMALL_CHUNKS, USERS
from tests.sink_contract import file_target, run

OWNER = "alice"
MIB = 1 << 20


def start(tmp_path, **options) -> NextcloudServer:
    settings = {"users": USERS, "admin": ADMIN, "groups": GROUPS, "min_chunk_size": SMALL_CHUNKS, **options}
    return NextcloudServer(tmp_path / "nc", **settings)


def sink_for(server: NextcloudServer, chunk_size: int = MIB) -> NextcloudSink:
    return NextcloudSink(server.url, lambda owner: (owner, USERS[owner]), chunk_size=chunk_size)


def shares_of(server: NextcloudServer, path: str) -> list[dict]:
    answer = httpx.get(f"{server.url}/ocs/v2.php/apps/files_sharing/api/v1/shares", params={"path": path, "format": "json"},
                       headers={"OCS-APIRequest": "true"}, auth=(OWNER, USERS[OWNER]))
    return json.loads(answer.content)["ocs"]["data"]


SHARES = [
    {"type": "user", "with": "bob", "permissions": 15, "access": "edit"},
    {"type": "group", "with": "finance", "permissions": 1, "access": "read"},
    {"type": "user", "with": "nobody-here", "permissions": 1, "access": "read"},
    {"type": "link", "with": "", "permissions": 1, "access": "read"},
]


def test_shares_are_created_once_and_refusals_become_notes(tmp_path):
    with start(tmp_path, public_links=False) as server:
        sink = sink_for(server)
        folder = file_target("Gedeeld met team", b"", kind="folder", shares=SHARES, shares_dropped=["read link for the organization scope: ..."])
        stored = run(sink.put(OWNER, ("OneDrive",), folder))
        created = {(s["share_type"], s["share_with"] or "", s["permissions"]) for s in shares_of(server, "/OneDrive/Gedeeld met team")}
        assert created == {(0, "bob", 15), (1, "finance", 1)}
        assert any("nobody-here" in note for note in stored.notes)
        assert any("public links are disabled" in note for note in stored.notes)
        assert any("organization scope" in note for note in stored.notes)
        run(sink.put(OWNER, ("OneDrive",), folder))  # a rerun asks for the same shares again
        assert len(shares_of(server, "/OneDrive/Gedeeld met team")) == 2


def test_a_public_link_is_created_where_the_server_allows_it(tmp_path):
    with start(tmp_path, public_links=True) as server:
        sink = sink_for(server)
        stored = run(sink.put(OWNER, ("OneDrive",), file_target("Planning.xlsx", b"PK", shares=[SHARES[3]])))
        assert stored.notes == ()
        assert [s["share_type"] for s in shares_of(server, "/OneDrive/Planning.xlsx")] == [3]


class CutAfter:
    """A source that arms the server's cut hook once `at` bytes were read from it, so the chunk
    being sent at that moment is cut off mid-body."""

    def __init__(self, data: bytes, server: NextcloudServer, at: int) -> None:
        self.data, self.server, self.at, self.armed = data, server, at, False

    async def chunks(self):
        for start in range(0, len(self.data), 256 * 1024):
            if start >= self.at and not self.armed:
                self.armed = True
                self.server.instance.cut_next_upload(100 * 1024)
            yield self.data[start:start + 256 * 1024]


def test_a_cut_chunked_upload_resumes_without_sending_the_received_chunks_again(tmp_path):
    data = bytes(range(256)) * (5 * MIB // 256)  # five chunks of 1 MiB
    with start(tmp_path) as server:
        sink = sink_for(server)
        chunk_puts: list[str] = []
        request = sink.http.request

        async def counting(owner, method, url_path, **kwargs):
            if method == "PUT" and "/uploads/" in url_path:
                chunk_puts.append(url_path.rsplit("/", 1)[-1])
            return await request(owner, method, url_path, **kwargs)

        sink.http.request = counting
        source = CutAfter(data, server, at=3 * MIB + 256 * 1024)
        target = Target("Back-ups/archief.zip", Payload(source.chunks, size=len(data)), {"kind": "file", "mtime": 1_700_000_000.0, "size": len(data)})
        with pytest.raises(TransientError):
            run(sink.put(OWNER, ("OneDrive",), target))
        assert chunk_puts == ["1", "2", "3", "4"]  # the fourth was cut
        chunk_puts.clear()
        stored = run(sink.put(OWNER, ("OneDrive",), target))
        assert chunk_puts == ["4", "5"]
        again = run(sink.stat(OWNER, stored))
        assert again.size == len(data) and again.content_hash == hashlib.sha256(data).hexdigest()
        assert again.mtime == 1_700_000_000.0 == stored.mtime


def test_quota_exhaustion_fails_the_item_saying_so(tmp_path):
    with start(tmp_path, quota=1000) as server:
        sink = sink_for(server)
        with pytest.raises(ItemError, match="quota"):
            run(sink.put(OWNER, ("OneDrive",), file_target("groot.bin", b"x" * 5000)))


def test_name_rules_come_from_the_capabilities(tmp_path):
    forbidden = {"characters": list('<>:"|?*\\'), "extensions": [".filepart", ".part", " ", "."]}
    with start(tmp_path, forbidden=forbidden) as server:
        rules = run(sink_for(server).name_rules())
        assert {":", "?", "\\", "/"} <= rules.forbidden_characters
        assert " " in rules.forbidden_extensions and "." in rules.forbidden_extensions
