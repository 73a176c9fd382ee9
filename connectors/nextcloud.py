"""The files sink for Nextcloud: WebDAV under /remote.php/dav/files/<user>, plus what Nextcloud
adds to it and a migration needs:

* modification times kept with `X-OC-MTime` (the answer says `X-OC-MTime: accepted`, or the item
  carries a note that the server kept its own time);
* `OC-Checksum: SHA256:<hex>` stored with every file, so a later probe can tell our own complete
  upload from anything else without downloading it (Nextcloud stores it, it does not check it);
* files larger than one chunk go through chunked upload v2: an upload folder named after the file
  and its content, numbered chunks, then `MOVE .file`. A broken upload resumes: the chunks the
  server already holds (listed by PROPFIND) are not sent again. Memory stays within about two
  chunks whatever the file's size;
* names checked against the server's published `files` capabilities (see mappings/file_names.py);
* shares through the OCS sharing API (connectors/nextcloud_shares.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

from connectors.dav_http import Answer, Login, said
from connectors.nextcloud_ocs import ensure_group_folder
from connectors.nextcloud_shares import create_shares
from connectors.webdav import XML, WebDavSink, segment
from connectors.webdav_props import PROPFIND_BODY, parse_multistatus
from mappings.file_names import NameRules
from migrator.errors import ConfigError, ItemError, TransientError
from migrator.model import DestRef, Target

CHUNK_SIZE = 10 << 20  # Nextcloud's desktop client starts with 10 MB chunks
OCS = {"OCS-APIRequest": "true", "Accept": "application/json"}


class NextcloudSink(WebDavSink):
    sets_mtime = True
    shares = True

    def __init__(self, base_url: str, login: Login, ca_file: str | None = None, verify_content: bool = True,
                 chunk_size: int = CHUNK_SIZE, timeout: float = 300, connections: int = 16,
                 group_folders: dict[str, list[str]] | None = None, skip_tls_verify: bool = False) -> None:
        """`group_folders`: mount point -> the groups that get it; a container whose first folder is
        one of these is written into that Group Folder, created first where missing."""
        super().__init__(base_url, login, None, ca_file, verify_content, timeout, connections, skip_tls_verify)
        self.chunk_size = chunk_size
        self.group_folders = dict(group_folders or {})
        self._mounted: set[str] = set()
        self.quotas: dict[str, float | None] = {}  # owner -> free bytes, as probe() read them
        self._capabilities: dict[str, Any] | None = None

    async def ensure_container(self, owner: str, path: tuple[str, ...]) -> str:
        mount = path[0] if path else None
        if mount in self.group_folders and mount not in self._mounted:
            await ensure_group_folder(self.http, owner, mount, self.group_folders[mount])
            self._mounted.add(mount)
            self._folders.add(self.folder_path(owner, (mount,)))  # mounted, not made: MKCOL would fail
        return await super().ensure_container(owner, path)

    def home_path(self, owner: str) -> str:
        user, _ = self.http.account(owner)
        return f"/remote.php/dav/files/{segment(user)}"

    def uploads_path(self, owner: str, upload_id: str) -> str:
        user, _ = self.http.account(owner)
        return f"/remote.php/dav/uploads/{segment(user)}/{upload_id}"

    async def capabilities(self) -> dict[str, Any]:
        """The server's published capabilities (readable without logging in)."""
        if self._capabilities is None:
            answer = await self.http.request(None, "GET", "/ocs/v2.php/cloud/capabilities", params={"format": "json"}, headers=OCS)
            if answer.status != 200:
                raise ItemError(f"cannot read the Nextcloud capabilities at {self.http.base_url}: {said(answer)}")
            try:
                self._capabilities = answer_json(answer)["ocs"]["data"]["capabilities"]
            except (KeyError, TypeError, ValueError):
                raise ItemError(f"{self.http.base_url} does not answer like Nextcloud: no OCS capabilities") from None
        return self._capabilities

    async def probe(self, owner: str) -> str:
        """Logs in as `owner` and reads their quota; the Group Folders' owner must be an admin."""
        answer = await self.http.request(owner, "GET", "/ocs/v1.php/cloud/user", refusal_fails=False, params={"format": "json"}, headers=OCS)
        if answer.status in (401, 403):
            raise ConfigError(f"Nextcloud refused {self.http.account(owner)[0]} ({answer.status})",
                              hint="check the account's app password in the target's password or user_passwords")
        if answer.status != 200:
            raise ConfigError(f"{self.http.base_url} answered {said(answer)} for the user API", hint="check the target url: it must be Nextcloud's base URL")
        data = answer_json(answer)["ocs"]["data"]
        self.quotas[owner] = (data.get("quota") or {}).get("free")
        free = self.quotas[owner]
        return f"logged in as {data.get('id')}" + (f", {free / 1e9:.1f} GB free" if isinstance(free, int | float) and free >= 0 else "")

    async def name_rules(self) -> NameRules:
        return NameRules.from_capabilities((await self.capabilities()).get("files") or {})

    def _explain(self, answer: Answer) -> str:
        if answer.status == 507:
            return " (the user's Nextcloud quota is exhausted: raise it or free space, then rerun)"
        return ""

    # ------------------------------------------------------------ uploads

    def _headers(self, target: Target, replace: DestRef | None, total: int | None) -> dict[str, str]:
        headers = self._conditions(replace)
        mtime = target.metadata.get("mtime")
        if mtime is not None:
            headers["X-OC-MTime"] = str(int(mtime))
        if total is not None:
            headers["OC-Total-Length"] = str(total)
        return headers

    async def _upload(self, owner: str, url_path: str, target: Target, replace: DestRef | None) -> tuple[str | None, float | None, tuple[str, ...]]:
        size = target.payload.size
        if size is not None and size <= self.chunk_size:
            data = await target.payload.read_all()  # at most one chunk
            digest = hashlib.sha256(data).hexdigest()
            headers = self._headers(target, replace, len(data)) | {
                "OC-Checksum": f"SHA256:{digest}", "Content-Type": str(target.metadata.get("content_type") or "application/octet-stream"),
            }
            answer = await self.http.request(owner, "PUT", url_path, content=handed_out(data), headers=headers | {"Content-Length": str(len(data))})
            del data
        else:
            answer, digest = await self._chunked(owner, url_path, target, replace)
        if answer.status == 412 and replace is None and await self._holds(owner, url_path, digest):
            return await self._already_there(owner, url_path, target)  # an earlier attempt's answer was lost
        self._check_put(answer, target, replace)
        accepted = answer.headers.get("X-OC-MTime", "").lower() == "accepted"
        notes = () if accepted or target.metadata.get("mtime") is None else ("the target kept its own modification time",)
        return answer.headers.get("OC-ETag") or answer.headers.get("ETag"), target.metadata.get("mtime") if accepted else None, notes

    async def _chunked(self, owner: str, url_path: str, target: Target, replace: DestRef | None) -> tuple[Answer, str]:
        destination = self.http.base_url + url_path
        user, _ = self.http.account(owner)
        identity = f"{user}\0{url_path}\0{target.metadata.get('quickxor') or ''}\0{target.payload.size}"
        folder = self.uploads_path(owner, "migrator-" + hashlib.sha256(identity.encode()).hexdigest()[:32])
        made = await self.http.request(owner, "MKCOL", folder, headers={"Destination": destination})
        if made.status not in (201, 405):
            raise ItemError(f"cannot start a chunked upload of {target.dest_key}: {said(made)}")
        present = await self._chunks_present(owner, folder) if made.status == 405 else {}
        digest, buffer, number, total = hashlib.sha256(), bytearray(), 0, 0
        chunk_headers = {"Destination": destination}
        if target.payload.size is not None:
            chunk_headers["OC-Total-Length"] = str(target.payload.size)
        async for piece in target.payload.chunks():
            digest.update(piece)
            total += len(piece)
            buffer += piece
            while len(buffer) >= self.chunk_size:
                number += 1
                await self._send_chunk(owner, folder, number, bytes(memoryview(buffer)[: self.chunk_size]), present, chunk_headers)
                del buffer[: self.chunk_size]
        if buffer or number == 0:
            number += 1
            await self._send_chunk(owner, folder, number, bytes(buffer), present, chunk_headers)
        headers = self._headers(target, replace, total) | {"Destination": destination, "OC-Checksum": f"SHA256:{digest.hexdigest()}"}
        answer = await self.http.request(owner, "MOVE", folder + "/.file", headers=headers)
        return answer, digest.hexdigest()

    async def _send_chunk(self, owner: str, folder: str, number: int, data: bytes, present: dict[str, int], headers: dict[str, str]) -> None:
        if present.get(str(number)) == len(data):
            return  # received before the upload broke off
        answer = await self.http.request(owner, "PUT", f"{folder}/{number}", content=handed_out(data),
                                         headers=headers | {"Content-Length": str(len(data))})
        if answer.status not in (200, 201, 204):
            raise ItemError(f"chunk {number} refused: {said(answer)}{self._explain(answer)}")

    async def _chunks_present(self, owner: str, folder: str) -> dict[str, int]:
        answer = await self.http.request(owner, "PROPFIND", folder + "/", content=PROPFIND_BODY, headers={**XML, "Depth": "1"})
        if answer.status != 207:
            return {}
        return {r.path.rsplit("/", 1)[-1]: r.size or 0 for r in parse_multistatus(answer.content) if not r.is_folder}

    async def _holds(self, owner: str, url_path: str, digest: str) -> bool:
        resource = await self._propfind(owner, url_path)
        return resource is not None and resource.checksums.get("SHA256") == digest

    async def _already_there(self, owner: str, url_path: str, target: Target) -> tuple[str | None, float | None, tuple[str, ...]]:
        resource = await self._propfind(owner, url_path)
        if resource is None:
            raise TransientError(f"{target.dest_key} vanished while it was being written")
        return resource.etag, resource.mtime, ()

    # ------------------------------------------------------------ shares

    async def _share(self, owner: str, url_path: str, target: Target) -> tuple[str, ...]:
        dropped = tuple(target.metadata.get("shares_dropped") or ())
        shares = target.metadata.get("shares") or []
        if not shares:
            return dropped
        sharing = (await self.capabilities()).get("files_sharing") or {}
        share_path = "/" + "/".join(self._decoded(url_path)[len(self._decoded(self.home_path(owner))):].strip("/").split("/"))
        return dropped + await create_shares(self.http, owner, share_path, shares, sharing)

    @staticmethod
    def _decoded(url_path: str) -> str:
        return unquote(url_path)


async def handed_out(data: bytes) -> AsyncIterator[bytes]:
    """A request body that lets go of its bytes once sent. httpx's request and response objects
    form reference cycles that only the cyclic collector frees, which would keep every chunk of a
    large upload alive until it runs; an exhausted generator holds nothing."""
    for start in range(0, len(data), 1 << 20):
        yield data[start:start + (1 << 20)]


def answer_json(answer: Answer) -> Any:
    return json.loads(answer.content or b"null")
