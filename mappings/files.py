"""Drive items -> files on a WebDAV/Nextcloud target: a legal path, the modification time, the
hashes Graph declared, and the shares Nextcloud can express.

A OneDrive lands in its owner's home under a configurable folder; a SharePoint library under a
folder named after its site (a Group Folder's mount point on Nextcloud). Only permissions granted
on the item itself become shares: inherited ones are expressed by the share on the ancestor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mappings.file_names import NameRules, legal_name, legal_path
from migrator.contracts import WorkloadMapping
from migrator.model import Container, Item, Skip, Target

READ, UPDATE, CREATE, DELETE = 1, 2, 4, 8
SHARE_TYPES = {"user": 0, "group": 1, "link": 3}


@dataclass(frozen=True)
class FileOptions:
    rules: NameRules = field(default_factory=NameRules.nextcloud_defaults)
    onedrive_folder: str = "OneDrive"
    libraries_folder: str = ""  # "" puts each site's folder at the root (where Group Folders mount)
    # upn or e-mail address -> the target account; None when the person has none
    account_of: Callable[[str], str | None] = lambda address: None
    groups: Mapping[str, str] = field(default_factory=dict)  # SharePoint group name -> target group


def container_path(container: Container, options: FileOptions) -> tuple[str, ...]:
    if container.role == "library":
        base = (options.libraries_folder,) if options.libraries_folder else ()
        return legal_path((*base, *container.path), options.rules)[0]
    return legal_path((options.onedrive_folder,), options.rules)[0]


def _epoch(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    return dt.datetime.fromisoformat(timestamp).timestamp()


def _permissions_mask(roles: list[str], is_folder: bool) -> int:
    if "write" in roles or "owner" in roles:
        return READ | UPDATE | ((CREATE | DELETE) if is_folder else 0)
    return READ


def _identity_address(identity: Mapping[str, Any]) -> str:
    user = identity.get("user") or {}
    return user.get("email") or user.get("userPrincipalName") or ""


def map_shares(permissions: list[dict[str, Any]], is_folder: bool, options: FileOptions, personal: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    """(shares to create, reasons for sharing that cannot be carried over). In a personal drive the
    owner role is the drive's owner, who owns the target home too; in a library it is a grant."""
    shares: list[dict[str, Any]] = []
    dropped: list[str] = []
    for permission in permissions:
        roles = permission.get("roles") or []
        if "inheritedFrom" in permission or (personal and "owner" in roles):
            continue
        mask = _permissions_mask(roles, is_folder)
        access = "edit" if mask & UPDATE else "read"
        granted = permission.get("grantedToV2") or permission.get("grantedTo") or {}
        link = permission.get("link")
        if link is not None:
            scope = link.get("scope", "")
            if scope == "anonymous":
                shares.append({"type": "link", "with": "", "permissions": mask, "access": access})
            elif scope == "users":
                for identity in permission.get("grantedToIdentitiesV2") or permission.get("grantedToIdentities") or []:
                    _user_share(_identity_address(identity), mask, access, shares, dropped, options)
            else:
                dropped.append(f"{access} link for the {scope or 'unknown'} scope: Nextcloud has no organisation-wide link; share with a group instead")
        elif "siteGroup" in granted or "group" in granted:
            group = (granted.get("group") or granted.get("siteGroup") or {}).get("displayName", "")
            target = options.groups.get(group, group)
            if target:
                shares.append({"type": "group", "with": target, "permissions": mask, "access": access})
            else:
                dropped.append(f"{access} grant to a group without a name")
        else:
            _user_share(_identity_address(granted), mask, access, shares, dropped, options)
    return shares, dropped


def _user_share(address: str, mask: int, access: str, shares: list, dropped: list, options: FileOptions) -> None:
    account = options.account_of(address) if address else None
    if account:
        shares.append({"type": "user", "with": account, "permissions": mask, "access": access})
    else:
        dropped.append(f"{access} grant to {address or 'a person without an address'}: no account on the target")


def map_drive_item(item: Item, container: Container, options: FileOptions) -> Target | Skip:
    meta = item.metadata
    drive_item: dict[str, Any] = meta.get("item") or {}
    path = meta.get("path") or item.ref.name
    if not path:
        return Skip("the drive root itself is not an item")
    if "package" in drive_item:
        return Skip(f"a {drive_item['package'].get('type', 'package')} package (OneNote notebook) has no file content to copy")
    segments = path.split("/")
    legal, renamed = legal_path(segments, options.rules)
    is_folder = "folder" in drive_item
    file_info = drive_item.get("fileSystemInfo") or {}
    shares, dropped = map_shares(meta.get("permissions") or [], is_folder, options, personal=container.role != "library")
    own = legal_name(segments[-1], options.rules)
    metadata: dict[str, Any] = {
        "kind": "folder" if is_folder else "file",
        "mtime": _epoch(file_info.get("lastModifiedDateTime") or drive_item.get("lastModifiedDateTime")),
        "size": drive_item.get("size") if not is_folder else None,
        "quickxor": (drive_item.get("file") or {}).get("hashes", {}).get("quickXorHash"),
        "content_type": (drive_item.get("file") or {}).get("mimeType", "application/octet-stream"),
        "shares": shares,
        "shares_dropped": dropped,
    }
    if own.reasons:
        metadata["renamed"] = {"from": segments[-1], "to": own.name, "why": list(own.reasons)}
    del renamed  # ancestors are reported with their own folder items
    return Target("/".join(legal), item.payload, metadata)


def files_mapping(options: FileOptions) -> WorkloadMapping:
    return WorkloadMapping(
        container_path=lambda container: container_path(container, options),
        item=lambda item, container: map_drive_item(item, container, options),
    )
