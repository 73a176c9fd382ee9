"""Chunked uploads at /remote.php/dav/uploads/<user>/<upload-id>: MKCOL starts one, PUT .../<n>
stores a chunk, PROPFIND lists the chunks received (how a client resumes), MOVE .../.file assembles
them into the target by streaming, DELETE cancels. Uploads started with a Destination header follow
version 2's rules (chunks named 1..10000, the same Destination on every request, every chunk but
the last at least the minimum size); uploads without one follow version 1 (any chunk names,
assembled in name order). An upload idle for 24 hours is gone, as Nextcloud's cleanup job does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from migrator.sandbox.nextcloud import davxml
from migrator.sandbox.nextcloud.dav import (
    FilesDav,
    check_name,
    check_preconditions,
    check_quota,
    node_headers,
    requested_mtime,
    require,
    upload_body,
)
from migrator.sandbox.nextcloud.davxml import DAV
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
)
from migrator.sandbox.nextcloud.instance import Instance
from migrator.sandbox.nextcloud.namespace import CREATE, UNLIMITED, UPDATE, Location
from migrator.sandbox.nextcloud.properties import file_id

UPLOADS_PREFIX = "/remote.php/dav/uploads/"
MAX_CHUNK_NUMBER = 10000
UPLOAD_EXPIRY = 24 * 3600  # seconds an upload folder may stay untouched
CHUNK_PROPS = [(DAV, "getlastmodified"), (DAV, "getcontentlength"), (DAV, "resourcetype"), (DAV, "getetag")]


def chunk_order(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 62, name)


class Uploads:
    def __init__(self, instance: Instance, files: FilesDav) -> None:
        self.instance, self.files = instance, files
        self.store = instance.store

    def handle(self, request: Request, owner: str, rest: str) -> Response:
        if owner not in self.instance.accounts:
            raise not_found(f"Principal with name {owner} not found")
        if owner != request.user:
            raise forbidden("Access denied: uploads belong to their own user")
        self.expire(owner)
        parts = [p for p in rest.split("/") if p]
        if not parts:
            return self.home(request, owner)
        if len(parts) == 1:
            return self.folder(request, owner, parts[0])
        if len(parts) == 2:
            return self.chunk(request, owner, parts[0], parts[1])
        raise not_found(f"File with name {rest} could not be located")

    def expire(self, owner: str) -> None:
        folder = self.directory(owner)
        if not folder.is_dir():
            return
        oldest = time.time() - UPLOAD_EXPIRY
        for upload in folder.iterdir():
            if upload.is_dir() and upload.stat().st_mtime < oldest:
                self.store.end_upload(owner, upload.name)

    def directory(self, owner: str, upload: str | None = None) -> Path:
        return self.store.disk(f"uploads/{owner}" + (f"/{upload}" if upload else ""))

    def home(self, request: Request, owner: str) -> Response:
        if request.method != "PROPFIND":
            raise DavError(405, SABRE + "MethodNotAllowed", f"{request.method} is not allowed on the uploads root")
        folder = self.directory(owner)
        folder.mkdir(parents=True, exist_ok=True)
        names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if request.header("Depth", "1") != "0" else []
        return self.listing(request, owner, None, names)

    def listing(self, request: Request, owner: str, upload: str | None, names: list[str]) -> Response:
        asked = davxml.parse_propfind(request.body()) or CHUNK_PROPS
        base = self.directory(owner, upload)
        parts = [davxml.OPEN, davxml.response(davxml.href("remote.php/dav/uploads", owner, upload or "", folder=True),
                                              asked, self.properties(base, is_dir=True))]
        for name in names:
            path = base / name
            parts.append(davxml.response(davxml.href("remote.php/dav/uploads", owner, upload or "", name, folder=path.is_dir()),
                                         asked, self.properties(path, is_dir=path.is_dir())))
        parts.append(davxml.CLOSE)
        return Response.xml("".join(parts), 207)

    def properties(self, path: Path, is_dir: bool):
        info = path.stat()

        def source(prop):
            namespace, name = prop
            if namespace != DAV:
                return None
            if name == "getlastmodified":
                return davxml.http_date(info.st_mtime)
            if name == "getcontentlength":
                return None if is_dir else str(info.st_size)
            if name == "resourcetype":
                return "<d:collection/>" if is_dir else ""
            if name == "getetag":
                return f"&quot;{info.st_mtime_ns:x}{info.st_size:x}&quot;"
            return None
        return source

    def folder(self, request: Request, owner: str, upload: str) -> Response:
        folder = self.directory(owner, upload)
        if request.method == "MKCOL":
            if folder.exists():
                raise DavError(405, SABRE + "MethodNotAllowed", "The resource you tried to create already exists")
            problem = self.instance.names.problem(upload)
            if problem:
                raise DavError(400, "OCA\\DAV\\Connector\\Sabre\\Exception\\InvalidPath", problem, reason=True)
            destination = request.destination_path()
            if destination is not None:
                self.files.destination(request, owner)  # a v2 upload must name a file of this user
            folder.mkdir(parents=True)
            self.store.start_upload(owner, upload, destination)
            return Response(201, b"", {"Content-Length": "0"})
        if not folder.is_dir():
            raise not_found(f"File with name {upload} could not be located")
        if request.method == "PROPFIND":
            names = sorted((p.name for p in folder.iterdir()), key=chunk_order) if request.header("Depth", "1") != "0" else []
            return self.listing(request, owner, upload, names)
        if request.method == "DELETE":
            self.store.end_upload(owner, upload)
            return Response(204, b"", {"Content-Length": "0"})
        raise DavError(405, SABRE + "MethodNotAllowed", f"{request.method} is not allowed on an upload folder")

    def chunk(self, request: Request, owner: str, upload: str, name: str) -> Response:
        folder = self.directory(owner, upload)
        if not folder.is_dir():
            raise not_found(f"File with name {upload} could not be located")
        destination = self.store.upload_destination(owner, upload)
        if destination is not None and request.method in ("PUT", "MOVE"):
            if request.destination_path() is None:
                raise bad_request("Skipping chunked file writing as the destination header was not passed")
            if request.destination_path() != destination:
                raise bad_request("The Destination header differs from the one the upload was started with")
        if name == ".file" and request.method == "MOVE":
            return self.assemble(request, owner, upload, destination is not None)
        path = folder / name
        if request.method == "PUT":
            return self.put_chunk(request, owner, path, destination is not None)
        if request.method == "DELETE":
            if not path.is_file():
                raise not_found(f"File with name {name} could not be located")
            path.unlink()
            return Response(204, b"", {"Content-Length": "0"})
        if not path.is_file():
            raise not_found(f"File with name {name} could not be located")
        if request.method == "PROPFIND":
            asked = davxml.parse_propfind(request.body()) or CHUNK_PROPS
            body = davxml.response(davxml.href("remote.php/dav/uploads", owner, upload, name), asked, self.properties(path, False))
            return Response.xml(davxml.OPEN + body + davxml.CLOSE, 207)
        if request.method in ("GET", "HEAD"):
            raise forbidden("Chunks cannot be downloaded from the upload directory")
        raise DavError(405, SABRE + "MethodNotAllowed", f"{request.method} is not allowed on a chunk")

    def put_chunk(self, request: Request, owner: str, path: Path, v2: bool) -> Response:
        if v2 and not (path.name.isdigit() and 1 <= int(path.name) <= MAX_CHUNK_NUMBER):
            raise bad_request("Invalid chunk name, must be numeric between 1 and 10000")
        if v2:
            target = self.files.destination(request, owner)
            total = request.header("OC-Total-Length")
            check_quota(self.instance, target, int(total) if total.isdigit() else None)
        existed = path.exists()
        self.store.write_file(path, upload_body(self.instance, request, UNLIMITED, ""))
        return Response(204 if existed else 201, b"", {"Content-Length": "0"})

    def assemble(self, request: Request, owner: str, upload: str, v2: bool) -> Response:
        target: Location = self.files.destination(request, owner)
        check_name(self.instance, target)
        parent = self.instance.namespace.entry(self.instance.namespace.locate(owner, target.parent_path))
        if parent is None or not parent.is_dir:
            raise conflict("The destination node is not found")
        existing = self.instance.namespace.entry(target)
        if existing is not None and existing.is_dir:
            raise conflict("PUT is not allowed on non-files.")
        require(target, UPDATE if existing else CREATE, "Permission denied to create file (filename " + target.name + ")")
        check_preconditions(request, self.store.meta(target.key).etag if existing else None)
        chunks = sorted((p for p in self.directory(owner, upload).iterdir() if p.is_file()), key=lambda p: chunk_order(p.name))
        sizes = [p.stat().st_size for p in chunks]
        if v2:
            minimum = self.instance.settings.min_chunk_size
            for chunk, size in zip(chunks[:-1], sizes[:-1], strict=True):
                if size < minimum:
                    raise bad_request(f"Chunk {chunk.name} has {size} bytes, less than the minimum of {minimum} bytes "
                                      "for every chunk but the last")
        total = sum(sizes)
        declared = request.header("OC-Total-Length")
        if declared.isdigit() and int(declared) != total:
            raise bad_request(f"Chunks on server do not sum up to {declared} but to {total} bytes")
        check_quota(self.instance, target, total)
        mtime = requested_mtime(request)
        self.store.write_file(self.store.disk(target.key), read_chunks(chunks), mtime)
        meta = self.store.changed(target.key, target.mount.storage_root, request.header("OC-Checksum").strip())
        self.store.end_upload(owner, upload)
        entry = self.files.existing(target)
        headers = {**node_headers(self.instance, entry, mtime is not None), "Content-Length": "0",
                   "OC-FileId": file_id(self.instance, meta.fileid)}
        return Response(204 if existing else 201, b"", headers)


def read_chunks(chunks: list[Path]) -> Iterator[bytes]:
    for chunk in chunks:
        with open(chunk, "rb") as handle:
            while piece := handle.read(PIECE):
                yield piece


def split_uploads_path(path: str) -> tuple[str, str] | None:
    if not path.startswith(UPLOADS_PREFIX):
        return None
    owner, _, rest = path[len(UPLOADS_PREFIX):].partition("/")
    return owner, rest



