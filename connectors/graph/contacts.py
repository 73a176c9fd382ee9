"""Contacts: the default contacts folder and every folder beneath it, per-folder contact delta, and
each contact's JSON with its photo.

A fetched contact's metadata is `{"contact": <Graph contact JSON>, "photo": <bytes or None>}`. The
payload is the canonical JSON (sorted keys, compact, UTF-8) of
`{"contact": <the same JSON>, "photo_sha256": <hex sha256 of the photo, or null>}`: deterministic,
small, and it changes when either the contact or its photo does; the image itself stays in metadata.

Graph lists only the folders inside the default folder, never the default folder itself; its id is
their parentFolderId, or, when it has no subfolders, any contact's. A mailbox with neither has no
contacts to move, and yields no container.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

from connectors.graph.reader import canonical
from connectors.graph.session import GraphApiError, GraphSession, item_failure
from migrator.model import Change, Container, Item, ItemRef, Payload, User

CONTACT_FIELDS = "id,changeKey,displayName,parentFolderId"
FOLDER_FIELDS = "id,displayName,parentFolderId"
DEFAULT_NAME = "Contacts"  # only if the default folder cannot be read by its id
PAGE = 100



def payload_of(contact: dict[str, Any], photo: bytes | None) -> bytes:
    digest = hashlib.sha256(photo).hexdigest() if photo is not None else None
    return canonical({"contact": contact, "photo_sha256": digest})


class ContactsReader:
    workload = "contacts"

    def __init__(self, session: GraphSession) -> None:
        self.session = session

    async def containers(self, user: User) -> AsyncIterator[Container]:
        folders = f"users/{user.source_id}/contactFolders"
        params = {"$select": FOLDER_FIELDS, "$top": str(PAGE)}
        top = [folder async for folder in self.session.items(folders, params)]
        default_id = top[0]["parentFolderId"] if top else await self._default_from_contacts(user)
        if default_id is None:
            return
        name = await self._folder_name(f"{folders}/{default_id}")
        yield Container(default_id, name, "contacts", (name,), "default")
        pending = [(folder, (name,)) for folder in top]
        while pending:  # contact folders carry no child count, so each one is asked for children
            folder, parent_path = pending.pop(0)
            path = (*parent_path, folder["displayName"])
            yield Container(folder["id"], folder["displayName"], "contacts", path, "")
            async for child in self.session.items(f"{folders}/{folder['id']}/childFolders", params):
                pending.append((child, path))

    async def _default_from_contacts(self, user: User) -> str | None:
        page = await self.session.get_json(f"users/{user.source_id}/contacts", {"$top": "1", "$select": "parentFolderId"})
        found = page.get("value") or [{}]
        return found[0].get("parentFolderId")

    async def _folder_name(self, url: str) -> str:
        """The default folder's name is in the mailbox language ("Contactpersonen"), so it is asked."""
        try:
            return (await self.session.get_json(url, {"$select": "displayName"})).get("displayName") or DEFAULT_NAME
        except GraphApiError as exc:
            if exc.status == 404:
                return DEFAULT_NAME
            raise

    def changes(self, user: User, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        url = cursor or f"users/{user.source_id}/contactFolders/{container.source_id}/contacts/delta?$select={CONTACT_FIELDS}"
        return self.session.delta(url, "contact", "displayName", f"contact folder {container.name}", PAGE)

    async def fetch(self, user: User, container: Container, ref: ItemRef) -> Item:
        base = f"users/{user.source_id}/contacts/{ref.source_id}"
        try:
            contact = await self.session.get_json(base)
            photo = await self._photo(base)
        except GraphApiError as exc:
            raise item_failure(exc) from None
        contact.pop("@odata.context", None)  # describes the response (server URL included), not the contact
        return Item(ref, Payload.from_bytes(payload_of(contact, photo)), {"contact": contact, "photo": photo})

    async def _photo(self, base: str) -> bytes | None:
        """Photos are at most a few hundred kilobytes, so they are read whole; 404 means none."""
        try:
            async with self.session.stream(f"{base}/photo/$value") as response:
                return await response.aread()
        except GraphApiError as exc:
            if exc.status == 404:
                return None
            raise
