"""What one user sees under /remote.php/dav/files/<user>/: their home folder, with each group
folder of their groups mounted at its mount point, and the permissions each place grants."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from migrator.sandbox.nextcloud.store import GroupFolder, Store

READ, UPDATE, CREATE, DELETE, SHARE = 1, 2, 4, 8, 16
ALL = 31
UNLIMITED = -3  # Nextcloud's SPACE_UNLIMITED


@dataclass(frozen=True)
class Mount:
    storage_root: str  # store key of the mounted directory
    mount_point: str  # "" for the home folder
    permissions: int
    quota: int  # bytes, or UNLIMITED
    folder: GroupFolder | None = None

    @property
    def storage_id(self) -> str:
        return f"local::{self.storage_root}" if self.folder else f"home::{self.storage_root.split('/', 1)[1]}"


@dataclass(frozen=True)
class Location:
    """A path in a user's files, whether or not anything is there yet."""

    user: str
    path: str  # user-visible, no leading or trailing slash; "" is the root
    mount: Mount
    key: str  # store key

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent_path(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def is_mount_root(self) -> bool:
        return self.key == self.mount.storage_root


@dataclass(frozen=True)
class Entry:
    """A node that exists: its location and what the disk says about it."""

    location: Location
    disk: Path
    is_dir: bool
    size: int
    mtime: float


class Namespace:
    def __init__(self, store: Store, groups: dict[str, list[str]], quota: int | None) -> None:
        self.store, self.groups, self.quota = store, groups, quota

    def user_groups(self, user: str) -> list[str]:
        return [g for g, members in self.groups.items() if user in members]

    def mounts(self, user: str) -> list[Mount]:
        mine = set(self.user_groups(user))
        mounts = []
        for folder in self.store.group_folders():
            granted = 0
            for group, permissions in folder.groups.items():
                if group in mine:
                    granted |= permissions
            if granted:
                mounts.append(Mount(f"groupfolders/{folder.id}", folder.mount_point, granted, folder.quota, folder))
        return mounts

    def home(self, user: str) -> Mount:
        root = f"files/{user}"
        self.store.disk(root).mkdir(parents=True, exist_ok=True)
        return Mount(root, "", ALL, UNLIMITED if self.quota is None else self.quota)

    def locate(self, user: str, path: str) -> Location:
        path = path.strip("/")
        for mount in self.mounts(user):
            if path == mount.mount_point or path.startswith(mount.mount_point + "/"):
                rest = path[len(mount.mount_point):].strip("/")
                return Location(user, path, mount, mount.storage_root + ("/" + rest if rest else ""))
        home = self.home(user)
        return Location(user, path, home, home.storage_root + ("/" + path if path else ""))

    def path_of(self, user: str, key: str) -> str | None:
        """Where the node stored at `key` appears in `user`'s files, or None when they cannot see it."""
        for mount in [self.home(user), *self.mounts(user)]:
            root = mount.storage_root
            if key == root or key.startswith(root + "/"):
                return "/".join(p for p in (mount.mount_point, key[len(root):].strip("/")) if p)
        return None

    def entry(self, location: Location) -> Entry | None:
        disk = self.store.disk(location.key)
        try:
            info = os.stat(disk)
        except (FileNotFoundError, NotADirectoryError):
            return None
        is_dir = stat.S_ISDIR(info.st_mode)
        return Entry(location, disk, is_dir, 0 if is_dir else info.st_size, info.st_mtime)

    def children(self, entry: Entry) -> list[Entry]:
        location = entry.location
        mounts = self.mounts(location.user) if location.path == "" else []
        mount_points = {m.mount_point for m in mounts}
        with os.scandir(entry.disk) as listing:
            names = sorted(e.name for e in listing)
        found = []
        for name in names:
            if name in mount_points:
                continue  # a group folder's mount hides a home folder of the same name
            path = f"{location.path}/{name}" if location.path else name
            child = self.entry(Location(location.user, path, location.mount, f"{location.key}/{name}"))
            if child:
                found.append(child)
        for mount in sorted(mounts, key=lambda m: m.mount_point):
            child = self.entry(Location(location.user, mount.mount_point, mount, mount.storage_root))
            if child:
                found.append(child)
        return found

    def free_bytes(self, mount: Mount) -> int:
        """Free space in a mount: UNLIMITED, or what its quota leaves (never below zero)."""
        if mount.quota < 0:
            return UNLIMITED
        return max(0, mount.quota - self.store.used_bytes(self.store.disk(mount.storage_root)))
