"""The server's disk: every user's files, the group folders' storage and pending chunked uploads
as plain directories under one root, and beside them one SQLite file with what a plain file system
does not keep (file ids, etags, stored checksums, shares, group folders, upload destinations).

Writes go to a temporary file under the root and are renamed into place, so an interrupted
upload never leaves a partial file where a client would find it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS setting (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS node (fileid INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
                                 etag TEXT NOT NULL, checksum TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS share (id INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groupfolder (id INTEGER PRIMARY KEY AUTOINCREMENT, mount_point TEXT NOT NULL,
                                        groups TEXT NOT NULL DEFAULT '{}', quota INTEGER NOT NULL DEFAULT -3);
CREATE TABLE IF NOT EXISTS upload (user TEXT NOT NULL, name TEXT NOT NULL, destination TEXT,
                                   PRIMARY KEY (user, name));
"""


@dataclass(frozen=True)
class NodeMeta:
    fileid: int
    etag: str
    checksum: str


@dataclass(frozen=True)
class GroupFolder:
    id: int
    mount_point: str
    groups: dict[str, int]
    quota: int  # bytes; -3 means unlimited, as the groupfolders app says

    def as_json(self, size: int) -> dict:
        return {"id": self.id, "mount_point": self.mount_point, "groups": dict(self.groups), "quota": self.quota,
                "size": size, "acl": False, "manage": [],
                "group_details": {g: {"displayName": g, "permissions": p, "type": "group"} for g, p in self.groups.items()}}


def new_etag() -> str:
    return secrets.token_hex(16)


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        for part in ("files", "groupfolders", "uploads", "tmp"):
            (self.root / part).mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.root / "nextcloud.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # no fsync per change: a sandbox outlives only process kills
        self._db.executescript(SCHEMA)
        instance = self._db.execute("SELECT value FROM setting WHERE name = 'instanceid'").fetchone()
        if instance is None:
            instance = ("oc" + secrets.token_hex(5),)
            self._db.execute("INSERT INTO setting VALUES ('instanceid', ?)", instance)
        self.instance_id: str = instance[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- disk -------------------------------------------------------------------------------

    def disk(self, key: str) -> Path:
        return self.root / key if key else self.root

    def temporary(self) -> Path:
        return self.root / "tmp" / uuid.uuid4().hex

    def write_file(self, target: Path, pieces: Iterable[bytes], mtime: float | None = None) -> int:
        """Streams `pieces` into `target` atomically; on any error nothing is left behind."""
        temporary = self.temporary()
        size = 0
        try:
            with open(temporary, "wb") as handle:
                for piece in pieces:
                    handle.write(piece)
                    size += len(piece)
            if mtime is not None:
                os.utime(temporary, (mtime, mtime))
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return size

    def used_bytes(self, directory: Path) -> int:
        total = 0
        for folder, _, files in os.walk(directory):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except FileNotFoundError:
                    pass
        return total

    # -- node metadata ----------------------------------------------------------------------

    def meta(self, key: str) -> NodeMeta:
        """File id, etag and checksum of the node at `key`; a node seen first gets them now."""
        with self._lock:
            row = self._db.execute("SELECT fileid, etag, checksum FROM node WHERE key = ?", (key,)).fetchone()
            if row is None:
                etag = new_etag()
                cursor = self._db.execute("INSERT INTO node (key, etag) VALUES (?, ?)", (key, etag))
                row = (cursor.lastrowid, etag, "")
            return NodeMeta(*row)

    def key_of(self, fileid: int) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT key FROM node WHERE fileid = ?", (fileid,)).fetchone()
        return row[0] if row else None

    def changed(self, key: str, storage_root: str, checksum: str | None = None) -> NodeMeta:
        """A new etag for `key` and every folder above it up to its storage's root, as Nextcloud
        propagates changes; `checksum` (when given) replaces the stored one."""
        with self._lock:
            self.meta(key)
            if checksum is not None:
                self._db.execute("UPDATE node SET checksum = ? WHERE key = ?", (checksum, key))
            current = key
            while True:
                self.meta(current)
                self._db.execute("UPDATE node SET etag = ? WHERE key = ?", (new_etag(), current))
                if current == storage_root or "/" not in current:
                    break
                current = current.rsplit("/", 1)[0]
            return self.meta(key)

    def _subtree(self, key: str) -> tuple[str, tuple]:
        return "key = ? OR substr(key, 1, ?) = ?", (key, len(key) + 1, key + "/")

    def forget(self, key: str) -> None:
        where, args = self._subtree(key)
        with self._lock:
            self._db.execute(f"DELETE FROM node WHERE {where}", args)

    def renamed(self, old: str, new: str) -> None:
        """Moves keep file ids, etags and checksums, as Nextcloud's file cache does."""
        where, args = self._subtree(old)
        with self._lock:
            self.forget(new)
            self._db.execute(f"UPDATE node SET key = ? || substr(key, ?) WHERE {where}", (new, len(old) + 1, *args))

    def copied(self, old: str, new: str) -> None:
        """Copies get new file ids but keep the stored checksums."""
        where, args = self._subtree(old)
        with self._lock:
            self.forget(new)
            rows = self._db.execute(f"SELECT key, checksum FROM node WHERE {where}", args).fetchall()
            for key, checksum in rows:
                self._db.execute("INSERT INTO node (key, etag, checksum) VALUES (?, ?, ?)",
                                 (new + key[len(old):], new_etag(), checksum))

    # -- shares -----------------------------------------------------------------------------

    def add_share(self, record: dict) -> dict:
        with self._lock:
            cursor = self._db.execute("INSERT INTO share (record) VALUES ('{}')")
            record = {**record, "id": cursor.lastrowid}
            self._db.execute("UPDATE share SET record = ? WHERE id = ?", (json.dumps(record), cursor.lastrowid))
            return record

    def shares(self) -> list[dict]:
        with self._lock:
            return [json.loads(r[0]) for r in self._db.execute("SELECT record FROM share ORDER BY id")]

    def share(self, share_id: int) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM share WHERE id = ?", (share_id,)).fetchone()
            return json.loads(row[0]) if row else None

    def update_share(self, record: dict) -> None:
        with self._lock:
            self._db.execute("UPDATE share SET record = ? WHERE id = ?", (json.dumps(record), record["id"]))

    def delete_share(self, share_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM share WHERE id = ?", (share_id,))

    # -- group folders ----------------------------------------------------------------------

    def group_folders(self) -> list[GroupFolder]:
        with self._lock:
            rows = self._db.execute("SELECT id, mount_point, groups, quota FROM groupfolder ORDER BY id").fetchall()
        return [GroupFolder(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def group_folder(self, folder_id: int) -> GroupFolder | None:
        return next((f for f in self.group_folders() if f.id == folder_id), None)

    def add_group_folder(self, mount_point: str) -> GroupFolder:
        with self._lock:
            cursor = self._db.execute("INSERT INTO groupfolder (mount_point) VALUES (?)", (mount_point,))
            folder_id = cursor.lastrowid
        self.disk(f"groupfolders/{folder_id}").mkdir(parents=True, exist_ok=True)
        return GroupFolder(folder_id, mount_point, {}, -3)

    def save_group_folder(self, folder: GroupFolder) -> None:
        with self._lock:
            self._db.execute("UPDATE groupfolder SET mount_point = ?, groups = ?, quota = ? WHERE id = ?",
                             (folder.mount_point, json.dumps(folder.groups), folder.quota, folder.id))

    def delete_group_folder(self, folder_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM groupfolder WHERE id = ?", (folder_id,))
        self.forget(f"groupfolders/{folder_id}")
        shutil.rmtree(self.disk(f"groupfolders/{folder_id}"), ignore_errors=True)

    # -- chunked uploads --------------------------------------------------------------------

    def start_upload(self, user: str, name: str, destination: str | None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO upload VALUES (?, ?, ?)", (user, name, destination))

    def upload_destination(self, user: str, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT destination FROM upload WHERE user = ? AND name = ?", (user, name)).fetchone()
        return row[0] if row else None

    def end_upload(self, user: str, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM upload WHERE user = ? AND name = ?", (user, name))
        shutil.rmtree(self.disk(f"uploads/{user}/{name}"), ignore_errors=True)
