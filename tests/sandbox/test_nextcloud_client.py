"""nc-py-api, a client written against real Nextcloud, works with the stand-in: strong evidence
that the stand-in's answers have Nextcloud's shapes."""

from __future__ import annotations

import io
import warnings

import pytest
from nc_py_api import Nextcloud, NextcloudException
from nc_py_api.files import ShareType

from tests.fixtures.nextcloud import USERS, nextcloud_fixture  # noqa: F401


@pytest.fixture
def nc(nextcloud):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the sync client is deprecated, not gone
        return Nextcloud(nextcloud_url=nextcloud.url, nc_auth_user="alice", nc_auth_pass=USERS["alice"])


def test_capabilities_user_and_version(nc):
    assert nc.user == "alice"
    assert nc.srv_version["major"] == 31
    assert nc.capabilities["files"]["forbidden_filenames"] == [".htaccess"]
    assert nc.files.sharing.available


def test_files_upload_list_download_and_chunked_upload(nc):
    uploaded = nc.files.upload("notes.txt", b"first notes")
    assert uploaded.file_id and uploaded.etag
    nc.files.mkdir("Archive")
    listing = {node.name: node for node in nc.files.listdir()}
    assert set(listing) == {"notes.txt", "Archive"}
    assert listing["Archive"].is_dir and not listing["notes.txt"].is_dir
    assert listing["notes.txt"].info.size == len(b"first notes")
    assert listing["notes.txt"].file_id == uploaded.file_id
    assert nc.files.download("notes.txt") == b"first notes"

    content = bytes(range(256)) * (6 * 1024 * 4 + 3)  # a little over 6 MiB: two 5 MiB v2 chunks
    streamed = nc.files.upload_stream("Archive/blob.bin", io.BytesIO(content), chunk_size=5 * 1024 * 1024)
    assert streamed.file_id
    assert nc.files.download("Archive/blob.bin") == content
    node = nc.files.by_path("Archive/blob.bin")
    assert node.info.size == len(content) and node.etag == streamed.etag

    moved = nc.files.move("notes.txt", "Archive/notes.txt")  # nc-py-api finds the result by SEARCH on its file id
    assert moved.file_id == uploaded.file_id and moved.user_path == "Archive/notes.txt"
    copied = nc.files.copy("Archive/notes.txt", "notes.txt")
    assert copied.file_id != uploaded.file_id and nc.files.download("notes.txt") == b"first notes"
    assert [n.name for n in nc.files.find(["like", "name", "%.bin"])] == ["blob.bin"]

    nc.files.delete("notes.txt")
    assert sorted(n.name for n in nc.files.listdir()) == ["Archive"]
    with pytest.raises(NextcloudException) as missing:
        nc.files.download("notes.txt")
    assert missing.value.status_code == 404


def test_sharing_create_and_list(nc):
    nc.files.upload("plan.md", b"# plan")
    to_bob = nc.files.sharing.create("plan.md", ShareType.TYPE_USER, share_with="bob")
    assert to_bob.share_with == "bob" and to_bob.path == "plan.md"
    link = nc.files.sharing.create("plan.md", ShareType.TYPE_LINK)
    assert link.url and link.share_type == ShareType.TYPE_LINK
    assert [s.share_id for s in nc.files.sharing.get_list()] == [to_bob.share_id, link.share_id]
    assert nc.files.sharing.get_by_id(to_bob.share_id).share_with == "bob"
    with pytest.raises(NextcloudException) as refused:
        nc.files.sharing.create("plan.md", ShareType.TYPE_USER, share_with="nobody")
    assert refused.value.status_code == 404
    nc.files.sharing.delete(link)
    assert [s.share_id for s in nc.files.sharing.get_list()] == [to_bob.share_id]
