"""Files over WebDAV at /remote.php/dav/files/<user>/<path>: the methods Nextcloud's Sabre server
answers, with its status codes, headers (ETag, OC-ETag, OC-FileId, X-OC-MTime) and error bodies."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator

from migrator.sandbox.nextcloud import davxml
from migrator.sandbox.nextcloud.checks import (
    check_name,
    check_preconditions,
    check_quota,
    declared_length,
    requested_mtime,
    require,
    upload_body,
)
from migrator.sandbox.nextcloud.davxml import DAV, OC
from migrator.sandbox.nextcloud.http import (
    PIECE,
    SABRE,
    DavError,
    Request,
    Response,
    bad_request,
    conflict,
    forbidden,
    not_found,
    precondition_failed,
)
from migrator.sandbox.nextcloud.instance import Instance
from migrator.sandbox.nextcloud.namespace import CREATE, DELETE, UPDATE, Entry, Location
from migrator.sandbox.nextcloud.properties import (
    FILE_ALLPROP,
    FOLDER_ALLPROP,
    NodeProperties,
    content_type,
    file_id,
)

FILES_PREFIX = "/remote.php/dav/files/"
DAV_HEADERS = {"DAV": "1, 3, extended-mkcol, nc-calendar-search, nc-enable-birthday-calendar", "MS-Author-Via": "DAV"}
ALLOWED = "OPTIONS, GET, HEAD, DELETE, PROPFIND, PUT, PROPPATCH, COPY, MOVE, REPORT"


def files_href(location: Location, is_dir: bool) -> str:
    return davxml.href("remote.php/dav/files", location.user, location.path, folder=is_dir)


def node_headers(instance: Instance, entry: Entry, mtime_accepted: bool = False) -> dict[str, str]:
    meta = instance.store.meta(entry.location.key)
    headers = {"ETag": f'"{meta.etag}"', "OC-ETag": f'"{meta.etag}"', "OC-FileId": file_id(instance, meta.fileid)}
    if mtime_accepted:
        headers["X-OC-MTime"] = "accepted"
    return headers


class FilesDav:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.namespace = instance.namespace

    def handle(self, request: Request, owner: str, path: str) -> Response:
        if owner not in self.instance.accounts:
            raise not_found(f"Principal with name {owner} not found")
        if owner != request.user:
            return self.foreign(request, owner, path)
        location = self.namespace.locate(owner, path)
        handler = getattr(self, "do_" + request.method.lower(), None)
        if handler is None:
            raise DavError(501, SABRE + "NotImplemented", f"There was no handler found for this \"{request.method}\" method")
        return handler(request, location)

    def foreign(self, request: Request, owner: str, path: str) -> Response:
        """Another user's home looks like an empty collection: nothing in it, nothing to write."""
        if request.method in ("PUT", "MKCOL", "DELETE", "MOVE", "COPY", "PROPPATCH"):
            raise forbidden("Permission denied to create file (filename " + path.rsplit("/", 1)[-1] + ")"
                            if request.method == "PUT" else "Permission denied")
        if request.method == "OPTIONS":
            return self.do_options(request, None)
        if path.strip("/") == "" and request.method == "PROPFIND":
            asked = davxml.parse_propfind(request.body()) or [(DAV, "resourcetype")]
            body = davxml.response(davxml.href("remote.php/dav/files", owner, folder=True), asked,
                                   lambda prop: "<d:collection/>" if prop == (DAV, "resourcetype") else None)
            return Response.xml(davxml.OPEN + body + davxml.CLOSE, 207)
        raise not_found(f"File with name {path.strip('/')} could not be located")

    def existing(self, location: Location) -> Entry:
        entry = self.namespace.entry(location)
        if entry is None:
            raise not_found(f"File with name {location.path} could not be located")
        return entry

    # -- reading ----------------------------------------------------------------------------

    def do_options(self, request: Request, location: Location | None) -> Response:
        return Response(200, b"", {**DAV_HEADERS, "Allow": ALLOWED, "Accept-Ranges": "bytes", "Content-Length": "0"})

    def do_propfind(self, request: Request, location: Location) -> Response:
        asked = davxml.parse_propfind(request.body())
        depth = request.header("Depth", "1").strip().lower()
        if depth == "infinity" and not self.instance.settings.propfind_infinity:
            raise forbidden("PROPFIND requests with a Depth of \"infinity\" are not allowed")
        entry = self.existing(location)
        entries = [entry]
        if entry.is_dir and depth == "1":
            entries += self.namespace.children(entry)
        elif entry.is_dir and depth == "infinity":
            entries += self.walk(entry)
        parts = [davxml.OPEN]
        for item in entries:
            props = asked if asked is not None else (FOLDER_ALLPROP if item.is_dir else FILE_ALLPROP)
            parts.append(davxml.response(files_href(item.location, item.is_dir), props, NodeProperties(self.instance, item)))
        parts.append(davxml.CLOSE)
        return Response.xml("".join(parts), 207)

    def walk(self, entry: Entry) -> Iterator[Entry]:
        for child in self.namespace.children(entry):
            yield child
            if child.is_dir:
                yield from self.walk(child)

    def do_get(self, request: Request, location: Location, head: bool = False) -> Response:
        entry = self.existing(location)
        if entry.is_dir:
            raise DavError(501, SABRE + "NotImplemented", "There was no plugin in the system that was willing to handle this GET method. Enable the Browser plugin to get a better result here.")
        headers = {**node_headers(self.instance, entry), "Content-Type": content_type(location.name),
                   "Last-Modified": davxml.http_date(entry.mtime), "Accept-Ranges": "bytes"}
        del headers["OC-FileId"]
        start, end, status = 0, entry.size - 1, 200
        wanted = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", request.header("Range"))
        if wanted and (wanted.group(1) or wanted.group(2)):
            first, last = wanted.groups()
            if first:
                start, end = int(first), min(int(last), entry.size - 1) if last else entry.size - 1
            else:
                start, end = max(0, entry.size - int(last)), entry.size - 1
            if start >= entry.size or start > end:
                raise DavError(416, SABRE + "RequestedRangeNotSatisfiable",
                               f"The start offset ({start}) exceeded the size of the entity ({entry.size})",
                               {"Content-Range": f"bytes */{entry.size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        length = max(0, end - start + 1)
        headers["Content-Length"] = str(length)
        if head:
            return Response(status, b"", headers)
        return Response(status, read_range(entry, start, length), headers)

    def do_head(self, request: Request, location: Location) -> Response:
        return self.do_get(request, location, head=True)

    # -- writing ----------------------------------------------------------------------------

    def parent_folder(self, location: Location) -> Entry:
        parent = self.namespace.entry(self.namespace.locate(location.user, location.parent_path))
        if parent is None:
            raise not_found(f"File with name {location.parent_path} could not be located")
        if not parent.is_dir:
            raise conflict("Files can only be created as children of collections")
        return parent

    def do_put(self, request: Request, location: Location) -> Response:
        if not location.path:
            raise conflict("PUT is not allowed on non-files.")
        check_name(self.instance, location)
        existing = self.namespace.entry(location)
        if existing is not None and existing.is_dir:
            raise conflict("PUT is not allowed on non-files.")
        self.parent_folder(location)
        require(location, UPDATE if existing else CREATE, "Permission denied to create file (filename " + location.name + ")")
        check_preconditions(request, self.instance.store.meta(location.key).etag if existing else None)
        check_quota(self.instance, location, declared_length(request))
        mtime = requested_mtime(request)
        target = self.instance.store.disk(location.key)
        free = self.namespace.free_bytes(location.mount)
        self.instance.store.write_file(target, upload_body(self.instance, request, free, location.parent_path), mtime)
        checksum = request.header("OC-Checksum").strip()
        self.instance.store.changed(location.key, location.mount.storage_root, checksum)
        entry = self.existing(location)
        headers = {**node_headers(self.instance, entry, mtime is not None), "Content-Length": "0"}
        return Response(204 if existing else 201, b"", headers)

    def do_mkcol(self, request: Request, location: Location) -> Response:
        if request.content_length:
            raise DavError(415, SABRE + "UnsupportedMediaType", "The request body for the MKCOL request must be empty")
        if self.namespace.entry(location) is not None:
            raise DavError(405, SABRE + "MethodNotAllowed", "The resource you tried to create already exists")
        check_name(self.instance, location)
        parent = self.namespace.entry(self.namespace.locate(location.user, location.parent_path))
        if parent is None or not parent.is_dir:
            raise conflict("Parent node does not exist")
        require(location, CREATE, "Permission denied to create directory " + location.name)
        self.instance.store.disk(location.key).mkdir()
        meta = self.instance.store.changed(location.key, location.mount.storage_root)
        return Response(201, b"", {"Content-Length": "0", "OC-FileId": file_id(self.instance, meta.fileid)})

    def do_delete(self, request: Request, location: Location) -> Response:
        entry = self.existing(location)
        if not location.path or location.is_mount_root:
            raise forbidden("Deleting this folder is not allowed")
        require(location, DELETE, "Permission denied to delete node")
        check_preconditions(request, self.instance.store.meta(location.key).etag)
        if entry.is_dir:
            shutil.rmtree(entry.disk)
        else:
            entry.disk.unlink()
        self.instance.store.forget(location.key)
        self.instance.store.changed(location.key.rsplit("/", 1)[0], location.mount.storage_root)
        return Response(204, b"", {"Content-Length": "0"})

    def do_move(self, request: Request, location: Location) -> Response:
        return self.transfer(request, location, move=True)

    def do_copy(self, request: Request, location: Location) -> Response:
        return self.transfer(request, location, move=False)

    def destination(self, request: Request, user: str) -> Location:
        path = request.destination_path()
        if path is None:
            raise bad_request("The destination header was not supplied")
        for prefix in (FILES_PREFIX + user + "/", FILES_PREFIX + user):
            if path.startswith(prefix):
                return self.namespace.locate(user, path[len(prefix):])
        if path.startswith(FILES_PREFIX):
            raise forbidden("Permission denied")
        raise forbidden(f"Requested uri ({path}) is out of base uri (/remote.php/dav/)")

    def transfer(self, request: Request, location: Location, move: bool) -> Response:
        entry = self.existing(location)
        target = self.destination(request, location.user)
        if target.path == location.path:
            raise forbidden("Source and destination uri are identical.")
        if entry.is_dir and (target.path + "/").startswith(location.path + "/"):
            raise conflict("Cannot move a node into one of its own children")  # Sabre refuses too
        check_name(self.instance, target)
        parent = self.namespace.entry(self.namespace.locate(target.user, target.parent_path))
        if parent is None or not parent.is_dir:
            raise conflict("The destination node is not found")
        existing = self.namespace.entry(target)
        overwrite = request.header("Overwrite", "T").upper() != "F"
        if existing is not None and not overwrite:
            raise precondition_failed("The destination node already exists, and the overwrite header is set to false")
        if move:
            if not location.path or location.is_mount_root:
                raise forbidden("Moving this folder is not allowed")
            require(location, DELETE, "Permission denied to move node")
        require(target, UPDATE if existing else CREATE, "Permission denied to create file (filename " + target.name + ")")
        if existing is not None:
            if target.is_mount_root:
                raise forbidden("Overwriting this folder is not allowed")
            check_preconditions(request, self.instance.store.meta(target.key).etag)
            if entry.location.mount != target.mount and not entry.is_dir:
                check_quota(self.instance, target, entry.size)
        elif entry.location.mount != target.mount:
            check_quota(self.instance, target, entry.size if not entry.is_dir else self.instance.store.used_bytes(entry.disk))
        store = self.instance.store
        destination = store.disk(target.key)
        if existing is not None and existing.is_dir:
            shutil.rmtree(destination)
        elif existing is not None and entry.is_dir:
            destination.unlink()
        if move:
            os.replace(entry.disk, destination)
            store.renamed(location.key, target.key)
            store.changed(location.key.rsplit("/", 1)[0], location.mount.storage_root)
        else:
            temporary = store.temporary()
            if entry.is_dir:
                shutil.copytree(entry.disk, temporary)
            else:
                shutil.copy2(entry.disk, temporary)
            os.replace(temporary, destination)
            store.copied(location.key, target.key)
        store.changed(target.key, target.mount.storage_root)
        moved = self.existing(target)
        return Response(204 if existing else 201, b"", {**node_headers(self.instance, moved), "Content-Length": "0"})

    def do_proppatch(self, request: Request, location: Location) -> Response:
        """Only the modification time can be set (d:lastmodified, unix seconds); favorites are
        accepted and forgotten; anything else is refused per property, as Sabre does."""
        entry = self.existing(location)
        results = []
        for prop, value in davxml.parse_proppatch(request.body()):
            if prop == (DAV, "lastmodified") and value and value.strip().lstrip("-").isdigit():
                os.utime(entry.disk, (int(value), int(value)))
                self.instance.store.changed(location.key, location.mount.storage_root)
                results.append((prop, 200))
            elif prop == (OC, "favorite"):
                results.append((prop, 200))
            else:
                results.append((prop, 403))
        body = davxml.statuses(files_href(location, entry.is_dir), results)
        return Response.xml(davxml.OPEN + body + davxml.CLOSE, 207)


def read_range(entry: Entry, start: int, length: int) -> Iterator[bytes]:
    with open(entry.disk, "rb") as handle:
        handle.seek(start)
        while length > 0:
            piece = handle.read(min(PIECE, length))
            if not piece:
                return
            length -= len(piece)
            yield piece


def split_files_path(path: str) -> tuple[str, str] | None:
    """(owner, path inside their files) for /remote.php/dav/files/<owner>/<path>."""
    if not path.startswith(FILES_PREFIX):
        return None
    owner, _, rest = path[len(FILES_PREFIX):].partition("/")
    return owner, rest
