"""Shares through Nextcloud's OCS sharing API: one user, group or public-link share per grant the
files mapping kept. Existing shares of the path are read first, so a rerun creates nothing twice;
what the server refuses (an unknown user, public links switched off) becomes a note on the item."""

from __future__ import annotations

from typing import Any

from connectors.dav_http import DavConnection
from connectors.nextcloud_ocs import OCS, ocs_envelope

SHARES = "/ocs/v2.php/apps/files_sharing/api/v1/shares"
SHARE_TYPES = {"user": 0, "group": 1, "link": 3}


async def existing_shares(http: DavConnection, owner: str, path: str) -> set[tuple[int, str]]:
    answer = await http.request(owner, "GET", SHARES, params={"path": path, "reshares": "true", "format": "json"}, headers=OCS)
    status, _, data = ocs_envelope(answer.content)
    if answer.status == 404 or status == 404 or not isinstance(data, list):
        return set()
    return {(int(s.get("share_type", -1)), str(s.get("share_with") or "")) for s in data}


async def create_shares(http: DavConnection, owner: str, path: str, shares: list[dict[str, Any]], sharing: dict[str, Any]) -> tuple[str, ...]:
    notes: list[str] = []
    if sharing.get("api_enabled") is False:
        return (f"{len(shares)} share(s) not created: sharing is disabled on the target",)
    public_links = bool((sharing.get("public") or {}).get("enabled"))
    have = await existing_shares(http, owner, path)
    for share in shares:
        kind = SHARE_TYPES[share["type"]]
        if kind == 3 and not public_links:
            notes.append(f"{share['access']} link not created: public links are disabled on the target")
            continue
        if (kind, share["with"]) in have or (kind == 3 and any(t == 3 for t, _ in have)):
            continue
        form = {"path": path, "shareType": str(kind), "permissions": str(share["permissions"])}
        if kind != 3:
            form["shareWith"] = share["with"]
        answer = await http.request(owner, "POST", SHARES, refusal_fails=False, params={"format": "json"}, data=form, headers=OCS)
        status, message, _ = ocs_envelope(answer.content)
        if answer.status != 200 or status not in (100, 200):
            who = share["with"] or "a public link"
            notes.append(f"{share['access']} share with {who} not created: {message or answer.reason_phrase}")
    return tuple(notes)
