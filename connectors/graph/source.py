"""The Graph source: users by department or UPN, and each workload's reader behind one session.
The session (and its connections) lives for one run; tokens and their cache outlive it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from urllib.parse import quote

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from connectors.graph.auth import Credentials, TokenProvider
from connectors.graph.calendar import CalendarReader
from connectors.graph.chat import ChatReader
from connectors.graph.contacts import ContactsReader
from connectors.graph.files import FilesReader
from connectors.graph.mail import MailReader
from connectors.graph.reader import WorkloadReader
from connectors.graph.session import GraphApiError, GraphSession, PermissionMissing
from connectors.graph.transport import Politeness
from migrator.model import Change, Container, Item, ItemRef, User

USER_FIELDS = "id,userPrincipalName,displayName,department,mail"
PERMISSIONS = {
    "users": "User.Read.All", "mail": "Mail.Read", "calendar": "Calendars.Read", "contacts": "Contacts.Read",
    "files": "Files.Read.All", "chat": "Chat.Read.All and ChannelMessage.Read.All",
}


def _user(entry: dict) -> User:
    return User(upn=entry["userPrincipalName"], display_name=entry.get("displayName") or "", department=entry.get("department") or "", source_id=entry["id"])


def permission_error(exc: GraphApiError, what: str) -> PermissionMissing:
    return PermissionMissing(
        f"Microsoft Graph refused to read {what}: {exc.code} (403)",
        hint=f"grant the app the application permission {PERMISSIONS.get(what, what)} with admin consent",
    )


class GraphSource:
    def __init__(self, credentials: Credentials, graph_url: str, politeness: Politeness | None = None) -> None:
        self.credentials, self.graph_url, self.politeness = credentials, graph_url, politeness
        self._tokens: TokenProvider | None = None
        self.session: GraphSession | None = None
        self._readers: dict[str, WorkloadReader] = {}

    async def open(self) -> None:
        if self._tokens is None:  # msal discovers the authority over the network: off the event loop
            self._tokens = await asyncio.to_thread(TokenProvider, self.credentials)
        await self._tokens.atoken()  # a wrong secret or tenant is reported now, before anything is planned
        self.session = GraphSession(self._tokens, self.graph_url, self.credentials.ca_bundle, self.politeness,
                                    skip_tls_verify=self.credentials.skip_tls_verify)
        self._readers = _readers(self.session)

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def users(self, department: str | None = None, upns: Iterable[str] | None = None) -> list[User]:
        assert self.session is not None, "open() first"
        try:
            if upns is not None:
                return await self._users_by_upn(list(upns))
            return await self._users_of(department)
        except GraphApiError as exc:
            if exc.status == 403:
                raise permission_error(exc, "users") from None
            raise

    async def _users_of(self, department: str | None) -> list[User]:
        """Through msgraph-sdk's typed models: the directory is small and its shape is stable."""
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=USER_FIELDS.split(","), top=999)
        if department:
            query.filter = f"department eq '{department.replace(chr(39), chr(39) * 2)}'"
        users = self.session.sdk.users
        page = await users.get(request_configuration=RequestConfiguration(query_parameters=query))
        found: list[User] = []
        while page is not None:
            found += [User(u.user_principal_name, u.display_name or "", u.department or "", u.id) for u in page.value or []]
            page = await users.with_url(page.odata_next_link).get() if page.odata_next_link else None
        return found

    async def _users_by_upn(self, upns: list[str]) -> list[User]:
        requests = [{"id": str(n), "method": "GET", "url": f"/users/{quote(upn)}?$select={USER_FIELDS}"} for n, upn in enumerate(upns)]
        answers = await self.session.batch(requests)
        found = []
        for n in range(len(upns)):
            answer = answers[str(n)]
            if answer["status"] == 200:
                found.append(_user(answer["body"]))
            elif answer["status"] == 403:
                raise permission_error(GraphApiError(403, answer["body"]["error"]["code"], ""), "users")
        return found

    def reader(self, workload: str) -> WorkloadReader:
        return self._readers[workload]

    async def containers(self, user: User, workload: str) -> AsyncIterator[Container]:
        if user.is_site and workload != "files":
            return
        try:
            async for container in self.reader(workload).containers(user):
                yield container
        except GraphApiError as exc:
            if exc.status == 403:
                raise permission_error(exc, workload) from None
            raise

    async def drive_used_bytes(self, user: User) -> int | None:
        """What the user's OneDrive holds, as its quota reports (for preflight's space check)."""
        try:
            drive = await self.session.get_json(f"users/{user.source_id}/drive", {"$select": "id,quota"})
        except GraphApiError as exc:
            if exc.status == 403:
                raise permission_error(exc, "files") from None
            raise
        return (drive.get("quota") or {}).get("used")

    def changes(self, user: User, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        return self.reader(container.workload).changes(user, container, cursor)

    async def fetch(self, user: User, container: Container, ref: ItemRef) -> Item:
        return await self.reader(container.workload).fetch(user, container, ref)


def _readers(session: GraphSession) -> dict[str, WorkloadReader]:
    readers = (MailReader(session), CalendarReader(session), ContactsReader(session), FilesReader(session), ChatReader(session))
    return {reader.workload: reader for reader in readers}
