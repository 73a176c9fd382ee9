"""The groupfolders app's admin API (/index.php/apps/groupfolders/folders, OCS envelope): folders
with a mount point, the groups that see them with their permissions, and a quota. A folder is one
directory in the store, mounted into the files of every member of its groups."""

from __future__ import annotations

import re
from dataclasses import replace

from migrator.sandbox.nextcloud.http import Request
from migrator.sandbox.nextcloud.instance import Instance
from migrator.sandbox.nextcloud.namespace import ALL
from migrator.sandbox.nextcloud.ocs import OcsError
from migrator.sandbox.nextcloud.store import GroupFolder

SUCCESS = {"success": True}


class GroupFolders:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.store = instance.store

    def describe(self, folder: GroupFolder) -> dict:
        return folder.as_json(self.store.used_bytes(self.store.disk(f"groupfolders/{folder.id}")))

    def folder(self, folder_id: str) -> GroupFolder:
        folder = self.store.group_folder(int(folder_id)) if folder_id.isdigit() else None
        if folder is None:
            raise OcsError(404, "Folder not found")
        return folder

    def mount_point(self, params: dict[str, str]) -> str:
        mount_point = params.get("mountpoint", "").strip("/")
        problem = self.instance.names.problem(mount_point) if "/" not in mount_point else None
        if not mount_point or problem:
            raise OcsError(400, problem or "Mount point can not be empty")
        return mount_point

    def handle(self, request: Request, user: str, rest: str):
        if not self.instance.is_admin(user):
            raise OcsError(403, "Logged in account must be an admin")
        method, params = request.method, request.params() if request.method in ("POST", "PUT") else {}
        if rest in ("folders", "folders/"):
            if method == "GET":
                return {str(f.id): self.describe(f) for f in self.store.group_folders()}
            if method == "POST":
                folder = self.store.add_group_folder(self.mount_point(params))
                return self.describe(folder)
        if match := re.fullmatch(r"folders/(\d+)/?", rest):
            folder = self.folder(match.group(1))
            if method == "GET":
                return self.describe(folder)
            if method == "DELETE":
                self.store.delete_group_folder(folder.id)
                return SUCCESS
        if match := re.fullmatch(r"folders/(\d+)/groups/?", rest):
            folder = self.folder(match.group(1))
            if method == "POST":
                group = params.get("group", "")
                if group not in self.instance.groups:
                    raise OcsError(404, "Group not found")
                self.store.save_group_folder(replace(folder, groups={**folder.groups, group: ALL}))
                return SUCCESS
        if match := re.fullmatch(r"folders/(\d+)/groups/([^/]+)/?", rest):
            folder, group = self.folder(match.group(1)), match.group(2)
            if method == "DELETE":
                self.store.save_group_folder(replace(folder, groups={g: p for g, p in folder.groups.items() if g != group}))
                return SUCCESS
            if method == "POST":
                if group not in folder.groups:
                    raise OcsError(404, "Group not found")
                permissions = params.get("permissions", "")
                if not permissions.isdigit() or not 0 < int(permissions) <= ALL:
                    raise OcsError(400, "Invalid permissions")
                self.store.save_group_folder(replace(folder, groups={**folder.groups, group: int(permissions)}))
                return SUCCESS
        if match := re.fullmatch(r"folders/(\d+)/quota/?", rest):
            folder = self.folder(match.group(1))
            if method == "POST":
                quota = params.get("quota", "")
                if not quota.lstrip("-").isdigit():
                    raise OcsError(400, "Invalid quota")
                self.store.save_group_folder(replace(folder, quota=int(quota)))
                return SUCCESS
        if match := re.fullmatch(r"folders/(\d+)/mountpoint/?", rest):
            folder = self.folder(match.group(1))
            if method == "POST":
                self.store.save_group_folder(replace(folder, mount_point=self.mount_point(params)))
                return SUCCESS
        raise OcsError(998, "Invalid query, please check the syntax. API specifications are here: http://www.freedesktop.org/wiki/Specifications/open-collaboration-services.")
