"""OneDrive for Business drives and SharePoint document libraries for the synthetic tenant.

The trees are built to exercise what a file migration gets wrong: deep nesting, Unicode names in both
normal forms, names the target refuses, case twins, empty folders, sharing that must be mapped, and
one very large file. Content is a lazily generated Blob, and quickXorHash is only computed the first
time an item is served, so building a tenant with a 200 MB file costs nothing until it is read.
"""

from __future__ import annotations

import base64
import threading
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any
from urllib.parse import quote

from migrator.sandbox.content import Blob, BytesBlob, ConcatBlob, RandomBlob
from migrator.sandbox.names import DOMAIN, TOPICS, guid, person
from migrator.sandbox.quickxor import quick_xor_hash

TENANT_NAME = DOMAIN.split(".")[0].replace("-", "")
SHAREPOINT_HOST = f"{TENANT_NAME}.sharepoint.example"
MY_HOST = f"{TENANT_NAME}-my.sharepoint.example"
# Generated history lies between these; later changes (make_file) continue after the latest one.
HISTORY_START = datetime(2020, 1, 6, tzinfo=UTC)
HISTORY_END = datetime(2026, 3, 27, 17, 0, tzinfo=UTC)
ONEDRIVE_QUOTA = 1 << 40  # 1 TiB, the usual OneDrive for Business allowance
LIBRARY_QUOTA = 25 << 40
SYSTEM_ACCOUNT = {"user": {"displayName": "System Account"}}
HASH_CHUNK = 1 << 20

MIME_TYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "md": "text/markdown",
    "ini": "text/plain",
    "jpg": "image/jpeg",
    "png": "image/png",
    "zip": "application/x-zip-compressed",
}
# Leading bytes of each format, so a sniffing consumer sees a plausible file type.
MAGIC = {
    "docx": b"PK\x03\x04", "xlsx": b"PK\x03\x04", "pptx": b"PK\x03\x04", "zip": b"PK\x03\x04",
    "pdf": b"%PDF-1.7\n", "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "png": b"\x89PNG\r\n\x1a\n",
}
TEXT_EXTENSIONS = {"txt", "md", "ini", ""}
OFFICE_EXTENSIONS = {"docx", "xlsx", "pptx"}
# Sharing-link URL kinds SharePoint uses per file type (":f:" for folders).
LINK_KINDS = {"docx": "w", "xlsx": "x", "pptx": "p", "pdf": "b", "txt": "t", "jpg": "i", "png": "i"}

WORDS = (
    "overleg", "afspraak", "besluit", "planning", "concept", "versie", "bijlage", "notitie", "advies", "actiepunt",
    "termijn", "budget", "evaluatie", "verslag", "voorstel", "reactie", "wijziging", "toelichting", "risico", "opdracht",
)


@dataclass
class DriveLayout:
    """What every item in one drive shares: where it lives and how its URLs look."""

    drive_id: str
    drive_type: str  # "business" or "documentLibrary"
    site_id: str
    web_root: str  # webUrl of the root folder; files and folders hang below it by path
    site_url: str  # Office documents open via {site_url}/_layouts/15/Doc.aspx
    link_base: str  # sharing links: {host}/:{kind}:/{link_base}/{token}
    id_prefix: str
    author: dict[str, Any]  # identitySet that make_file records as creator


@dataclass
class DriveData:
    drive: dict[str, Any]
    items: dict[str, dict[str, Any]]
    contents: dict[str, Blob]
    permissions: dict[str, list[dict[str, Any]]]
    layout: DriveLayout | None = None
    root_id: str = ""
    latest: datetime = HISTORY_END
    _children: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _paths: dict[str, str] = field(default_factory=dict, repr=False)
    _tags: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    _fixed_permissions: set[str] = field(default_factory=set, repr=False)
    _hash_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def children(self, item_id: str) -> list[dict[str, Any]]:
        """Children as served, in creation order; listing a folder hashes its files if not yet done."""
        return [self.item_json(child) for child in self._children[item_id]]

    def item_json(self, item_id: str) -> dict[str, Any]:
        """A shallow copy of the item as served, with file.hashes.quickXorHash filled in on first use."""
        item = self.items[item_id]
        hashes = item.get("file", {}).get("hashes")
        if hashes is not None and "quickXorHash" not in hashes:
            with self._hash_lock:  # two first requests for a 200 MB file should hash it once
                if "quickXorHash" not in hashes:
                    hashes["quickXorHash"] = quick_xor_hash(self.contents[item_id].chunks(chunk_size=HASH_CHUNK))
        return dict(item)

    def path_of(self, item_id: str) -> str:
        """The item's path below the root, unencoded, e.g. "Documenten/Beleid"; "" for the root."""
        return self._paths[item_id]

    def item_by_path(self, path: str) -> dict[str, Any] | None:
        """Resolves "/A/B" (unencoded) like Graph's root:/A/B: addressing; an exact match wins over a
        case-insensitive one, since the tree holds case twins."""
        current = self.root_id
        for segment in [s for s in path.split("/") if s]:
            kids = [self.items[c] for c in self._children.get(current, [])]
            match = next((k for k in kids if k["name"] == segment), None)
            match = match or next((k for k in kids if k["name"].casefold() == segment.casefold()), None)
            if match is None:
                return None
            current = match["id"]
        return self.items[current]


# ---------------------------------------------------------------------------------------------
# Small helpers


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _between(rng: Random, start: datetime, end: datetime) -> datetime:
    span = max(int((end - start).total_seconds()), 1)
    return start + timedelta(seconds=rng.randrange(span))


def _b32(rng: Random, length: int) -> str:
    return base64.b32encode(rng.getrandbits(8 * 20).to_bytes(20, "big")).decode()[:length]


def _guid_upper(rng: Random) -> str:
    return guid(rng).upper()


def _drive_id(site: uuid.UUID, web: uuid.UUID, lst: uuid.UUID) -> str:
    """Graph's SharePoint drive ids are "b!" + base64url of the site, web and list GUIDs."""
    raw = site.bytes_le + web.bytes_le + lst.bytes_le
    return "b!" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def graph_path(segments: list[str]) -> str:
    """parentReference.path as Graph returns it: percent-encoded segments after "/drive/root:"."""
    return "/drive/root:" + "".join("/" + quote(s, safe="!$&'()*+,;=@") for s in segments)


def _identity(user: dict[str, Any]) -> dict[str, Any]:
    return {"user": {"id": user["id"], "displayName": user["displayName"]}}


def _email(user: dict[str, Any]) -> str:
    return user.get("mail") or user["userPrincipalName"]


def _personal_path(user: dict[str, Any]) -> str:
    """OneDrive site path segment: the UPN with "." and "@" turned into "_"."""
    return user["userPrincipalName"].lower().replace(".", "_").replace("@", "_")


def _ext(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


# ---------------------------------------------------------------------------------------------
# Content


def _text(rng: Random, sentences: int) -> bytes:
    lines = []
    for _ in range(sentences):
        topic = rng.choice(TOPICS)
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
        lines.append(f"{topic.capitalize()}: {words}.")
    return ("\n".join(lines) + "\n").encode()


def _content_for(rng: Random, name: str) -> Blob:
    """Small text for text-like names; otherwise seeded random bytes behind the format's magic."""
    ext = _ext(name)
    if ext in TEXT_EXTENSIONS or ext not in MAGIC and rng.random() < 0.5:
        return BytesBlob(_text(rng, rng.randint(2, 60)))
    size = rng.choice((rng.randint(600, 8_000), rng.randint(8_000, 60_000), rng.randint(60_000, 200_000)))
    magic = MAGIC.get(ext, b"")
    return ConcatBlob([BytesBlob(magic), RandomBlob(size - len(magic), rng.getrandbits(48))])


# ---------------------------------------------------------------------------------------------
# Items


def _reference(data: DriveData, item_id: str) -> dict[str, Any]:
    """itemReference to an item, as used in parentReference and inheritedFrom."""
    layout = data.layout
    assert layout is not None
    ref: dict[str, Any] = {"driveType": layout.drive_type, "driveId": layout.drive_id, "id": item_id}
    path = data._paths[item_id]
    ref["path"] = graph_path(path.split("/") if path else [])
    ref["siteId"] = layout.site_id
    return ref


def _tag_strings(tag: list[Any]) -> tuple[str, str]:
    guid_text, etag_version, ctag_version = tag
    return f'"{{{guid_text}}},{etag_version}"', f'"c:{{{guid_text}}},{ctag_version}"'


def _set_tags(data: DriveData, item_id: str) -> None:
    item = data.items[item_id]
    item["eTag"], item["cTag"] = _tag_strings(data._tags[item_id])


def _web_url(data: DriveData, path: str, name: str, tag_guid: str) -> str:
    layout = data.layout
    assert layout is not None
    if _ext(name) in OFFICE_EXTENSIONS:
        return (f"{layout.site_url}/_layouts/15/Doc.aspx?sourcedoc=%7B{tag_guid}%7D"
                f"&file={quote(name)}&action=default&mobileredirect=true")
    return layout.web_root + ("/" + quote(path) if path else "")


def _new_item(
    rng: Random, data: DriveData, parent_id: str, name: str, when: datetime, author: dict[str, Any],
    modifier: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Registers an item under its parent with the properties every driveItem carries."""
    item_id = data.layout.id_prefix + _b32(rng, 26)  # type: ignore[union-attr]
    parent_path = data._paths[parent_id]
    path = f"{parent_path}/{name}" if parent_path else name
    data._paths[item_id] = path
    tag_guid = _guid_upper(rng)
    data._tags[item_id] = [tag_guid, 1, 1]
    modified = min(when + timedelta(seconds=rng.choice((0, rng.randrange(60, 86_400 * 200)))), max(when, data.latest))
    item: dict[str, Any] = {
        "id": item_id,
        "name": name,
        "createdDateTime": _ts(when),
        "lastModifiedDateTime": _ts(modified),
        "webUrl": _web_url(data, path, name, tag_guid),
        "size": 0,
        "createdBy": author,
        "lastModifiedBy": modifier or author,
        "parentReference": _reference(data, parent_id),
        "fileSystemInfo": {"createdDateTime": _ts(when), "lastModifiedDateTime": _ts(modified)},
    }
    data.items[item_id] = item
    _set_tags(data, item_id)
    data._children[parent_id].append(item_id)
    parent = data.items[parent_id]
    # Replaced, not changed in place: item_json's shallow copies that were already served share it.
    parent["folder"] = {**parent["folder"], "childCount": parent["folder"]["childCount"] + 1}
    data.permissions[item_id] = [_inherit(data, p, parent_id) for p in data.permissions[parent_id]]
    return item


def _add_folder(rng: Random, data: DriveData, parent_id: str, name: str, when: datetime, author: dict[str, Any]) -> str:
    item = _new_item(rng, data, parent_id, name, when, author)
    item["folder"] = {"childCount": 0}
    data._children[item["id"]] = []
    return item["id"]


def _add_file(
    rng: Random, data: DriveData, parent_id: str, name: str, when: datetime, author: dict[str, Any],
    blob: Blob | None = None, modifier: dict[str, Any] | None = None,
) -> str:
    """A file uploaded at `when` whose local timestamps (fileSystemInfo) are older, as a sync client
    or browser upload preserves them."""
    item = _new_item(rng, data, parent_id, name, when, author, modifier)
    blob = blob if blob is not None else _content_for(rng, name)
    data.contents[item["id"]] = blob
    item["size"] = blob.size
    item["file"] = {"mimeType": MIME_TYPES.get(_ext(name), "application/octet-stream"), "hashes": {}}
    local_modified = when - timedelta(seconds=rng.randrange(300, 86_400 * 90))
    local_created = local_modified - timedelta(seconds=rng.randrange(0, 86_400 * 400))
    item["fileSystemInfo"] = {"createdDateTime": _ts(local_created), "lastModifiedDateTime": _ts(local_modified)}
    return item["id"]


def _sum_sizes(data: DriveData) -> int:
    """Folder sizes are the sum of their descendants; children are always created after parents,
    so one pass in reverse creation order suffices."""
    for item_id in reversed(list(data.items)):
        item = data.items[item_id]
        parent = item.get("parentReference", {}).get("id")
        if parent and item_id != data.root_id:
            data.items[parent]["size"] += item["size"]
    return data.items[data.root_id]["size"]


# ---------------------------------------------------------------------------------------------
# Permissions


def _login_name(user: dict[str, Any]) -> str:
    return f"i:0#.f|membership|{user['userPrincipalName'].lower()}"


def _user_permission(user: dict[str, Any], role: str, site_user_id: int) -> dict[str, Any]:
    """A direct grant to a user. SharePoint derives the permission id from the login name, so the
    same person has the same permission id on every item.

    Real OneDrive types grantedToV2.user as sharePointIdentity and adds "email", a property that
    type lacks in the SDK model; emailIdentity carries the same fields and parses cleanly."""
    login = _login_name(user)
    perm_id = base64.b64encode(login.encode()).decode().rstrip("=")
    return {
        "id": perm_id,
        "roles": [role],
        "shareId": perm_id,
        "grantedToV2": {
            "user": {"@odata.type": "#microsoft.graph.emailIdentity", "id": user["id"],
                     "displayName": user["displayName"], "email": _email(user)},
            "siteUser": {"@odata.type": "#microsoft.graph.sharePointIdentity", "id": str(site_user_id),
                         "displayName": user["displayName"], "loginName": login},
        },
        "grantedTo": _identity(user),
    }


def _group_permission(name: str, role: str, site_group_id: int) -> dict[str, Any]:
    perm_id = base64.b64encode(name.encode()).decode().rstrip("=")
    return {
        "id": perm_id,
        "roles": [role],
        "shareId": perm_id,
        "grantedToV2": {"siteGroup": {"id": str(site_group_id), "displayName": name, "loginName": name}},
        "grantedTo": {"user": {"displayName": name}},
    }


def _link_permission(rng: Random, data: DriveData, item_id: str, link_type: str) -> dict[str, Any]:
    """An organisation-wide sharing link; its URL shape follows SharePoint's /:w:/g/... links."""
    layout = data.layout
    assert layout is not None
    item = data.items[item_id]
    kind = "f" if "folder" in item else LINK_KINDS.get(_ext(item["name"]), "u")
    token = "E" + base64.urlsafe_b64encode(rng.randbytes(33)).decode()
    host, _, site_path = layout.link_base.partition("/")
    url = f"https://{host}/:{kind}:/{site_path}/{token}"
    share_id = "u!" + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return {
        "id": guid(rng),
        "roles": ["read" if link_type == "view" else "write"],
        "shareId": share_id,
        "hasPassword": False,
        "link": {"scope": "organization", "type": link_type, "webUrl": url, "preventsDownload": False},
    }


def _inherit(data: DriveData, permission: dict[str, Any], parent_id: str) -> dict[str, Any]:
    """The child's view of a parent's permission: marked with where it was granted, unless it is
    listed on every item anyway (the drive owner) or already carries its origin."""
    if permission["id"] in data._fixed_permissions or "inheritedFrom" in permission:
        return permission
    return {**permission, "inheritedFrom": _reference(data, parent_id)}


def _share(data: DriveData, item_id: str, permission: dict[str, Any], owner: dict[str, Any], when: datetime) -> None:
    """Grants directly on an item that has no children yet (children inherit when created)."""
    assert not data._children.get(item_id), "share a folder before filling it"
    data.permissions[item_id].append(permission)
    scope = "organization" if "link" in permission else "users"
    previous = data.items[item_id].get("shared", {}).get("scope")
    data.items[item_id]["shared"] = {
        "owner": owner, "scope": "organization" if previous == "organization" else scope, "sharedDateTime": _ts(when),
    }


# ---------------------------------------------------------------------------------------------
# OneDrive


def _new_drive_data(
    rng: Random, drive: dict[str, Any], layout: DriveLayout, root_permissions: list[dict[str, Any]], created: datetime,
) -> DriveData:
    data = DriveData(drive=drive, items={}, contents={}, permissions={}, layout=layout)
    root_id = layout.id_prefix + _b32(rng, 26)
    data.root_id = root_id
    data._paths[root_id] = ""
    data._children[root_id] = []
    data._tags[root_id] = [_guid_upper(rng), 1, 1]
    data.items[root_id] = {
        "id": root_id,
        "name": "root",
        "createdDateTime": _ts(created),
        "lastModifiedDateTime": _ts(HISTORY_END),
        "webUrl": layout.web_root,
        "size": 0,
        "createdBy": SYSTEM_ACCOUNT,
        "lastModifiedBy": layout.author,
        "parentReference": {"driveType": layout.drive_type, "driveId": layout.drive_id, "siteId": layout.site_id},
        "fileSystemInfo": {"createdDateTime": _ts(created), "lastModifiedDateTime": _ts(HISTORY_END)},
        "folder": {"childCount": 0},
        "root": {},
    }
    _set_tags(data, root_id)
    data.permissions[root_id] = root_permissions
    return data


def _long_name(rng: Random) -> str:
    """A file name over 250 characters and over 255 UTF-8 bytes, yet inside OneDrive's 400-character
    path limit."""
    name = f"Verslag werkgroep {rng.choice(TOPICS)} – "
    while len(name) < 247:
        name += rng.choice(("bijlage ", "reactie ", "één ", "overwegingen ", "conclusies "))
    return name[:247].rstrip() + ".txt"


class _Tree:
    """Adds folders and files at increasing times, so parents are always older than children."""

    def __init__(self, rng: Random, data: DriveData, start: datetime, authors: list[dict[str, Any]]) -> None:
        self.rng, self.data, self.authors = rng, data, authors
        self.now = start
        self.step = (HISTORY_END - start) / 80

    def _tick(self) -> datetime:
        self.now = min(self.now + self.step * self.rng.uniform(0.3, 1.7), HISTORY_END)
        return self.now

    def folder(self, parent_id: str, name: str) -> str:
        return _add_folder(self.rng, self.data, parent_id, name, self._tick(), self.authors[0])

    def file(self, parent_id: str, name: str, blob: Blob | None = None, author: dict[str, Any] | None = None) -> str:
        author = author or self.authors[0]
        modifier = self.rng.choice(self.authors) if len(self.authors) > 1 and self.rng.random() < 0.3 else author
        return _add_file(self.rng, self.data, parent_id, name, self._tick(), author, blob, modifier)

    def unique(self, parent_id: str, name: str) -> str:
        taken = {self.data.items[c]["name"].casefold() for c in self.data._children[parent_id]}
        stem, dot, ext = name.rpartition(".")
        candidate, counter = name, 2
        while candidate.casefold() in taken:
            candidate = f"{stem} ({counter}).{ext}" if dot else f"{name} ({counter})"
            counter += 1
        return candidate


def build_onedrive(rng: Random, user: dict[str, Any], colleagues: list[dict[str, Any]], *, large_file_size: int = 0) -> DriveData:
    """A user's OneDrive: a deep tree with awkward names, sharing with colleagues, and optionally one
    file of `large_file_size` bytes whose content is never held in memory."""
    site, web, lst = (uuid.UUID(guid(rng)) for _ in range(3))
    personal = _personal_path(user)
    site_url = f"https://{MY_HOST}/personal/{personal}"
    owner = _identity(user)
    layout = DriveLayout(
        drive_id=_drive_id(site, web, lst), drive_type="business", site_id=f"{MY_HOST},{site},{web}",
        web_root=f"{site_url}/Documents", site_url=site_url, link_base=f"{MY_HOST}/g/personal/{personal}",
        id_prefix="01" + _b32(rng, 6), author=owner,
    )
    created = _between(rng, HISTORY_START, HISTORY_START + timedelta(days=500))
    owner_permission = _user_permission(user, "owner", 3)
    data = _new_drive_data(rng, {}, layout, [owner_permission], created)
    data._fixed_permissions.add(owner_permission["id"])
    people = [owner] + [_identity(c) for c in colleagues[:3]]
    tree = _Tree(rng, data, created, [owner])
    _fill_onedrive(rng, tree, data, user, colleagues, people)
    if large_file_size > 0:
        backups = data.item_by_path("Back-ups")
        assert backups is not None
        tree.file(backups["id"], "Projectarchief 2025.zip", RandomBlob(large_file_size, rng.getrandbits(48)))
    used = _sum_sizes(data)
    deleted = rng.randrange(0, 50_000_000)
    data.drive = {
        "id": layout.drive_id,
        "driveType": "business",
        "name": "OneDrive",
        "description": "",
        "createdDateTime": _ts(created),
        "lastModifiedDateTime": _ts(HISTORY_END),
        "webUrl": layout.web_root,
        "createdBy": SYSTEM_ACCOUNT,
        "lastModifiedBy": owner,
        "owner": owner,
        "quota": {"deleted": deleted, "remaining": ONEDRIVE_QUOTA - used - deleted, "state": "normal",
                  "total": ONEDRIVE_QUOTA, "used": used},
    }
    return data


def _fill_onedrive(
    rng: Random, tree: _Tree, data: DriveData, user: dict[str, Any], colleagues: list[dict[str, Any]],
    people: list[dict[str, Any]],
) -> None:
    root = data.root_id
    owner = people[0]
    topic, other_topic = rng.sample(TOPICS, 2)
    year = str(max(tree.now.year, 2021))  # dated names match when the folders were made

    docs = tree.folder(root, "Documenten")
    policy = tree.folder(docs, "Beleid")
    tree.file(policy, "Overzicht begroting – concept ü.docx")  # NFC, with an en dash
    shared_file = tree.file(policy, f"Beleidsnota {other_topic}.docx")
    for t in rng.sample(TOPICS, 2):
        tree.file(policy, tree.unique(policy, f"Beleidsnota {t}.pdf"))
    tree.file(docs, unicodedata.normalize("NFD", "Presentatie café – Übersicht.pptx"))  # as a Mac uploads it
    tree.file(docs, f"Notulen {year}-03-12.txt")

    projects = tree.folder(docs, "Projecten")
    year_folder = tree.folder(projects, year)
    tree.file(year_folder, "Rapport.docx")
    tree.file(year_folder, "rapport.docx")  # case twin: clashes on case-insensitive targets
    topic_folder = tree.folder(year_folder, topic.capitalize())
    work = tree.folder(topic_folder, "Werkdocumenten")
    planning = tree.file(work, f"Planning {topic}.xlsx")
    drafts = tree.folder(work, "Concepten")
    linked = tree.file(drafts, f"Concept {topic} v1.docx")
    tree.file(drafts, f"Concept {topic} v2.docx")
    old = tree.folder(drafts, "Oud")
    tree.file(old, f"{topic} (kopie).txt")
    tree.folder(topic_folder, "Leeg")

    team = tree.folder(root, "Gedeeld met team")
    when = tree.now
    for colleague, role in zip(colleagues[:2], ("write", "read")):
        site_user = 10 + colleagues.index(colleague)
        _share(data, team, _user_permission(colleague, role, site_user), owner, when)
    authors = people[1:3] or [owner]
    tree.file(team, f"Teamoverleg {year}-01-15.docx", author=rng.choice(authors))
    tree.file(team, f"Teamoverleg {year}-02-12.docx")
    minutes = tree.folder(team, "Notulen")
    tree.file(minutes, f"Notulen {year}-01-15.txt", author=rng.choice(authors))
    tree.file(minutes, f"Notulen {year}-02-12.txt")

    photos = tree.folder(root, "Foto's")
    for _ in range(3):
        tree.file(photos, tree.unique(photos, f"IMG_{rng.randint(1000, 9999)}.jpg"))
    tree.file(photos, f"Schermafbeelding {int(year) - 1}-06-01 143512.png")

    tree.file(root, "日本語メモ.txt")
    tree.file(root, "Notities 📝.txt")
    outing = tree.folder(root, "🎉 Teamuitje")
    tree.file(outing, "Programma 🎉.pptx")
    tree.file(root, "Persoonlijk budget.xlsx")

    _fill_awkward_names(rng, tree, root)
    tree.folder(root, "Nieuwe map")
    backups = tree.folder(root, "Back-ups")
    tree.file(backups, "Oude schijf.zip")

    _scatter_files(rng, tree, [policy, docs, work, drafts, minutes, photos, root])

    when = tree.now
    if len(colleagues) > 2:
        _share(data, shared_file, _user_permission(colleagues[2], "read", 12), owner, when)
    _share(data, linked, _link_permission(rng, data, linked, "view"), owner, when)
    _share(data, planning, _link_permission(rng, data, planning, "edit"), owner, when)


def _fill_awkward_names(rng: Random, tree: _Tree, root: str) -> None:
    """Names OneDrive holds that a Nextcloud target refuses or alters. OneDrive itself rejects "\\",
    leading/trailing spaces, desktop.ini and case twins in new uploads, but data migrated into a
    tenant by other tools can still carry them, so the migrator must cope."""
    awkward = tree.folder(root, "Lastige namen")
    tree.file(awkward, ".htaccess", BytesBlob(b"Require all denied\n"))
    tree.file(awkward, "desktop.ini", BytesBlob(b"[.ShellClassInfo]\r\nIconResource=C:\\Windows\\System32\\SHELL32.dll,4\r\n"))
    tree.file(awkward, "download.part")
    tree.file(awkward, "upload.filepart")
    tree.file(awkward, "rapport\\2026.txt")
    tree.file(awkward, "Versie 2.")
    tree.file(awkward, "100% klaar #1.txt")
    tree.file(awkward, _long_name(rng))
    trailing = tree.folder(awkward, "Archief ")
    tree.file(trailing, "notitie .txt ")


def _scatter_files(rng: Random, tree: _Tree, folders: list[str]) -> None:
    kinds = (("Verslag", "docx"), ("Overzicht", "xlsx"), ("Presentatie", "pptx"), ("Memo", "txt"), ("Besluit", "pdf"))
    for _ in range(rng.randint(4, 9)):
        parent = rng.choice(folders)
        label, ext = rng.choice(kinds)
        tree.file(parent, tree.unique(parent, f"{label} {rng.choice(TOPICS)}.{ext}"))


# ---------------------------------------------------------------------------------------------
# SharePoint


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain if ch.isalnum())


def build_library(rng: Random, department: str, members: list[dict[str, Any]]) -> tuple[dict[str, Any], DriveData]:
    """A department's team site and its default "Documenten" library, with access through the site's
    owner, member and visitor groups and one folder whose inheritance is broken."""
    site, web, lst = (uuid.UUID(guid(rng)) for _ in range(3))
    slug = _slug(department)
    site_url = f"https://{SHAREPOINT_HOST}/sites/{slug}"
    members = members or [_invented_member(rng)]
    author = _identity(members[0])
    layout = DriveLayout(
        drive_id=_drive_id(site, web, lst), drive_type="documentLibrary", site_id=f"{SHAREPOINT_HOST},{site},{web}",
        web_root=f"{site_url}/Gedeelde%20documenten", site_url=site_url, link_base=f"{SHAREPOINT_HOST}/g/sites/{slug}",
        id_prefix="01" + _b32(rng, 6), author=author,
    )
    created = _between(rng, HISTORY_START, HISTORY_START + timedelta(days=300))
    groups = [
        _group_permission(f"Eigenaars van {department}", "owner", 3),
        _group_permission(f"Leden van {department}", "write", 5),
        _group_permission(f"Bezoekers van {department}", "read", 4),
    ]
    data = _new_drive_data(rng, {}, layout, groups, created)
    authors = [_identity(m) for m in members[:5]]
    tree = _Tree(rng, data, created, authors)
    _fill_library(rng, tree, data, department, members, groups)
    used = _sum_sizes(data)
    # A group-connected site's library is owned by the Microsoft 365 group. Graph sends {"group": ...}
    # untyped; the type annotation lets the SDK's identitySet model, which lacks "group", parse it.
    owner_group = {"@odata.type": "#microsoft.graph.sharePointIdentitySet", "group": {"id": guid(rng), "displayName": department}}
    data.drive = {
        "id": layout.drive_id,
        "driveType": "documentLibrary",
        "name": "Documenten",
        "description": "",
        "createdDateTime": _ts(created),
        "lastModifiedDateTime": _ts(HISTORY_END),
        "webUrl": layout.web_root,
        "createdBy": SYSTEM_ACCOUNT,
        "lastModifiedBy": author,
        "owner": owner_group,
        "quota": {"deleted": 0, "remaining": LIBRARY_QUOTA - used, "state": "normal", "total": LIBRARY_QUOTA, "used": used},
    }
    site_json = {
        "id": layout.site_id,
        "name": slug,
        "displayName": department,
        "description": f"Teamsite van de afdeling {department}",
        "webUrl": site_url,
        "createdDateTime": _ts(created),
        "lastModifiedDateTime": _ts(HISTORY_END),
        "root": {},
        "siteCollection": {"hostname": SHAREPOINT_HOST},
    }
    return site_json, data


def _invented_member(rng: Random) -> dict[str, Any]:
    """Stands in for a department nobody is in yet, so the library still has an author."""
    given, family = person(rng)
    local = f"{given}.{family}".replace(" ", "").lower()
    return {"id": guid(rng), "displayName": f"{given} {family}", "userPrincipalName": f"{local}@{DOMAIN}"}


def _fill_library(
    rng: Random, tree: _Tree, data: DriveData, department: str, members: list[dict[str, Any]],
    groups: list[dict[str, Any]],
) -> None:
    root = data.root_id
    general = tree.folder(root, "Algemeen")
    for label in ("Jaarplan", "Contactlijst", "Werkafspraken"):
        tree.file(general, f"{label} {department}.{rng.choice(('docx', 'xlsx', 'pdf'))}", author=rng.choice(tree.authors))
    processes = tree.folder(root, "Werkprocessen")
    tree.file(processes, f"Procesbeschrijving {rng.choice(TOPICS)}.docx", author=rng.choice(tree.authors))
    tree.file(processes, f"Stroomschema {rng.choice(TOPICS)}.pdf", author=rng.choice(tree.authors))
    templates = tree.folder(processes, "Sjablonen")
    tree.file(templates, "Sjabloon notitie.docx")
    tree.file(templates, "Sjabloon presentatie.pptx")
    meetings = tree.folder(root, "Vergaderingen")
    meetings_year = tree.folder(meetings, "2026")
    for month in ("01", "02", "03"):
        tree.file(meetings_year, f"Afdelingsoverleg 2026-{month}.docx", author=rng.choice(tree.authors))

    confidential = tree.folder(root, "Vertrouwelijk")
    # Broken inheritance: only the owners' group and one named member keep access.
    data.permissions[confidential] = [{k: v for k, v in groups[0].items()}]
    _share(data, confidential, _user_permission(members[0], "write", 11), tree.authors[0], tree.now)
    tree.file(confidential, f"Personeelsdossier {rng.choice(TOPICS)}.pdf")
    tree.file(confidential, "Beoordelingen 2025.xlsx")
    tree.file(root, f"Welkom bij {department}.docx")
    tree.file(root, "Leesmij.txt")


# ---------------------------------------------------------------------------------------------
# Changes after the initial build


def make_file(rng: Random, drive: DriveData, parent_id: str, name: str, content: bytes) -> dict[str, Any]:
    """Adds a file as if uploaded now (just after the latest change in the drive) and updates the
    parent's childCount and eTag/cTag and the ancestors' size and cTag, as a real upload would.
    Raises ValueError if the parent already holds exactly this name."""
    parent = drive.items[parent_id]
    if "folder" not in parent:
        raise ValueError(f"{parent_id} is not a folder")
    if any(drive.items[c]["name"] == name for c in drive._children[parent_id]):
        raise ValueError(f"{name!r} already exists in {parent_id}")
    assert drive.layout is not None
    drive.latest = drive.latest + timedelta(seconds=rng.randint(30, 600))
    item_id = _add_file(rng, drive, parent_id, name, drive.latest, drive.layout.author, BytesBlob(content))
    item = drive.items[item_id]
    # An API upload without fileSystemInfo gets the server's time for both.
    item["lastModifiedDateTime"] = item["createdDateTime"]
    item["fileSystemInfo"] = {"createdDateTime": item["createdDateTime"], "lastModifiedDateTime": item["createdDateTime"]}
    item["size"] = len(content)
    drive._tags[parent_id][1] += 1
    ancestor: str | None = parent_id
    while ancestor:
        drive.items[ancestor]["size"] += len(content)
        drive._tags[ancestor][2] += 1
        _set_tags(drive, ancestor)
        ancestor = drive.items[ancestor]["parentReference"].get("id")
    quota = drive.drive.get("quota")
    if quota:
        drive.drive["quota"] = {**quota, "used": quota["used"] + len(content), "remaining": quota["remaining"] - len(content)}
    return drive.item_json(item_id)
