"""Files: a user's OneDrive and the SharePoint document libraries, listed through the drive's root
delta, and each file streamed from its pre-authenticated download URL, resumed with Range after a
dropped connection and checked against the quickXorHash and size Graph declares."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import httpx

from connectors.graph.quickxor import QuickXorHash
from connectors.graph.session import GraphApiError, GraphSession, item_failure
from migrator.errors import ConfigError, CursorExpired, ItemError, TransientError
from migrator.model import (
    Change,
    Container,
    Cursor,
    Item,
    ItemRef,
    Payload,
    Removed,
    User,
)

PAGE = 200
DOWNLOAD_URL = "@microsoft.graph.downloadUrl"
RESUMES = 4  # consecutive failed attempts, without a byte of progress, before a download gives up
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def drive_container(drive: dict[str, Any], role: str, parent: tuple[str, ...] = ()) -> Container:
    name = drive.get("name") or drive["id"]
    return Container(drive["id"], name, "files", (*parent, name), role)


def below_root(reference_path: str) -> str:
    """"/drive/root:/A%20B/C" (or "/drives/{id}/root:/...") -> "A B/C"; "" for the root itself."""
    _, _, rest = reference_path.partition("root:")
    return "/".join(unquote(segment) for segment in rest.split("/") if segment)


class _Paths:
    """Item path below the drive root. Graph omits parentReference.path in OneDrive for Business
    delta answers, so folders are remembered by id and an unknown parent is looked up once."""

    def __init__(self, session: GraphSession, drive_id: str) -> None:
        self.session, self.drive_id = session, drive_id
        self.folders: dict[str, str] = {}

    async def of(self, item: dict[str, Any]) -> str:
        if "root" in item:
            self.folders[item["id"]] = ""
            return ""
        parent = item.get("parentReference") or {}
        if "path" in parent:
            base = below_root(parent["path"])
        else:
            base = await self._folder(parent.get("id", ""))
        path = f"{base}/{item['name']}" if base else item["name"]
        if "folder" in item or "package" in item:
            self.folders[item["id"]] = path
        return path

    async def _folder(self, folder_id: str) -> str:
        if folder_id not in self.folders:
            folder = await self.session.get_json(f"drives/{self.drive_id}/items/{folder_id}",
                                                 {"$select": "id,name,parentReference,root,folder"})
            self.folders[folder_id] = await self.of(folder)
        return self.folders[folder_id]


def _ref(item: dict[str, Any], path: str) -> ItemRef:
    """The eTag is the change key: it moves with a file's content and with a rename or move, which
    the cTag (content only) would miss; a folder's cTag would move with every descendant."""
    kind = "file" if "file" in item else "folder"
    return ItemRef(item["id"], item.get("eTag") or item.get("cTag", ""), kind, path, item.get("size") if kind == "file" else None)


class FilesReader:
    workload = "files"

    def __init__(self, session: GraphSession, page_size: int = PAGE, resumes: int = RESUMES) -> None:
        self.session, self.page_size, self.resumes = session, page_size, resumes

    async def containers(self, user: User) -> AsyncIterator[Container]:
        if user.is_site:
            for _, container in await self.libraries(site_name=user.display_name):
                yield container
            return
        drive = await self.session.get_json(f"users/{user.source_id}/drive", {"$select": "id,name,driveType"})
        yield drive_container(drive, "onedrive")

    async def libraries(self, site_name: str | None = None) -> list[tuple[dict[str, Any], Container]]:
        """Every site's document libraries (or one named site's); a library's path starts with its
        site's name, since most libraries are called "Documents" in the site's language."""
        found: list[tuple[dict[str, Any], Container]] = []
        sites = 0
        async for site in self.session.items("sites", {"search": site_name or "*"}):
            name = site.get("displayName") or site.get("name") or site["id"]
            if site_name is not None and name != site_name:
                continue  # search matches words, not whole names
            sites += 1
            async for drive in self.session.items(f"sites/{site['id']}/drives"):
                if drive.get("driveType", "documentLibrary") == "documentLibrary":
                    found.append((site, drive_container(drive, "library", (name,))))
        if site_name is not None and not sites:
            raise ConfigError(f"files.sites names {site_name!r}, which is not a SharePoint site of the tenant",
                              hint="write the site's display name as SharePoint shows it")
        return found

    async def changes(self, user: User, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        url = cursor or f"drives/{container.source_id}/root/delta"
        headers = {"Prefer": f"odata.maxpagesize={self.page_size}"}
        paths = _Paths(self.session, container.source_id)
        try:
            async for page in self.session.pages(url, headers=headers):
                for entry in page.get("value", []):
                    if "deleted" in entry or "@removed" in entry:
                        yield Removed(entry["id"])
                    elif "root" not in entry:
                        yield _ref(entry, await paths.of(entry))
                if "@odata.deltaLink" in page:
                    yield Cursor(page["@odata.deltaLink"])
        except GraphApiError as exc:
            if exc.status == 410:
                raise CursorExpired(f"the delta token of drive {container.name} has expired") from None
            raise

    async def fetch(self, user: User, container: Container, ref: ItemRef) -> Item:
        base = f"drives/{container.source_id}/items/{ref.source_id}"
        try:
            item = await self.session.get_json(base)
            # A OneDrive item without the `shared` facet has only its owner's and inherited
            # grants, and neither becomes a share: one request per file saved. Libraries break
            # inheritance for groups without marking items shared, so theirs are always read.
            listed_grants = "shared" in item or container.role != "onedrive"
            permissions = [p async for p in self.session.items(f"{base}/permissions")] if listed_grants else []
            path = await _Paths(self.session, container.source_id).of(item)
        except GraphApiError as exc:
            raise item_failure(exc) from None
        # The download URL is a bearer capability for an hour: it stays out of what may be stored.
        listed = {k: v for k, v in item.items() if k != DOWNLOAD_URL}
        metadata = {"item": listed, "path": path, "permissions": permissions}
        if "file" not in item:
            return Item(ref, Payload.from_bytes(b""), metadata)
        download = Download(self.session, base, item, path, self.resumes)
        return Item(ref, Payload(download.chunks, size=item.get("size")), metadata)


class Download:
    """One file's content. Each `chunks()` call streams it anew; a dropped connection resumes where
    it broke, and the bytes are checked against what Graph declared once the stream ends."""

    def __init__(self, session: GraphSession, item_path: str, item: dict[str, Any], path: str, resumes: int = RESUMES) -> None:
        self.session, self.item_path, self.path, self.resumes = session, item_path, path, resumes
        self.url: str | None = item.get(DOWNLOAD_URL)
        self.size: int | None = item.get("size")
        self.expected_hash: str | None = item.get("file", {}).get("hashes", {}).get("quickXorHash")

    async def _fresh_url(self) -> str:
        """Download URLs live about an hour; /content hands out a new one."""
        try:
            self.url = await self.session.redirect_location(f"{self.item_path}/content")
        except GraphApiError as exc:
            raise item_failure(exc) from None
        return self.url

    async def chunks(self) -> AsyncIterator[bytes]:
        digest, failures, renewed = QuickXorHash(), 0, False
        url = self.url or await self._fresh_url()
        while True:
            before = digest.length
            try:
                async with contextlib.aclosing(self._attempt(url, digest.length)) as stream:
                    async for chunk in stream:
                        digest.update(chunk)
                        yield chunk
                break
            except GraphApiError as exc:
                if exc.status not in (401, 403) or renewed:
                    raise item_failure(exc) from None
                renewed, url = True, await self._fresh_url()
            except (httpx.TransportError, OSError) as exc:
                if self.size is not None and digest.length >= self.size:
                    break  # dropped after the last byte: nothing left to ask for
                failures = 0 if digest.length > before else failures + 1
                if failures >= self.resumes:
                    raise TransientError(f"download of {self.path} kept failing at byte {digest.length}: {exc!r}") from None
        self._verify(digest)

    async def _attempt(self, url: str, offset: int) -> AsyncIterator[bytes]:
        """The bytes from `offset` on; a server that ignores Range is skipped up to `offset`. Pieces
        are passed on as they arrive (never re-buffered), so a drop loses nothing already received;
        identity encoding keeps Range offsets and the hash about the stored bytes."""
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        async with self.session.stream(url, headers) as response:
            skip = offset if response.status_code == 200 else 0
            if response.status_code == 206:
                self._check_range(response.headers.get("content-range", ""), offset)
            async for chunk in response.aiter_bytes():
                if skip:
                    chunk, skip = chunk[skip:], max(skip - len(chunk), 0)
                if chunk:
                    yield chunk

    def _check_range(self, header: str, offset: int) -> None:
        found = _CONTENT_RANGE.fullmatch(header.strip())
        total = found and found.group(3)
        if not found or int(found.group(1)) != offset or (self.size is not None and total not in ("*", str(self.size))):
            # The file changed (or the server misbehaved) between attempts: the engine must start over.
            raise TransientError(f"download of {self.path} resumed at {offset} got Content-Range {header!r}")

    def _verify(self, digest: QuickXorHash) -> None:
        if self.size is not None and digest.length != self.size:
            raise ItemError(f"{self.path}: Graph declares {self.size} bytes, the download gave {digest.length}")
        actual = digest.b64()
        if self.expected_hash and actual != self.expected_hash:
            raise ItemError(f"{self.path}: quickXorHash expected {self.expected_hash}, got {actual}")
