"""Nextcloud's OCS APIs beside WebDAV: the JSON envelope every answer comes in, and the
groupfolders app's admin API, through which each SharePoint site becomes a Group Folder."""

from __future__ import annotations

import json
from typing import Any

from connectors.dav_http import DavConnection, said
from migrator.errors import ItemError

OCS = {"OCS-APIRequest": "true", "Accept": "application/json"}
FOLDERS = "/index.php/apps/groupfolders/folders"
ADMIN_GROUP = "admin"  # the account that writes a Group Folder must see it: admins do, through this group


def ocs_envelope(content: bytes) -> tuple[int, str, Any]:
    """(statuscode, message, data) of an OCS JSON envelope."""
    try:
        ocs = json.loads(content or b"{}")["ocs"]
        meta = ocs.get("meta") or {}
        return int(meta.get("statuscode", 0)), str(meta.get("message") or ""), ocs.get("data")
    except (ValueError, KeyError, TypeError):
        return 0, "the answer is not an OCS envelope", None


async def _ocs_call(http: DavConnection, owner: str, method: str, path: str, form: dict[str, str] | None = None) -> Any:
    answer = await http.request(owner, method, path, refusal_fails=False, params={"format": "json"}, data=form, headers=OCS)
    status, message, data = ocs_envelope(answer.content)
    if answer.status != 200 or status not in (100, 200):
        hint = " (is the groupfolders app enabled, and the account a Nextcloud admin?)" if answer.status in (401, 403, 404) else ""
        raise ItemError(f"{method} {path} as {http.account(owner)[0]}: {message or said(answer)}{hint}")
    return data


async def list_group_folders(http: DavConnection, owner: str) -> list[dict[str, Any]]:
    listed = await _ocs_call(http, owner, "GET", FOLDERS)
    return list(listed.values() if isinstance(listed, dict) else (listed or []))


async def ensure_group_folder(http: DavConnection, owner: str, mount_point: str, groups: list[str]) -> int:
    """The id of the Group Folder mounted at `mount_point`, created if missing and given `groups`
    (with every permission) plus the admin group."""
    folders = await list_group_folders(http, owner)
    found = next((f for f in folders if f.get("mount_point") == mount_point), None)
    if found is None:
        found = await _ocs_call(http, owner, "POST", FOLDERS, {"mountpoint": mount_point})
    folder_id = int(found["id"])
    have = found.get("groups") or {}
    for group in [*groups, ADMIN_GROUP]:
        if group not in have:
            await _ocs_call(http, owner, "POST", f"{FOLDERS}/{folder_id}/groups", {"group": group})
    return folder_id
