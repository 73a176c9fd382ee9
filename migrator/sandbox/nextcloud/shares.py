"""The OCS share API (apps/files_sharing/api/v1/shares): create, list, read, update and delete
user, group and public-link shares with Nextcloud's checks and messages. Shares are kept in the
store, so a restarted server still has them, and follow their node by file id: a moved file keeps
its shares, a deleted one loses them. They are records only (a share does not mount the file in
the recipient's files)."""

from __future__ import annotations

import secrets
import time

from migrator.sandbox.nextcloud.http import Request
from migrator.sandbox.nextcloud.instance import Instance
from migrator.sandbox.nextcloud.namespace import ALL, CREATE, DELETE, READ, Entry
from migrator.sandbox.nextcloud.ocs import OcsError
from migrator.sandbox.nextcloud.properties import content_type

USER, GROUP, LINK = 0, 1, 3
WRONG_ID = "Wrong share ID, share does not exist"


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


class Shares:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.store = instance.store

    def entry(self, user: str, path: str) -> Entry | None:
        namespace = self.instance.namespace
        return namespace.entry(namespace.locate(user, path))

    def current(self, record: dict) -> dict | None:
        """The record with the node's current path; None (and the share dropped) when it is gone."""
        key = self.store.key_of(record["fileid"])
        path = self.instance.namespace.path_of(record["uid_owner"], key) if key else None
        if path is None or self.entry(record["uid_owner"], path) is None:
            self.store.delete_share(record["id"])
            return None
        return {**record, "path": path}

    def live(self) -> list[dict]:
        return [r for r in map(self.current, self.store.shares()) if r is not None]

    def format(self, record: dict, base_url: str) -> dict:
        owner = record["uid_owner"]
        entry = self.entry(owner, record["path"])
        meta = self.store.meta(entry.location.key) if entry else None
        parent = self.entry(owner, entry.location.parent_path) if entry else None
        share_with = record["share_with"]
        formatted = {
            "id": str(record["id"]), "share_type": record["share_type"], "uid_owner": owner, "displayname_owner": owner,
            "permissions": record["permissions"], "can_edit": True, "can_delete": True, "stime": record["stime"],
            "parent": None, "expiration": record.get("expiration"), "token": record.get("token"),
            "uid_file_owner": owner, "note": record.get("note", ""), "label": record.get("label", ""),
            "displayname_file_owner": owner, "path": "/" + record["path"],
            "item_type": record["item_type"], "item_permissions": ALL if record["item_type"] == "folder" else 27,
            "is-mount-root": False, "mount-type": "",
            "mimetype": "httpd/unix-directory" if record["item_type"] == "folder" else content_type(record["path"]),
            "has_preview": False, "storage_id": entry.location.mount.storage_id if entry else "",
            "storage": 1, "item_source": meta.fileid if meta else None, "file_source": meta.fileid if meta else None,
            "file_parent": self.store.meta(parent.location.key).fileid if parent else None,
            "file_target": "/" + record["path"].rsplit("/", 1)[-1], "item_size": entry.size if entry else 0,
            "item_mtime": int(entry.mtime) if entry else 0,
            "share_with": share_with, "share_with_displayname": share_with,
            "mail_send": 0, "hide_download": 0, "attributes": None,
        }
        if record["share_type"] == LINK:
            url = f"{base_url}/s/{record['token']}"
            formatted.update({"share_with": None, "share_with_displayname": "", "share_with_link": url, "url": url,
                              "password": None, "send_password_by_talk": False})
        return formatted

    # -- endpoints --------------------------------------------------------------------------

    def list(self, request: Request, user: str) -> list[dict]:
        params = request.params()
        records = self.live()
        if _flag(params.get("shared_with_me")):
            mine = set(self.instance.namespace.user_groups(user))
            records = [r for r in records if (r["share_type"] == USER and r["share_with"] == user)
                       or (r["share_type"] == GROUP and r["share_with"] in mine)]
            return [self.format(r, request.base_url) for r in records]
        path = params.get("path", "").strip("/") if params.get("path") else None
        if path is not None:
            entry = self.entry(user, path)
            if entry is None:
                raise OcsError(404, "Wrong path, file/folder does not exist")
            if _flag(params.get("subfiles")):
                if not entry.is_dir:
                    raise OcsError(400, "Not a directory")
                prefix = path + "/" if path else ""
                records = [r for r in records if r["path"].startswith(prefix) and "/" not in r["path"][len(prefix):]]
            else:
                records = [r for r in records if r["path"] == path]
        if not _flag(params.get("reshares")) or path is None:
            records = [r for r in records if r["uid_owner"] == user]
        return [self.format(r, request.base_url) for r in records]

    def create(self, request: Request, user: str) -> dict:
        params = request.params()
        path = params.get("path")
        if not path:
            raise OcsError(404, "Please specify a file or folder path")
        entry = self.entry(user, path.strip("/"))
        if entry is None or not entry.location.path:
            raise OcsError(404, "Wrong path, file/folder does not exist")
        share_type = params.get("shareType", "")
        if not share_type.lstrip("-").isdigit():
            raise OcsError(400, "Unknown share type")
        share_type_value = int(share_type)
        permissions_text = params.get("permissions")
        if permissions_text not in (None, ""):
            if not permissions_text.lstrip("-").isdigit():
                raise OcsError(400, "Wrong permissions")
            permissions = int(permissions_text)
        else:
            permissions = READ if share_type_value == LINK else ALL
        if permissions < 0 or permissions > ALL:
            raise OcsError(400, "Wrong permissions")
        if not entry.is_dir:
            permissions &= ~(CREATE | DELETE)  # single file shares never have create or delete permissions
        share_with = params.get("shareWith") or None
        record = {"uid_owner": user, "fileid": self.store.meta(entry.location.key).fileid, "share_type": share_type_value, "share_with": share_with, "permissions": permissions,
                  "path": entry.location.path, "item_type": "folder" if entry.is_dir else "file",
                  "stime": int(time.time()), "token": None, "note": params.get("note", ""), "label": params.get("label", ""),
                  "expiration": params.get("expireDate") or None}
        if share_type_value == USER:
            if share_with is None or share_with not in self.instance.accounts:
                raise OcsError(404, "Please specify a valid account to share with")
            if share_with == user:
                raise OcsError(403, "Cannot share with yourself")
        elif share_type_value == GROUP:
            if not self.instance.settings.group_sharing:
                raise OcsError(404, "Group sharing is disabled by the administrator")
            if share_with is None or share_with not in self.instance.groups:
                raise OcsError(404, "Please specify a valid group")
        elif share_type_value == LINK:
            if not self.instance.settings.public_links:
                raise OcsError(404, "Public link sharing is disabled by the administrator")
            record["share_with"] = None
            record["token"] = secrets.token_urlsafe(11)[:15]
        else:
            raise OcsError(400, "Unknown share type")
        if not permissions & READ and share_type_value != LINK:
            raise OcsError(403, "Shares need at least read permissions")
        if share_type_value in (USER, GROUP):
            for other in self.live():
                if (other["path"], other["share_type"], other["share_with"], other["uid_owner"]) == \
                        (record["path"], share_type_value, share_with, user):
                    kind = "account" if share_type_value == USER else "group"
                    raise OcsError(403, f"Sharing {entry.location.name} failed, because this item is already shared with the {kind} {share_with}")
        return self.format(self.store.add_share(record), request.base_url)

    def owned(self, user: str, share_id: str) -> dict:
        record = self.store.share(int(share_id)) if share_id.isdigit() else None
        record = self.current(record) if record is not None else None
        if record is None or record["uid_owner"] != user:
            raise OcsError(404, WRONG_ID)
        return record

    def get(self, request: Request, user: str, share_id: str) -> list[dict]:
        return [self.format(self.owned(user, share_id), request.base_url)]

    def update(self, request: Request, user: str, share_id: str) -> dict:
        record = self.owned(user, share_id)
        params = request.params()
        known = ("permissions", "password", "publicUpload", "expireDate", "note", "label", "hideDownload", "attributes",
                 "sendPasswordByTalk")
        if not any(k in params for k in known):
            raise OcsError(400, "Wrong or no update parameter given")
        if "permissions" in params:
            if not params["permissions"].isdigit() or int(params["permissions"]) > ALL:
                raise OcsError(400, "Wrong permissions")
            permissions = int(params["permissions"])
            if record["item_type"] == "file":
                permissions &= ~(CREATE | DELETE)
            if not permissions & READ and record["share_type"] != LINK:
                raise OcsError(400, "Share must at least have READ or CREATE permissions")
            record["permissions"] = permissions
        for key in ("note", "label"):
            if key in params:
                record[key] = params[key]
        if "expireDate" in params:
            record["expiration"] = params["expireDate"] or None
        self.store.update_share(record)
        return self.format(record, request.base_url)

    def delete(self, request: Request, user: str, share_id: str) -> list:
        record = self.owned(user, share_id)
        self.store.delete_share(record["id"])
        return []
