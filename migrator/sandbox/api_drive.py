"""OneDrive and SharePoint libraries: drives, items, children, root delta (deleted items carry the
`deleted` facet), permissions, and /content answering 302 to a pre-authenticated URL that serves
Range requests without a token, as Graph's download URLs do."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migrator.sandbox.auth import require
from migrator.sandbox.content import Blob, BytesBlob
from migrator.sandbox.gen_drive import (
    DriveData,
    build_library,
    build_onedrive,
    make_file,
)
from migrator.sandbox.http import GraphError, Request, Response
from migrator.sandbox.odata import collection, entity, select
from migrator.sandbox.quickxor import quick_xor_hash
from migrator.sandbox.store import Collection

if TYPE_CHECKING:
    from migrator.sandbox.app import GraphApp
    from migrator.sandbox.tenant import Tenant

PAGE = 200
LARGE_FILE = 200 * 1000 * 1000
_SIGNING_KEY = secrets.token_bytes(32)
DOWNLOAD_LIFETIME = 3600


@dataclass
class Drive:
    data: DriveData
    items: Collection  # the served state, for delta

    @property
    def id(self) -> str:
        return self.data.drive["id"]

    def item(self, item_id: str) -> dict[str, Any]:
        if item_id == "root":
            item_id = self.root_id
        found = self.items.get(item_id)
        if found is None:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        return found

    @property
    def root_id(self) -> str:
        return next(i["id"] for i in self.data.items.values() if "root" in i)

    def children(self, item_id: str) -> list[dict[str, Any]]:
        parent = self.item(item_id)["id"]
        return [i for i in self.items.current() if i.get("parentReference", {}).get("id") == parent]

    def content(self, item_id: str) -> Blob:
        blob = self.data.contents.get(item_id)
        if blob is None:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        return blob

    # -- mutations, for tests and demos of delta passes ------------------------------------------

    def add_file(self, rng, parent_id: str, name: str, content: bytes) -> dict[str, Any]:
        item = make_file(rng, self.data, self.item(parent_id)["id"], name, content)
        self.items.upsert(self.data.item_json(item["id"]))
        ancestor = item["parentReference"].get("id")
        while ancestor:  # the generator updated childCount, sizes and tags up the tree
            self.items.upsert(dict(self.data.items[ancestor]))
            ancestor = self.data.items[ancestor].get("parentReference", {}).get("id")
        return self.items.get(item["id"])

    def replace_content(self, item_id: str, content: bytes) -> dict[str, Any]:
        item = dict(self.item(item_id))
        self.data.contents[item["id"]] = BytesBlob(content)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        item.update(size=len(content), lastModifiedDateTime=now, eTag=f'"{{{secrets.token_hex(8)}}},2"', cTag=f'"c:{{{secrets.token_hex(8)}}},2"')
        item["file"] = {**item.get("file", {}), "hashes": {"quickXorHash": quick_xor_hash([content])}}
        item["fileSystemInfo"] = {**item.get("fileSystemInfo", {}), "lastModifiedDateTime": now}
        self.data.items[item["id"]] = item
        self.items.upsert(item)
        return item

    def rename(self, item_id: str, name: str) -> dict[str, Any]:
        """A file renamed in place keeps its id, as in OneDrive: the delta reports it again with
        its new name and eTag (its content and cTag unchanged)."""
        item = dict(self.item(item_id))
        if "file" not in item:
            raise ValueError("only files are renamed here")
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        item.update(name=name, lastModifiedDateTime=now, eTag=f'"{{{secrets.token_hex(8)}}},3"')
        self.data.items[item["id"]] = item
        parent = self.data.path_of(item["parentReference"]["id"])
        self.data._paths[item["id"]] = f"{parent}/{name}" if parent else name
        self.items.upsert(item)
        return item

    def delete(self, item_id: str) -> None:
        item = self.item(item_id)
        for child in self.children(item["id"]):
            self.delete(child["id"])
        self.items.remove(item["id"])


def _sign(drive_id: str, item_id: str, expires: int) -> str:
    return hmac.new(_SIGNING_KEY, f"{drive_id}/{item_id}/{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def _with_download_url(request: Request, drive: Drive, item: dict[str, Any]) -> dict[str, Any]:
    if "file" not in item:
        return item
    if item["id"] in drive.data.items and not item["file"].get("hashes", {}).get("quickXorHash"):
        drive.data.item_json(item["id"])  # computes the hash once, into the shared `hashes`
    expires = int(time.time()) + DOWNLOAD_LIFETIME
    url = f"{request.base_url}/download/{drive.id}/{item['id']}?e={expires}&s={_sign(drive.id, item['id'], expires)}"
    return {"@microsoft.graph.downloadUrl": url, **item}


def _load(tenant: Tenant, data: DriveData) -> Drive:
    """Shallow copies share their `hashes` with the generator's items, so a quickXorHash computed
    when an item is first served (see `Drive.served`) shows in both; nothing is hashed up front."""
    items = Collection(tenant.clock)
    items.load([dict(item) for item in data.items.values()])
    return Drive(data, items)


def onedrive(tenant: Tenant, user_key: str) -> Drive:
    user = tenant.user(user_key)

    def build() -> Drive:
        large = LARGE_FILE if tenant.large_items and user["id"] == tenant.users[0]["id"] else 0
        return _load(tenant, build_onedrive(tenant.rng("drive", user["id"]), user, tenant.colleagues(user), large_file_size=large))

    return tenant.lazy(("drive", user["id"]), build)


def library(tenant: Tenant, department: str) -> tuple[dict[str, Any], Drive]:
    def build() -> tuple[dict[str, Any], Drive]:
        site, data = build_library(tenant.rng("site", department), department, tenant.department_members(department))
        return site, _load(tenant, data)

    return tenant.lazy(("site", department), build)



def find_drive(tenant: Tenant, drive_id: str) -> Drive:
    """Drives are built on first use; an id not built yet may belong to any user or library."""
    for drive in [*tenant.cached("drive"), *(site_drive for _, site_drive in tenant.cached("site"))]:
        if drive.id == drive_id:
            return drive
    for department in tenant.departments():
        if library(tenant, department)[1].id == drive_id:
            return library(tenant, department)[1]
    for user in tenant.users:
        if onedrive(tenant, user["id"]).id == drive_id:
            return onedrive(tenant, user["id"])
    raise GraphError(404, "itemNotFound", "The resource could not be found.")


def _range(header: str, size: int) -> tuple[int, int] | None:
    found = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not found or (found.group(1) == "" and found.group(2) == ""):
        return None
    if found.group(1) == "":
        length = int(found.group(2))
        return max(size - length, 0), size
    start = int(found.group(1))
    end = int(found.group(2)) + 1 if found.group(2) else size
    return start, min(end, size)


def register(app: GraphApp, tenant: Tenant) -> None:
    def drive_of(request: Request) -> Drive:
        require(request.principal, "Files.Read.All", "Files.ReadWrite.All", "Sites.Read.All")
        if "drive" in request.params:
            return find_drive(tenant, request.params["drive"])
        return onedrive(tenant, request.params["user"])

    def item_shape(request: Request, drive: Drive):
        return lambda item: select(_with_download_url(request, drive, item), request)

    def get_drive(request: Request) -> Response:
        drive = drive_of(request)
        return entity(request, "drives/$entity", select(drive.data.drive, request))

    def list_user_drives(request: Request) -> Response:
        drive = drive_of(request)
        return collection(request, [drive.data.drive], "drives", PAGE)

    def get_item(request: Request) -> Response:
        drive = drive_of(request)
        item = drive.item(request.params.get("item", "root"))
        return entity(request, f"drives('{drive.id}')/items/$entity", item_shape(request, drive)(item))

    def children(request: Request) -> Response:
        drive = drive_of(request)
        return collection(request, drive.children(request.params.get("item", "root")), f"drives('{drive.id}')/items", PAGE, shape=item_shape(request, drive))

    def delta(request: Request) -> Response:
        drive = drive_of(request)
        if request.query.get("token") == "latest":  # start from now: an empty page and a deltaLink
            request.query = {k: v for k, v in request.query.items() if k != "token"}
            request.query["$deltatoken"] = tenant.delta.latest(f"drive/{drive.id}", drive.items)

        def deleted(item_id: str) -> dict[str, Any]:
            known = drive.data.items.get(item_id, {})
            return {"@odata.type": "#microsoft.graph.driveItem", "id": item_id, "deleted": {"state": "deleted"},
                    "parentReference": known.get("parentReference", {"driveId": drive.id})}

        return tenant.delta.respond(request, f"drive/{drive.id}", drive.items, f"drives('{drive.id}')/root/delta", PAGE,
                                    item_shape(request, drive), deleted)

    def content(request: Request) -> Response:
        drive = drive_of(request)
        item = drive.item(request.params["item"])
        if "file" not in item:
            raise GraphError(400, "invalidRequest", "The item is not a file.")
        return Response(302, b"", {"Location": _with_download_url(request, drive, item)["@microsoft.graph.downloadUrl"]})

    def permissions(request: Request) -> Response:
        drive = drive_of(request)
        item = drive.item(request.params["item"])
        return collection(request, drive.data.permissions.get(item["id"], []), f"drives('{drive.id}')/items('{item['id']}')/permissions", PAGE)

    def download(request: Request) -> Response:
        drive_id, item_id = request.params["drive"], request.params["item"]
        try:
            expires = int(request.query.get("e", "0"))
        except ValueError:
            expires = 0
        if expires < time.time() or not hmac.compare_digest(request.query.get("s", ""), _sign(drive_id, item_id, expires)):
            raise GraphError(401, "unauthenticated", "The pre-authenticated download URL has expired or is invalid.")
        blob = find_drive(tenant, drive_id).content(item_id)
        span = _range(request.header("range"), blob.size) if request.header("range") else None
        if request.header("range") and (span is None or span[0] >= blob.size and blob.size > 0):
            raise GraphError(416, "invalidRange", "The requested range is not satisfiable.", {"Content-Range": f"bytes */{blob.size}"})
        if span is None:
            return Response(200, blob.chunks(), {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}, length=blob.size)
        start, end = span
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end - 1}/{blob.size}"}
        return Response(206, blob.chunks(start, end), headers, length=end - start)

    def sites(request: Request) -> Response:
        require(request.principal, "Sites.Read.All", "Files.Read.All")
        found = [library(tenant, d)[0] for d in tenant.departments()]
        search = request.query.get("search", "*").strip('"')
        if search not in ("*", ""):
            found = [s for s in found if search.lower() in s.get("displayName", "").lower()]
        return collection(request, found, "sites", PAGE, shape=lambda s: select(s, request))

    def site_of(request: Request) -> tuple[dict[str, Any], Drive]:
        require(request.principal, "Sites.Read.All", "Files.Read.All")
        for department in tenant.departments():
            site, drive = library(tenant, department)
            if site["id"] == request.params["site"]:
                return site, drive
        raise GraphError(404, "itemNotFound", "Requested site could not be found")

    def get_site(request: Request) -> Response:
        site, _ = site_of(request)
        return entity(request, "sites/$entity", select(site, request))

    def site_drives(request: Request) -> Response:
        _, drive = site_of(request)
        return collection(request, [drive.data.drive], "drives", PAGE, shape=lambda d: select(d, request))

    def site_drive(request: Request) -> Response:
        _, drive = site_of(request)
        return entity(request, "drives/$entity", select(drive.data.drive, request))

    for prefix, guard in (("/users/{user}/drive", {}), ("/drives/{drive}", {"mailbox": False})):
        app.route("GET", prefix, get_drive, **guard)
        app.route("GET", prefix + "/root", get_item, **guard)
        app.route("GET", prefix + "/root/children", children, **guard)
        app.route("GET", prefix + "/root/delta", delta, **guard)
        app.route("GET", prefix + "/items/{item}", get_item, **guard)
        app.route("GET", prefix + "/items/{item}/children", children, **guard)
        app.route("GET", prefix + "/items/{item}/content", content, **guard)
        app.route("GET", prefix + "/items/{item}/permissions", permissions, **guard)
    app.route("GET", "/users/{user}/drives", list_user_drives)
    app.route("GET", "/sites", sites, mailbox=False)
    app.route("GET", "/sites/{site}", get_site, mailbox=False)
    app.route("GET", "/sites/{site}/drives", site_drives, mailbox=False)
    app.route("GET", "/sites/{site}/drive", site_drive, mailbox=False)
    app.route("GET", "/download/{drive}/{item}", download, public=True, prefix="")
