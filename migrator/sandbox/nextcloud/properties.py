"""The WebDAV properties of files and folders, as Nextcloud's FilesPlugin reports them."""

from __future__ import annotations

import hashlib
import mimetypes
from xml.sax.saxutils import escape

from migrator.sandbox.nextcloud.davxml import DAV, NC, OC, Prop, PropValue, http_date
from migrator.sandbox.nextcloud.instance import Instance
from migrator.sandbox.nextcloud.namespace import CREATE, DELETE, SHARE, UPDATE, Entry

FILE_ALLPROP: list[Prop] = [(DAV, "getlastmodified"), (DAV, "getcontentlength"), (DAV, "resourcetype"),
                            (DAV, "getetag"), (DAV, "getcontenttype")]
FOLDER_ALLPROP: list[Prop] = [(DAV, "getlastmodified"), (DAV, "resourcetype"), (DAV, "quota-used-bytes"),
                              (DAV, "quota-available-bytes"), (DAV, "getetag")]


def content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def permission_string(entry: Entry) -> str:
    """oc:permissions: S shared, R shareable, M mounted, G readable, D deletable, NV renamable and
    movable, W writable (files), CK can create files and folders (folders)."""
    location = entry.location
    granted = location.mount.permissions
    letters = "R" if granted & SHARE else ""
    if location.mount.folder is not None and location.is_mount_root:
        letters += "M"
    letters += "G"
    if location.path and granted & DELETE and not location.is_mount_root:
        letters += "DNV"
    if entry.is_dir:
        letters += "CK" if granted & CREATE else ""
    elif granted & UPDATE:
        letters += "W"
    return letters


def file_id(instance: Instance, fileid: int) -> str:
    return f"{fileid:08d}{instance.store.instance_id}"


def etag(instance: Instance, entry: Entry) -> str:
    """A home folder's etag also changes when a group folder mounted in it changes, as Nextcloud
    folds the etags of mount points into their parent's."""
    own = instance.store.meta(entry.location.key).etag
    if entry.location.path or not entry.is_dir:
        return own
    mounts = instance.namespace.mounts(entry.location.user)
    if not mounts:
        return own
    combined = own + "".join(instance.store.meta(m.storage_root).etag for m in mounts)
    return hashlib.md5(combined.encode()).hexdigest()


class NodeProperties:
    """Answers one property at a time for one node; folder sizes are computed only when asked."""

    def __init__(self, instance: Instance, entry: Entry) -> None:
        self.instance, self.entry = instance, entry
        self.meta = instance.store.meta(entry.location.key)
        self._size: int | None = None

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = self.instance.store.used_bytes(self.entry.disk) if self.entry.is_dir else self.entry.size
        return self._size

    def __call__(self, prop: Prop) -> PropValue:
        entry, meta = self.entry, self.meta
        namespace, name = prop
        if namespace == DAV:
            if name == "getlastmodified":
                return http_date(entry.mtime)
            if name == "getetag":
                return escape(f'"{etag(self.instance, entry)}"')
            if name == "resourcetype":
                return "<d:collection/>" if entry.is_dir else ""
            if name == "getcontentlength":
                return None if entry.is_dir else str(entry.size)
            if name == "getcontenttype":
                return None if entry.is_dir else escape(content_type(entry.location.name))
            if name == "displayname":
                return escape(entry.location.name)
            if name in ("quota-used-bytes", "quota-available-bytes") and entry.is_dir:
                if name == "quota-used-bytes":
                    return str(self.size)
                return str(self.instance.namespace.free_bytes(entry.location.mount))
            return None
        if namespace == OC:
            owner = entry.location.user
            values = {
                "fileid": lambda: str(meta.fileid),
                "id": lambda: file_id(self.instance, meta.fileid),
                "size": lambda: str(self.size),
                "permissions": lambda: permission_string(entry),
                "checksums": lambda: f"<oc:checksum>{escape(meta.checksum)}</oc:checksum>" if meta.checksum else None,
                "favorite": lambda: "0",
                "share-types": lambda: "",
                "owner-id": lambda: escape(owner),
                "owner-display-name": lambda: escape(owner),
                "downloadURL": lambda: "false",
            }
            return values[name]() if name in values else None
        if namespace == NC:
            values = {
                "mount-type": lambda: "group" if entry.location.mount.folder is not None else "",
                "is-encrypted": lambda: "0",
                "has-preview": lambda: "false",
                "creation_time": lambda: "0",
                "upload_time": lambda: "0",
            }
            return values[name]() if name in values else None
        return None
