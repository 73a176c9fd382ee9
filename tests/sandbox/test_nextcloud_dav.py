"""The Nextcloud stand-in's files WebDAV, driven over HTTP as a client would drive Nextcloud."""

from __future__ import annotations

import email.utils
import hashlib
import unicodedata
from urllib.parse import quote

import httpx
import pytest

from tests.fixtures.nextcloud import (  # noqa: F401
    USERS,
    client,
    dav_url,
    nextcloud_fixture,
    propfind,
    sabre_error,
    start_thread_server,
)


@pytest.fixture
def alice(nextcloud):
    with client(nextcloud.url, "alice") as http:
        yield http


def test_put_with_mtime_and_checksum_is_what_propfind_reports(nextcloud, alice):
    content = b"quarterly figures\n"
    checksum = f"SHA1:{hashlib.sha1(content).hexdigest()} MD5:{hashlib.md5(content).hexdigest()}"
    url = dav_url(nextcloud.url, "alice", "report.txt")
    created = alice.put(url, content=content, headers={"X-OC-MTime": "1500000000", "OC-Checksum": checksum})
    assert created.status_code == 201
    assert created.headers["X-OC-MTime"] == "accepted"
    assert created.headers["ETag"] == created.headers["OC-ETag"] and created.headers["ETag"].startswith('"')
    assert created.headers["OC-FileId"].startswith("00000")

    found = propfind(alice, url, ["d:getlastmodified", "d:getetag", "d:getcontentlength", "oc:checksums", "oc:fileid",
                                  "oc:id", "oc:size", "oc:permissions", "d:resourcetype", "d:getcontenttype"], depth="0")
    props = found["/remote.php/dav/files/alice/report.txt"]
    assert email.utils.parsedate_to_datetime(props["d:getlastmodified"][1].text).timestamp() == 1500000000
    assert props["d:getetag"][1].text == created.headers["ETag"]
    assert props["d:getcontentlength"][1].text == str(len(content)) == props["oc:size"][1].text
    assert props["oc:checksums"][1][0].text == checksum
    assert props["oc:id"][1].text == created.headers["OC-FileId"]
    assert int(props["oc:fileid"][1].text) == int(created.headers["OC-FileId"][:8])
    assert props["oc:permissions"][1].text == "RGDNVW"
    assert props["d:getcontenttype"][1].text == "text/plain"
    assert len(props["d:resourcetype"][1]) == 0

    replaced = alice.put(url, content=b"v2", headers={"X-OC-MTime": "1600000000"})
    assert replaced.status_code == 204
    assert replaced.headers["ETag"] != created.headers["ETag"]
    assert replaced.headers["OC-FileId"] == created.headers["OC-FileId"]
    props = propfind(alice, url, ["oc:checksums", "d:getlastmodified"], depth="0")["/remote.php/dav/files/alice/report.txt"]
    assert props["oc:checksums"][0] == 404  # a PUT without OC-Checksum clears the stored one
    assert email.utils.parsedate_to_datetime(props["d:getlastmodified"][1].text).timestamp() == 1600000000
    assert alice.get(url).content == b"v2"


def test_propfind_lists_folders_with_quota_and_answers_unknown_properties_404(nextcloud, alice):
    assert alice.request("MKCOL", dav_url(nextcloud.url, "alice", "Projects")).status_code == 201
    alice.put(dav_url(nextcloud.url, "alice", "Projects/plan a.md"), content=b"12345")
    found = propfind(alice, dav_url(nextcloud.url, "alice", "Projects"),
                     ["d:resourcetype", "oc:size", "d:quota-used-bytes", "d:quota-available-bytes", "x:unknown"])
    assert set(found) == {"/remote.php/dav/files/alice/Projects/", "/remote.php/dav/files/alice/Projects/plan%20a.md"}
    folder = found["/remote.php/dav/files/alice/Projects/"]
    assert folder["d:resourcetype"][1][0].tag == "{DAV:}collection"
    assert folder["oc:size"][1].text == "5" == folder["d:quota-used-bytes"][1].text
    assert folder["d:quota-available-bytes"][1].text == "-3"  # unlimited, as Nextcloud says
    assert folder["x:unknown"][0] == 404
    allprop = propfind(alice, dav_url(nextcloud.url, "alice", "Projects/plan a.md"), None, depth="0")
    assert set(allprop["/remote.php/dav/files/alice/Projects/plan%20a.md"]) == {
        "d:getlastmodified", "d:getcontentlength", "d:resourcetype", "d:getetag", "d:getcontenttype"}


def test_mkcol_delete_move_and_copy_answer_as_sabre(nextcloud, alice):
    url = lambda path: dav_url(nextcloud.url, "alice", path)
    assert alice.request("MKCOL", url("A")).status_code == 201
    assert alice.request("MKCOL", url("A")).status_code == 405
    assert alice.request("MKCOL", url("missing/B")).status_code == 409
    assert alice.put(url("missing/x.txt"), content=b"x").status_code == 404
    put = alice.put(url("A/one.txt"), content=b"one", headers={"X-OC-MTime": "1400000000"})
    alice.put(url("two.txt"), content=b"two")

    moved = alice.request("MOVE", url("A/one.txt"), headers={"Destination": url("one.txt")})
    assert moved.status_code == 201 and moved.headers["OC-FileId"] == put.headers["OC-FileId"]
    refused = alice.request("MOVE", url("one.txt"), headers={"Destination": url("two.txt"), "Overwrite": "F"})
    assert refused.status_code == 412
    assert alice.request("MOVE", url("one.txt"), headers={"Destination": url("two.txt")}).status_code == 204
    assert alice.get(url("two.txt")).content == b"one"
    assert alice.get(url("one.txt")).status_code == 404

    copied = alice.request("COPY", url("two.txt"), headers={"Destination": url("A/three.txt")})
    assert copied.status_code == 201 and copied.headers["OC-FileId"] != put.headers["OC-FileId"]
    assert alice.get(url("A/three.txt")).content == b"one"
    assert alice.request("COPY", url("A"), headers={"Destination": url("A/inner")}).status_code == 409

    assert alice.delete(url("A")).status_code == 204
    assert alice.delete(url("A")).status_code == 404
    assert sabre_error(alice.get(url("A/three.txt")))[0] == "Sabre\\DAV\\Exception\\NotFound"


def test_conditional_puts_fail_with_412(nextcloud, alice):
    url = dav_url(nextcloud.url, "alice", "once.txt")
    first = alice.put(url, content=b"first", headers={"If-None-Match": "*"})
    assert first.status_code == 201
    again = alice.put(url, content=b"second", headers={"If-None-Match": "*"})
    assert again.status_code == 412
    assert sabre_error(again)[0] == "Sabre\\DAV\\Exception\\PreconditionFailed"
    assert alice.put(url, content=b"second", headers={"If-Match": '"stale"'}).status_code == 412
    assert alice.put(url, content=b"second", headers={"If-Match": first.headers["ETag"]}).status_code == 204
    assert alice.get(url).content == b"second"


@pytest.mark.parametrize(("name", "message"), [
    (".htaccess", '".htaccess" is a forbidden file or folder name.'),
    ("notes.part", '".part" is a forbidden file type.'),
    ("draft.FILEPART", '".filepart" is a forbidden file type.'),
    ("back%5Cslash.txt", '"\\" is not allowed inside a file or folder name.'),
    ("bell%07.txt", "Invalid character in path"),
    ("%2E%2E", "Dot files are not allowed"),
    ("%20", "Empty filename is not allowed"),
])
def test_forbidden_names_are_refused_with_invalid_path(nextcloud, alice, name, message):
    response = alice.put(f"{nextcloud.url}/remote.php/dav/files/alice/{name}", content=b"x")
    assert response.status_code == 400, response.text
    assert sabre_error(response) == ("OCA\\DAV\\Connector\\Sabre\\Exception\\InvalidPath", message)


def test_names_allowed_by_default_are_stored(nextcloud, alice):
    for name in ("trailing space ", "trailing dot.", "CON", "quest?ion*"):  # Windows rules are off by default
        assert alice.put(dav_url(nextcloud.url, "alice", quote(name)), content=b"x").status_code == 201, name
    names = propfind(alice, dav_url(nextcloud.url, "alice"), ["d:resourcetype"])
    assert "/remote.php/dav/files/alice/quest%3Fion%2A" in names or "/remote.php/dav/files/alice/quest%3Fion*" in names


def test_forbidden_lists_are_configurable_and_announced(tmp_path):
    with start_thread_server(tmp_path / "nc", forbidden={"basenames": ["con"], "characters": ["?"], "extensions": [" ", "."]}) as server, \
            client(server.url, "alice") as http:
        files = http.get("/ocs/v2.php/cloud/capabilities", headers={"OCS-APIRequest": "true", "Accept": "application/json"}).json()
        announced = files["ocs"]["data"]["capabilities"]["files"]
        assert announced["forbidden_filename_characters"] == ["\\", "/", "?"]
        assert announced["forbidden_filename_extensions"] == [" ", ".", ".part"]
        for name, message in [("con.txt", '"con.txt" is a forbidden prefix for file or folder names.'),
                              ("what?", '"?" is not allowed inside a file or folder name.'),
                              ("end ", 'Filenames must not end with " ".')]:
            response = http.put(dav_url(server.url, "alice", quote(name)), content=b"x")
            assert response.status_code == 400 and sabre_error(response)[1] == message


def test_range_get_and_head(nextcloud, alice):
    url = dav_url(nextcloud.url, "alice", "digits.bin")
    alice.put(url, content=b"0123456789")
    part = alice.get(url, headers={"Range": "bytes=2-5"})
    assert part.status_code == 206 and part.content == b"2345"
    assert part.headers["Content-Range"] == "bytes 2-5/10"
    assert alice.get(url, headers={"Range": "bytes=-3"}).content == b"789"
    assert alice.get(url, headers={"Range": "bytes=7-"}).content == b"789"
    assert alice.get(url, headers={"Range": "bytes=20-"}).status_code == 416
    head = alice.head(url)
    assert head.status_code == 200 and head.headers["Content-Length"] == "10" and head.content == b""


def test_missing_or_wrong_credentials_get_401_with_the_nextcloud_realm(nextcloud):
    url = dav_url(nextcloud.url, "alice")
    anonymous = httpx.request("PROPFIND", url)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith('Basic realm="Nextcloud"')
    assert sabre_error(anonymous)[0] == "Sabre\\DAV\\Exception\\NotAuthenticated"
    assert httpx.request("PROPFIND", url, auth=("alice", "wrong")).status_code == 401


def test_other_users_files_and_uploads_are_out_of_reach(nextcloud, alice):
    with client(nextcloud.url, "bob") as bob:
        bob.put(dav_url(nextcloud.url, "bob", "private.txt"), content=b"bob's")
    assert alice.put(dav_url(nextcloud.url, "bob", "planted.txt"), content=b"x").status_code == 403
    assert alice.request("MKCOL", dav_url(nextcloud.url, "bob", "dir")).status_code == 403
    assert alice.get(dav_url(nextcloud.url, "bob", "private.txt")).status_code == 404
    listing = propfind(alice, dav_url(nextcloud.url, "bob"), ["d:resourcetype"])
    assert list(listing) == ["/remote.php/dav/files/bob/"]  # an empty collection, as Nextcloud shows it
    assert alice.request("MKCOL", f"{nextcloud.url}/remote.php/dav/uploads/bob/u1").status_code == 403
    with client(nextcloud.url, "admin") as admin:
        assert admin.put(dav_url(nextcloud.url, "alice", "by-admin.txt"), content=b"x").status_code == 403


def test_quota_refuses_an_upload_that_does_not_fit_with_507(tmp_path):
    with start_thread_server(tmp_path / "nc", quota=1000) as server, client(server.url, "alice") as http:
        assert http.put(dav_url(server.url, "alice", "fits.bin"), content=b"x" * 600).status_code == 201
        refused = http.put(dav_url(server.url, "alice", "too-big.bin"), content=b"x" * 600)
        assert refused.status_code == 507
        assert sabre_error(refused) == ("Sabre\\DAV\\Exception\\InsufficientStorage",
                                        "Insufficient space in /, 600 required, 400 available")
        early = http.put(dav_url(server.url, "alice", "announced.bin"), content=b"x", headers={"OC-Total-Length": "5000"})
        assert early.status_code == 507
        assert http.get(dav_url(server.url, "alice", "too-big.bin")).status_code == 404
        user = http.get("/ocs/v1.php/cloud/user?format=json", headers={"OCS-APIRequest": "true"}).json()["ocs"]["data"]
        assert user["quota"]["used"] == 600 and user["quota"]["free"] == 400 and user["quota"]["quota"] == 1000


def test_a_put_cut_mid_body_leaves_no_file(nextcloud, alice):
    url = dav_url(nextcloud.url, "alice", "cut.bin")
    nextcloud.cut_next_upload(after_bytes=300_000)
    with pytest.raises(httpx.TransportError):
        alice.put(url, content=b"z" * 1_000_000)
    assert alice.get(url).status_code == 404
    assert not any((nextcloud.instance.store.root / "tmp").iterdir())
    assert alice.put(url, content=b"z" * 1_000_000).status_code == 201  # the hook fires once


def test_names_are_kept_in_unicode_nfc_and_hrefs_percent_encoded(nextcloud, alice):
    decomposed = unicodedata.normalize("NFD", "Café & Crème.txt")
    assert alice.put(dav_url(nextcloud.url, "alice", quote(decomposed)), content=b"x").status_code == 201
    listing = propfind(alice, dav_url(nextcloud.url, "alice"), ["d:resourcetype"])
    composed = quote(unicodedata.normalize("NFC", "Café & Crème.txt"))
    assert f"/remote.php/dav/files/alice/{composed}" in listing
    assert "%26" in composed and alice.get(dav_url(nextcloud.url, "alice", composed)).content == b"x"


def test_depth_infinity_is_refused_unless_allowed(nextcloud, alice, tmp_path):
    assert alice.request("PROPFIND", dav_url(nextcloud.url, "alice"), headers={"Depth": "infinity"}).status_code == 403
    with start_thread_server(tmp_path / "deep", propfind_infinity=True) as server, client(server.url, "alice") as http:
        http.request("MKCOL", dav_url(server.url, "alice", "a"))
        http.put(dav_url(server.url, "alice", "a/b.txt"), content=b"b")
        listing = propfind(http, dav_url(server.url, "alice"), ["d:resourcetype"], depth="infinity")
        assert set(listing) == {"/remote.php/dav/files/alice/", "/remote.php/dav/files/alice/a/", "/remote.php/dav/files/alice/a/b.txt"}
