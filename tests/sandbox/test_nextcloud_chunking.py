"""Chunked upload v2 against the Nextcloud stand-in: a few MB in small chunks, broken off by a cut
connection, resumed from what PROPFIND says arrived, assembled by MOVE .../.file."""

from __future__ import annotations

import email.utils
import hashlib
import os
import time

import httpx
import pytest

from tests.fixtures.nextcloud import (  # noqa: F401
    SMALL_CHUNKS,
    client,
    dav_url,
    nextcloud_fixture,
    propfind,
    sabre_error,
    start_thread_server,
)

CHUNK = SMALL_CHUNKS * 4


@pytest.fixture
def alice(nextcloud):
    with client(nextcloud.url, "alice") as http:
        yield http


def uploads_url(server_url: str, upload: str, chunk: str = "") -> str:
    return f"{server_url}/remote.php/dav/uploads/alice/{upload}" + (f"/{chunk}" if chunk else "")


def received_chunks(http: httpx.Client, server_url: str, upload: str) -> dict[int, int]:
    """What a resuming client asks first: chunk number -> size, from a Depth 1 PROPFIND."""
    listing = propfind(http, uploads_url(server_url, upload), ["d:getcontentlength", "d:resourcetype"])
    prefix = f"/remote.php/dav/uploads/alice/{upload}/"
    return {int(href[len(prefix):]): int(props["d:getcontentlength"][1].text)
            for href, props in listing.items() if href != prefix}


def test_chunked_upload_resumes_after_a_cut_and_assembles_in_order(nextcloud, alice):
    content = os.urandom(3 * 1024 * 1024 + 12345)
    pieces = [content[i:i + CHUNK] for i in range(0, len(content), CHUNK)]
    target = dav_url(nextcloud.url, "alice", "Backups/archive.tar")
    assert alice.request("MKCOL", dav_url(nextcloud.url, "alice", "Backups")).status_code == 201
    headers = {"Destination": target, "OC-Total-Length": str(len(content))}
    assert alice.request("MKCOL", uploads_url(nextcloud.url, "u-1"), headers={"Destination": target}).status_code == 201

    for number in (1, 2, 3):
        assert alice.put(uploads_url(nextcloud.url, "u-1", str(number)), content=pieces[number - 1], headers=headers).status_code == 201
    nextcloud.cut_next_upload(after_bytes=CHUNK // 2)
    with pytest.raises(httpx.TransportError):
        alice.put(uploads_url(nextcloud.url, "u-1", "4"), content=pieces[3], headers=headers)

    received = received_chunks(alice, nextcloud.url, "u-1")
    assert received == {1: CHUNK, 2: CHUNK, 3: CHUNK}  # the cut chunk left nothing behind
    for number in range(1, len(pieces) + 1):  # send only what is missing, last chunks first on purpose
        if number not in received:
            alice.put(uploads_url(nextcloud.url, "u-1", str(number)), content=pieces[number - 1], headers=headers)
    assert sorted(received_chunks(alice, nextcloud.url, "u-1")) == list(range(1, len(pieces) + 1))

    checksum = "SHA1:" + hashlib.sha1(content).hexdigest()
    assembled = alice.request("MOVE", uploads_url(nextcloud.url, "u-1", ".file"),
                              headers={**headers, "X-OC-MTime": "1700000000", "OC-Checksum": checksum})
    assert assembled.status_code == 201, assembled.text
    assert assembled.headers["X-OC-MTime"] == "accepted"
    assert assembled.headers["OC-FileId"] and assembled.headers["ETag"] == assembled.headers["OC-ETag"]
    assert alice.get(target).content == content
    props = propfind(alice, target, ["d:getlastmodified", "oc:checksums", "d:getetag"], depth="0")["/remote.php/dav/files/alice/Backups/archive.tar"]
    assert email.utils.parsedate_to_datetime(props["d:getlastmodified"][1].text).timestamp() == 1700000000
    assert props["oc:checksums"][1][0].text == checksum
    assert props["d:getetag"][1].text == assembled.headers["ETag"]
    assert alice.request("PROPFIND", uploads_url(nextcloud.url, "u-1"), headers={"Depth": "0"}).status_code == 404


def test_assembling_over_an_existing_file_answers_204_and_honours_if_match(nextcloud, alice):
    target = dav_url(nextcloud.url, "alice", "data.bin")
    first = alice.put(target, content=b"old")
    alice.request("MKCOL", uploads_url(nextcloud.url, "u-2"), headers={"Destination": target})
    alice.put(uploads_url(nextcloud.url, "u-2", "1"), content=b"a" * SMALL_CHUNKS, headers={"Destination": target})
    alice.put(uploads_url(nextcloud.url, "u-2", "2"), content=b"b", headers={"Destination": target})
    stale = alice.request("MOVE", uploads_url(nextcloud.url, "u-2", ".file"), headers={"Destination": target, "If-Match": '"stale"'})
    assert stale.status_code == 412
    refused = alice.request("MOVE", uploads_url(nextcloud.url, "u-2", ".file"), headers={"Destination": target, "If-None-Match": "*"})
    assert refused.status_code == 412
    done = alice.request("MOVE", uploads_url(nextcloud.url, "u-2", ".file"),
                         headers={"Destination": target, "If-Match": first.headers["ETag"]})
    assert done.status_code == 204
    assert done.headers["OC-FileId"] == first.headers["OC-FileId"]
    assert alice.get(target).content == b"a" * SMALL_CHUNKS + b"b"


def test_version_2_rules_are_enforced(nextcloud, alice):
    target = dav_url(nextcloud.url, "alice", "rules.bin")
    other = dav_url(nextcloud.url, "alice", "elsewhere.bin")
    alice.request("MKCOL", uploads_url(nextcloud.url, "u-3"), headers={"Destination": target})
    for name in ("0", "10001", "first"):
        refused = alice.put(uploads_url(nextcloud.url, "u-3", name), content=b"x", headers={"Destination": target})
        assert refused.status_code == 400
        assert sabre_error(refused)[1] == "Invalid chunk name, must be numeric between 1 and 10000"
    assert alice.put(uploads_url(nextcloud.url, "u-3", "1"), content=b"x").status_code == 400  # no Destination
    assert alice.put(uploads_url(nextcloud.url, "u-3", "1"), content=b"x", headers={"Destination": other}).status_code == 400
    alice.put(uploads_url(nextcloud.url, "u-3", "1"), content=b"x" * 10, headers={"Destination": target})
    alice.put(uploads_url(nextcloud.url, "u-3", "2"), content=b"y" * 10, headers={"Destination": target})
    too_small = alice.request("MOVE", uploads_url(nextcloud.url, "u-3", ".file"), headers={"Destination": target})
    assert too_small.status_code == 400 and "minimum" in sabre_error(too_small)[1]
    alice.put(uploads_url(nextcloud.url, "u-3", "1"), content=b"x" * SMALL_CHUNKS, headers={"Destination": target})
    wrong_total = alice.request("MOVE", uploads_url(nextcloud.url, "u-3", ".file"),
                                headers={"Destination": target, "OC-Total-Length": "5"})
    assert wrong_total.status_code == 400
    assert sabre_error(wrong_total)[1] == f"Chunks on server do not sum up to 5 but to {SMALL_CHUNKS + 10} bytes"
    assert alice.get(uploads_url(nextcloud.url, "u-3", "1")).status_code == 403  # chunks cannot be downloaded
    assert alice.get(target).status_code == 404
    assert alice.delete(uploads_url(nextcloud.url, "u-3")).status_code == 204  # cancelled
    assert alice.request("PROPFIND", uploads_url(nextcloud.url, "u-3")).status_code == 404


def test_chunks_announcing_more_than_the_quota_are_refused_early(tmp_path):
    with start_thread_server(tmp_path / "nc", quota=100_000) as server, client(server.url, "alice") as http:
        target = dav_url(server.url, "alice", "huge.bin")
        http.request("MKCOL", f"{server.url}/remote.php/dav/uploads/alice/u-4", headers={"Destination": target})
        refused = http.put(f"{server.url}/remote.php/dav/uploads/alice/u-4/1", content=b"x" * 1000,
                           headers={"Destination": target, "OC-Total-Length": "500000"})
        assert refused.status_code == 507
        assert sabre_error(refused)[0] == "Sabre\\DAV\\Exception\\InsufficientStorage"


def test_version_1_uploads_without_destination_assemble_by_name(nextcloud, alice):
    alice.request("MKCOL", uploads_url(nextcloud.url, "legacy"))
    alice.put(uploads_url(nextcloud.url, "legacy", "000000000000003-000000000000005"), content=b"de")
    alice.put(uploads_url(nextcloud.url, "legacy", "000000000000000-000000000000003"), content=b"abc")
    target = dav_url(nextcloud.url, "alice", "legacy.txt")
    assert alice.request("MOVE", uploads_url(nextcloud.url, "legacy", ".file"), headers={"Destination": target}).status_code == 201
    assert alice.get(target).content == b"abcde"


def test_an_upload_idle_for_a_day_expires(nextcloud, alice):
    alice.request("MKCOL", uploads_url(nextcloud.url, "stale"))
    alice.put(uploads_url(nextcloud.url, "stale", "1"), content=b"x")
    alice.request("MKCOL", uploads_url(nextcloud.url, "fresh"))
    folder = nextcloud.instance.store.root / "uploads" / "alice" / "stale"
    a_day_ago = time.time() - 25 * 3600
    os.utime(folder, (a_day_ago, a_day_ago))
    assert alice.request("PROPFIND", uploads_url(nextcloud.url, "stale")).status_code == 404
    assert alice.request("PROPFIND", uploads_url(nextcloud.url, "fresh")).status_code == 207
