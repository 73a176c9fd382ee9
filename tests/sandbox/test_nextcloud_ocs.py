"""OCS on the Nextcloud stand-in: capabilities, the current user, the share API and the
groupfolders admin API, with Nextcloud's envelopes and failures."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from tests.fixtures.nextcloud import (  # noqa: F401
    ADMIN,
    USERS,
    client,
    dav_url,
    nextcloud_fixture,
    propfind,
    start_thread_server,
)

OCS = {"OCS-APIRequest": "true"}
JSON = {**OCS, "Accept": "application/json"}
SHARES = "/ocs/v2.php/apps/files_sharing/api/v1/shares"


@pytest.fixture
def alice(nextcloud):
    with client(nextcloud.url, "alice") as http:
        yield http


def ocs_data(response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json()["ocs"]


def test_capabilities_in_both_versions_and_formats(nextcloud, alice):
    v1 = ocs_data(alice.get("/ocs/v1.php/cloud/capabilities?format=json", headers=OCS))
    v2 = ocs_data(alice.get("/ocs/v2.php/cloud/capabilities", headers=JSON))
    assert v1["meta"]["statuscode"] == 100 and v2["meta"]["statuscode"] == 200
    capabilities = v2["data"]["capabilities"]
    assert v1["data"] == v2["data"]
    assert v2["data"]["version"]["major"] == 31
    assert capabilities["dav"]["chunking"] == "1.0"
    assert capabilities["core"]["webdav-root"] == "remote.php/webdav"
    files = capabilities["files"]
    assert files["bigfilechunking"] is True
    assert files["forbidden_filenames"] == [".htaccess"]
    assert files["forbidden_filename_basenames"] == []
    assert files["forbidden_filename_characters"] == ["\\", "/"]
    assert files["forbidden_filename_extensions"] == [".filepart", ".part"]
    assert files["chunked_upload"] == {"max_size": 100 * 1024 * 1024, "max_parallel_count": 5}
    sharing = capabilities["files_sharing"]
    assert sharing["api_enabled"] and sharing["public"]["enabled"] and sharing["group_sharing"]
    assert sharing["user"]["send_mail"] is False

    xml = alice.get("/ocs/v1.php/cloud/capabilities", headers=OCS)
    assert xml.status_code == 200 and xml.headers["Content-Type"].startswith("application/xml")
    root = ElementTree.fromstring(xml.content)
    assert root.findtext("meta/statuscode") == "100"
    assert root.findtext("data/capabilities/dav/chunking") == "1.0"
    assert [e.text for e in root.findall("data/capabilities/files/forbidden_filename_characters/element")] == ["\\", "/"]


def test_ocs_without_the_api_header_or_credentials_is_997(nextcloud, alice):
    for version in (1, 2):
        missing_header = alice.get(f"/ocs/v{version}.php/cloud/user", headers={"Accept": "application/json"})
        assert missing_header.status_code == 401
        assert missing_header.json()["ocs"]["meta"]["statuscode"] == 997
    with client(nextcloud.url, "bob") as bob:
        bob.auth = ("bob", "wrong")
        assert bob.get("/ocs/v2.php/cloud/user", headers=JSON).status_code == 401


def test_cloud_user_reports_id_and_quota(nextcloud, alice):
    alice.put(dav_url(nextcloud.url, "alice", "a.bin"), content=b"x" * 1234)
    user = ocs_data(alice.get("/ocs/v1.php/cloud/user", headers=JSON))["data"]
    assert user["id"] == "alice" and user["display-name"] == "alice"
    assert user["quota"]["used"] == 1234 and user["quota"]["quota"] == -3
    assert user["groups"] == ["staff"]


def test_share_create_list_update_delete(nextcloud, alice):
    alice.request("MKCOL", dav_url(nextcloud.url, "alice", "Team"))
    alice.put(dav_url(nextcloud.url, "alice", "Team/budget.xlsx"), content=b"sheet")

    to_bob = ocs_data(alice.post(SHARES, headers=JSON, data={"path": "/Team", "shareType": 0, "shareWith": "bob", "permissions": 31}))["data"]
    assert to_bob["share_type"] == 0 and to_bob["share_with"] == "bob" and to_bob["permissions"] == 31
    assert to_bob["path"] == "/Team" and to_bob["item_type"] == "folder" and to_bob["uid_owner"] == "alice"
    file_share = ocs_data(alice.post(SHARES, headers=JSON, json={"path": "Team/budget.xlsx", "shareType": 1, "shareWith": "finance", "permissions": 31}))["data"]
    assert file_share["permissions"] == 19  # a file never gets create or delete
    link = ocs_data(alice.post(SHARES + "?path=/Team&shareType=3", headers=JSON))["data"]
    assert link["permissions"] == 1 and link["token"] and link["url"].endswith("/s/" + link["token"])

    listed = ocs_data(alice.get(SHARES, headers=JSON))["data"]
    assert [s["id"] for s in listed] == [to_bob["id"], file_share["id"], link["id"]]
    assert [s["id"] for s in ocs_data(alice.get(SHARES, params={"path": "/Team/budget.xlsx"}, headers=JSON))["data"]] == [file_share["id"]]
    assert [s["id"] for s in ocs_data(alice.get(SHARES, params={"path": "/Team", "subfiles": "true"}, headers=JSON))["data"]] == [file_share["id"]]
    with client(nextcloud.url, "bob") as bob:
        assert [s["id"] for s in ocs_data(bob.get(SHARES, params={"shared_with_me": "true"}, headers=JSON))["data"]] == [to_bob["id"]]
        assert bob.delete(f"{SHARES}/{to_bob['id']}", headers=JSON).status_code == 404  # not bob's share

    updated = ocs_data(alice.put(f"{SHARES}/{to_bob['id']}", headers=JSON, data={"permissions": 1}))["data"]
    assert updated["permissions"] == 1
    assert ocs_data(alice.get(f"{SHARES}/{to_bob['id']}", headers=JSON))["data"][0]["permissions"] == 1
    assert ocs_data(alice.delete(f"{SHARES}/{to_bob['id']}", headers=JSON))["meta"]["statuscode"] == 200
    gone = alice.get(f"{SHARES}/{to_bob['id']}", headers=JSON)
    assert gone.status_code == 404 and gone.json()["ocs"]["meta"]["message"] == "Wrong share ID, share does not exist"


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"path": "/Team", "shareType": 0, "shareWith": "nobody"}, 404, "Please specify a valid account to share with"),
    ({"path": "/Team", "shareType": 1, "shareWith": "ghosts"}, 404, "Please specify a valid group"),
    ({"path": "/Team", "shareType": 0, "shareWith": "alice"}, 403, "Cannot share with yourself"),
    ({"path": "/Nowhere", "shareType": 0, "shareWith": "bob"}, 404, "Wrong path, file/folder does not exist"),
    ({"path": "/Team", "shareType": 7, "shareWith": "bob"}, 400, "Unknown share type"),
])
def test_share_failures_answer_as_nextcloud(nextcloud, alice, form, status, message):
    alice.request("MKCOL", dav_url(nextcloud.url, "alice", "Team"))
    failed = alice.post(SHARES, headers=JSON, data=form)
    assert failed.status_code == status
    assert failed.json()["ocs"]["meta"] == {"status": "failure", "statuscode": status, "message": message,
                                            "totalitems": "", "itemsperpage": ""}
    v1 = alice.post("/ocs/v1.php/apps/files_sharing/api/v1/shares", headers=JSON, data=form)
    assert v1.status_code == 200 and v1.json()["ocs"]["meta"]["statuscode"] == status  # v1 keeps HTTP 200


def test_public_links_disabled_and_shares_kept_across_restarts(tmp_path):
    root = tmp_path / "nc"
    with start_thread_server(root, public_links=False) as server, client(server.url, "alice") as http:
        assert ocs_data(http.get("/ocs/v2.php/cloud/capabilities", headers=JSON))["data"]["capabilities"]["files_sharing"]["public"] == {"enabled": False}
        http.put(dav_url(server.url, "alice", "memo.txt"), content=b"memo")
        refused = http.post(SHARES, headers=JSON, data={"path": "/memo.txt", "shareType": 3})
        assert refused.status_code == 404
        assert refused.json()["ocs"]["meta"]["message"] == "Public link sharing is disabled by the administrator"
        kept = ocs_data(http.post(SHARES, headers=JSON, data={"path": "/memo.txt", "shareType": 0, "shareWith": "carol"}))["data"]
    with start_thread_server(root, public_links=False) as server, client(server.url, "alice") as http:
        assert [s["id"] for s in ocs_data(http.get(SHARES, headers=JSON))["data"]] == [kept["id"]]


def test_group_folders_are_admin_only_and_shared_by_the_members_of_their_groups(nextcloud):
    folders = "/index.php/apps/groupfolders/folders"
    with client(nextcloud.url, "alice") as alice, client(nextcloud.url, "bob") as bob, \
            client(nextcloud.url, "carol") as carol, client(nextcloud.url, "admin") as admin:
        denied = alice.post(folders, headers=JSON, data={"mountpoint": "Team Space"})
        assert denied.status_code == 200 and denied.json()["ocs"]["meta"]["statuscode"] == 403
        created = ocs_data(admin.post(folders, headers=JSON, data={"mountpoint": "Team Space"}))
        assert created["meta"]["statuscode"] == 100
        folder_id = created["data"]["id"]
        assert ocs_data(admin.post(f"{folders}/{folder_id}/groups", headers=JSON, data={"group": "staff"}))["data"] == {"success": True}
        listed = ocs_data(admin.get(folders, headers=JSON))["data"]
        assert listed[str(folder_id)]["mount_point"] == "Team Space" and listed[str(folder_id)]["groups"] == {"staff": 31}

        assert alice.put(dav_url(nextcloud.url, "alice", "Team Space/plan.md"), content=b"from alice").status_code == 201
        assert bob.get(dav_url(nextcloud.url, "bob", "Team Space/plan.md")).content == b"from alice"
        root_listing = propfind(bob, dav_url(nextcloud.url, "bob"), ["oc:permissions", "nc:mount-type"])
        mounted = root_listing["/remote.php/dav/files/bob/Team%20Space/"]
        assert "M" in mounted["oc:permissions"][1].text and mounted["nc:mount-type"][1].text == "group"
        assert carol.get(dav_url(nextcloud.url, "carol", "Team Space/plan.md")).status_code == 404  # not in staff

        ocs_data(admin.post(f"{folders}/{folder_id}/groups/staff", headers=JSON, data={"permissions": 1}))
        assert bob.put(dav_url(nextcloud.url, "bob", "Team Space/new.md"), content=b"x").status_code == 403
        ocs_data(admin.post(f"{folders}/{folder_id}/groups/staff", headers=JSON, data={"permissions": 31}))
        ocs_data(admin.post(f"{folders}/{folder_id}/quota", headers=JSON, data={"quota": 20}))
        assert bob.put(dav_url(nextcloud.url, "bob", "Team Space/big.md"), content=b"x" * 50).status_code == 507
        assert ocs_data(admin.get(f"{folders}/{folder_id}", headers=JSON))["data"]["quota"] == 20


def test_shares_follow_their_file_when_moved_and_go_with_it_when_deleted(nextcloud, alice):
    alice.put(dav_url(nextcloud.url, "alice", "draft.txt"), content=b"draft")
    alice.request("MKCOL", dav_url(nextcloud.url, "alice", "Final"))
    share = ocs_data(alice.post(SHARES, headers=JSON, data={"path": "/draft.txt", "shareType": 0, "shareWith": "bob"}))["data"]
    alice.request("MOVE", dav_url(nextcloud.url, "alice", "draft.txt"), headers={"Destination": dav_url(nextcloud.url, "alice", "Final/v1.txt")})
    assert ocs_data(alice.get(f"{SHARES}/{share['id']}", headers=JSON))["data"][0]["path"] == "/Final/v1.txt"
    alice.delete(dav_url(nextcloud.url, "alice", "Final"))
    assert ocs_data(alice.get(SHARES, headers=JSON))["data"] == []
    assert alice.get(f"{SHARES}/{share['id']}", headers=JSON).status_code == 404


def test_a_change_in_a_group_folder_changes_the_members_root_etag(nextcloud):
    with client(nextcloud.url, "admin") as admin, client(nextcloud.url, "alice") as alice:
        folder_id = ocs_data(admin.post("/index.php/apps/groupfolders/folders", headers=JSON, data={"mountpoint": "Shared"}))["data"]["id"]
        ocs_data(admin.post(f"/index.php/apps/groupfolders/folders/{folder_id}/groups", headers=JSON, data={"group": "staff"}))
        root_etag = lambda: propfind(alice, dav_url(nextcloud.url, "alice"), ["d:getetag"], depth="0")["/remote.php/dav/files/alice/"]["d:getetag"][1].text
        before = root_etag()
        alice.put(dav_url(nextcloud.url, "alice", "Shared/new.txt"), content=b"x")
        assert root_etag() != before
