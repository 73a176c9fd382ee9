"""A files sink for any RFC 4918 WebDAV server (Apache mod_dav, ownCloud, WsgiDAV, ...).

A drive lands below the owner's home collection: `dest_key` is the file's legal path below the
container's folder, and dest_id the server's path of the stored file. Uploads stream from the
source with their length announced, so memory does not grow with a file. Creates are atomic
(`If-None-Match: *`), replacements conditional on the stored ETag (`If-Match`).

What plain WebDAV cannot do is declared, not attempted: modification times are the server's own
(getlastmodified is protected), there are no shares, and a broken upload starts over. The
Nextcloud sink (connectors/nextcloud.py) adds those on top of this one.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote, unquote

from connectors.dav_http import Answer, DavConnection, Login, probe_home, said
from connectors.webdav_props import PROPFIND_BODY, Resource, parse_multistatus
from migrator.errors import ItemError
from migrator.model import Capabilities, DestRef, Payload, Target

XML = {"Content-Type": "application/xml; charset=utf-8"}


def segment(name: str) -> str:
    return quote(name, safe="")


class WebDavSink:
    sets_mtime = False
    shares = False

    def __init__(
        self,
        base_url: str,
        login: Login,
        home: Callable[[str], str] | None = None,
        ca_file: str | None = None,
        verify_content: bool = True,
        timeout: float = 300,
        connections: int = 16,
        skip_tls_verify: bool = False,
    ) -> None:
        self.http = DavConnection(base_url, login, ca_file, timeout, connections, skip_tls_verify)
        self._home = home
        self.verify_content = verify_content
        # verify re-reads the stored bytes and hashes them, unless told to trust sizes and dates.
        self.caps = Capabilities(
            hashes=("sha256",) if verify_content else (),
            mtime_precision=1.0 if self.sets_mtime else None,
            listing=True,
            delete=True,
        )
        self._folders: set[str] = set()
        self._folder_locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        await self.http.close()

    # ------------------------------------------------------------ paths

    def home_path(self, owner: str) -> str:
        """The owner's home collection as a URL path below the base URL, without a trailing slash."""
        user, _ = self.http.account(owner)
        home = self._home(owner) if self._home is not None else f"/{user}"
        return "/" + "/".join(segment(s) for s in home.strip("/").split("/") if s)

    def folder_path(self, owner: str, path: tuple[str, ...]) -> str:
        return self.home_path(owner) + "".join("/" + segment(s) for s in path)

    def item_path(self, owner: str, path: tuple[str, ...], dest_key: str) -> str:
        return self.folder_path(owner, (*path, *dest_key.split("/")))

    # ------------------------------------------------------------ folders

    async def ensure_container(self, owner: str, path: tuple[str, ...]) -> str:
        await self._ensure_folders(owner, path)
        return self.folder_path(owner, path)

    async def _ensure_folders(self, owner: str, path: tuple[str, ...]) -> None:
        """Creates each missing folder of `path` in order, one owner at a time: some servers
        (WsgiDAV) answer 500 when two MKCOLs of one folder race."""
        wanted = [self.folder_path(owner, path[:n]) for n in range(1, len(path) + 1)]
        if all(w in self._folders for w in wanted):
            return
        lock = self._folder_locks.setdefault(owner, asyncio.Lock())
        async with lock:
            for url_path in wanted:
                if url_path in self._folders:
                    continue
                answer = await self.http.request(owner, "MKCOL", url_path)
                if answer.status == 405 or answer.status in (200, 201):  # 405: it exists already
                    self._folders.add(url_path)
                    continue
                if answer.status in (401, 403):
                    raise ItemError(f"cannot create folder {url_path}: {said(answer)}")
                raise ItemError(f"cannot create folder {url_path}: {said(answer)}{self._explain(answer)}")

    # ------------------------------------------------------------ Sink

    async def probe(self, owner: str) -> str:
        """The owner's home folder answers (what preflight checks before any data moves)."""
        return await probe_home(self.http, owner, self.home_path(owner) + "/", PROPFIND_BODY, "WebDAV")

    async def find(self, owner: str, path: tuple[str, ...], target: Target) -> DestRef | None:
        resource = await self._propfind(owner, self.item_path(owner, path, target.dest_key))
        if resource is None:
            return None
        content_hash = resource.checksums.get("SHA256")
        if not resource.is_folder and content_hash is None and resource.size == target.metadata.get("size"):
            content_hash = await self._download_hash(owner, self.item_path(owner, path, target.dest_key))
        return self._ref(target.dest_key, resource, content_hash)

    async def put(self, owner: str, path: tuple[str, ...], target: Target, replace: DestRef | None = None) -> DestRef:
        url_path = self.item_path(owner, path, target.dest_key)
        parents = (*path, *target.dest_key.split("/")[:-1])
        if target.metadata.get("kind") == "folder":
            async for _ in target.payload.chunks():  # nothing to send; the engine counts what was read
                pass
            await self._ensure_folders(owner, (*path, *target.dest_key.split("/")))
            notes = await self._share(owner, url_path, target)
            return DestRef(target.dest_key, self.http.href(url_path), notes=notes)
        await self._ensure_folders(owner, parents)
        etag, mtime, notes = await self._upload(owner, url_path, target, replace)
        notes += await self._share(owner, url_path, target)
        return DestRef(target.dest_key, self.http.href(url_path), target.payload.size, None, etag, mtime, notes)

    async def stat(self, owner: str, ref: DestRef) -> DestRef | None:
        url_path = self.http.relative(ref.dest_id)
        resource = await self._propfind(owner, url_path)
        if resource is None:
            return None
        content_hash = None
        if self.verify_content and not resource.is_folder:
            content_hash = await self._download_hash(owner, url_path)
        return self._ref(ref.dest_key, resource, content_hash)

    async def list_keys(self, owner: str, path: tuple[str, ...]) -> set[str]:
        """Every file and folder below the container's folder, as dest_keys (one PROPFIND per
        folder: Nextcloud refuses Depth: infinity)."""
        base = self.folder_path(owner, path)
        root = unquote(self.http.href(base)).rstrip("/")
        keys: set[str] = set()
        pending = [base]
        while pending:
            folder = pending.pop()
            answer = await self.http.request(owner, "PROPFIND", folder + "/", content=PROPFIND_BODY, headers={**XML, "Depth": "1"})
            if answer.status == 404:
                continue
            if answer.status != 207:
                raise ItemError(f"cannot list {folder}: {said(answer)}")
            for resource in parse_multistatus(answer.content):
                if resource.path == unquote(self.http.href(folder)).rstrip("/") or not resource.path.startswith(root + "/"):
                    continue
                keys.add(resource.path[len(root) + 1:])
                if resource.is_folder:
                    pending.append(self.http.relative(quote(resource.path)))
        return keys

    async def delete(self, owner: str, ref: DestRef) -> bool:
        answer = await self.http.request(owner, "DELETE", self.http.relative(ref.dest_id))
        if answer.status == 404:
            return False
        if answer.status not in (200, 204):
            raise ItemError(f"cannot delete {ref.dest_key}: {said(answer)}")
        return True

    # ------------------------------------------------------------ what subclasses refine

    async def _upload(self, owner: str, url_path: str, target: Target, replace: DestRef | None) -> tuple[str | None, float | None, tuple[str, ...]]:
        """Streams the file in one PUT; returns (etag, mtime kept, notes)."""
        headers = self._conditions(replace)
        headers["Content-Type"] = str(target.metadata.get("content_type") or "application/octet-stream")
        if target.payload.size is not None:
            headers["Content-Length"] = str(target.payload.size)
        answer = await self.http.request(owner, "PUT", url_path, content=_stream(target.payload), headers=headers)
        self._check_put(answer, target, replace)
        return answer.headers.get("ETag"), None, ()

    async def _share(self, owner: str, url_path: str, target: Target) -> tuple[str, ...]:
        shares = target.metadata.get("shares") or []
        dropped = tuple(target.metadata.get("shares_dropped") or ())
        if shares:
            return dropped + (f"{len(shares)} share(s) not created: a plain WebDAV target has no sharing",)
        return dropped

    def _explain(self, answer: Answer) -> str:
        return ""

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _conditions(replace: DestRef | None) -> dict[str, str]:
        if replace is None:
            return {"If-None-Match": "*"}
        return {"If-Match": replace.etag} if replace.etag else {}

    def _check_put(self, answer: Answer, target: Target, replace: DestRef | None) -> None:
        if answer.status in (200, 201, 204):
            return
        if answer.status == 412:
            if replace is None:
                raise ItemError(f"{target.dest_key} already exists at the target and this ledger did not write it; move it away or remove it, then rerun")
            raise ItemError(f"{target.dest_key} changed at the target since it was copied; it was left as it is")
        raise ItemError(f"the target refused {target.dest_key}: {said(answer)}{self._explain(answer)}")

    async def _propfind(self, owner: str, url_path: str) -> Resource | None:
        answer = await self.http.request(owner, "PROPFIND", url_path, content=PROPFIND_BODY, headers={**XML, "Depth": "0"})
        if answer.status == 404:
            return None
        if answer.status != 207:
            raise ItemError(f"cannot read {url_path}: {said(answer)}")
        found = parse_multistatus(answer.content)
        return found[0] if found else None

    async def _download_hash(self, owner: str, url_path: str) -> str:
        digest = hashlib.sha256()
        async with self.http.stream(owner, "GET", url_path, headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code != 200:
                raise ItemError(f"cannot read back {url_path}: {response.status_code} {response.reason_phrase}")
            async for chunk in response.aiter_bytes():
                digest.update(chunk)
        return digest.hexdigest()

    def _ref(self, dest_key: str, resource: Resource, content_hash: str | None) -> DestRef:
        url_path = self.http.relative(quote(resource.path))
        return DestRef(dest_key, self.http.href(url_path), None if resource.is_folder else resource.size, content_hash,
                       resource.etag, resource.mtime if self.sets_mtime else None)


async def _stream(payload: Payload) -> AsyncIterator[bytes]:
    async for chunk in payload.chunks():
        yield chunk
