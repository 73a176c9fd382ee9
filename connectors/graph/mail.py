"""Mail: the folder tree with well-known folders resolved to roles whatever the mailbox language,
per-folder message delta, and each message's MIME streamed from `$value`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from connectors.graph.session import GraphApiError, GraphSession, item_failure
from migrator.model import Change, Container, Item, ItemRef, Payload, User

ROLES = ("inbox", "sentitems", "drafts", "deleteditems", "junkemail", "archive", "outbox")
MESSAGE_FIELDS = (
    "id,changeKey,subject,internetMessageId,receivedDateTime,sentDateTime,isRead,isDraft,flag,categories,"
    "importance,parentFolderId,hasAttachments,from"
)
PAGE = 100


class MailReader:
    workload = "mail"

    def __init__(self, session: GraphSession) -> None:
        self.session = session

    async def _roles(self, user: User) -> dict[str, str]:
        """Folder id -> role. Asking by well-known name is what makes "Postvak IN" the inbox."""
        requests = [{"id": role, "method": "GET", "url": f"/users/{user.source_id}/mailFolders/{role}?$select=id"} for role in ROLES]
        answers = await self.session.batch(requests)
        return {answer["body"]["id"]: role for role, answer in answers.items() if answer["status"] == 200}

    async def containers(self, user: User) -> AsyncIterator[Container]:
        roles = await self._roles(user)
        pending: list[tuple[str, tuple[str, ...]]] = [(f"users/{user.source_id}/mailFolders", ())]
        while pending:
            url, parent_path = pending.pop(0)
            async for folder in self.session.items(url, {"$top": "100", "includeHiddenFolders": "false"}):
                path = (*parent_path, folder["displayName"])
                yield Container(folder["id"], folder["displayName"], "mail", path, roles.get(folder["id"], ""))
                if folder.get("childFolderCount"):
                    pending.append((f"users/{user.source_id}/mailFolders/{folder['id']}/childFolders", path))

    def changes(self, user: User, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        url = cursor or f"users/{user.source_id}/mailFolders/{container.source_id}/messages/delta?$select={MESSAGE_FIELDS}"
        return self.session.delta(url, "message", "subject", f"folder {container.name}", PAGE)

    async def fetch(self, user: User, container: Container, ref: ItemRef) -> Item:
        base = f"users/{user.source_id}/messages/{ref.source_id}"
        try:
            message = await self.session.get_json(base, {"$select": MESSAGE_FIELDS})
        except GraphApiError as exc:
            raise item_failure(exc) from None
        session = self.session

        async def mime() -> AsyncIterator[bytes]:
            async with session.stream(f"{base}/$value") as response:
                async for chunk in response.aiter_bytes(1 << 16):
                    yield chunk

        return Item(ref, Payload(mime), {"message": message, "folder_role": container.role})
