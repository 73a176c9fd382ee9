"""Mail: folders (well-known names resolve whatever the display language), messages per folder with
paging and delta, and the RFC 5322 source at $value, streamed."""

from __future__ import annotations

import datetime as dt
import math
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from migrator.sandbox.auth import require
from migrator.sandbox.content import Blob
from migrator.sandbox.gen_mail import LARGE_MESSAGE_BYTES, build_mailbox, make_message
from migrator.sandbox.http import GraphError, Request, Response
from migrator.sandbox.odata import collection, entity, removed, select, user_context
from migrator.sandbox.store import Collection

if TYPE_CHECKING:
    from migrator.sandbox.app import GraphApp
    from migrator.sandbox.tenant import Tenant

FOLDER_PAGE = 10
MESSAGE_PAGE = 10


@dataclass
class Mailbox:
    user: dict[str, Any]
    folders: Collection
    well_known: dict[str, str]
    messages: dict[str, Collection]  # folder id -> messages
    mime: dict[str, Blob] = field(default_factory=dict)
    located: dict[str, str] = field(default_factory=dict)  # message id -> folder id

    @property
    def root_id(self) -> str:
        return self.well_known["msgfolderroot"]

    def folder(self, key: str) -> dict[str, Any]:
        found = self.folders.get(self.well_known.get(key.lower(), key))
        if found is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return found

    def message(self, message_id: str) -> dict[str, Any]:
        folder_id = self.located.get(message_id)
        found = self.messages[folder_id].get(message_id) if folder_id else None
        if found is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return found

    # -- mutations, for tests and demos of delta passes ------------------------------------------

    def add(self, folder_key: str, rng, colleagues: list[dict]) -> dict[str, Any]:
        folder = self.folder(folder_key)
        data = make_message(rng, self.user, colleagues, folder["id"], when=dt.datetime.now(dt.UTC))
        self._store(folder["id"], data.message, data.mime)
        self._recount(folder["id"])
        return data.message

    def update(self, message_id: str, **changes: Any) -> dict[str, Any]:
        change_key = secrets.token_urlsafe(12)
        message = {**self.message(message_id), **changes, "changeKey": change_key, "@odata.etag": f'W/"{change_key}"'}
        message["lastModifiedDateTime"] = _now()
        self.messages[self.located[message_id]].upsert(message)
        self._recount(self.located[message_id])
        return message

    def move(self, message_id: str, destination_key: str) -> dict[str, Any]:
        """Exchange gives a moved message a new id: the source folder's delta reports a removal."""
        source_folder = self.located[message_id]
        destination = self.folder(destination_key)["id"]
        message = self.messages[source_folder].remove(message_id)
        mime = self.mime.pop(message_id)
        del self.located[message_id]
        moved = {**message, "id": "AAMkA" + secrets.token_urlsafe(30), "parentFolderId": destination, "lastModifiedDateTime": _now()}
        self._store(destination, moved, mime)
        self._recount(source_folder)
        self._recount(destination)
        return moved

    def delete(self, message_id: str) -> None:
        folder_id = self.located.pop(message_id)
        self.messages[folder_id].remove(message_id)
        self.mime.pop(message_id, None)
        self._recount(folder_id)

    def _store(self, folder_id: str, message: dict, mime: Blob) -> None:
        self.messages[folder_id].upsert(message)
        self.mime[message["id"]] = mime
        self.located[message["id"]] = folder_id

    def _recount(self, folder_id: str) -> None:
        folder = dict(self.folders.get(folder_id))
        current = self.messages[folder_id].current()
        folder["totalItemCount"] = len(current)
        folder["unreadItemCount"] = sum(1 for m in current if not m.get("isRead"))
        self.folders.upsert(folder)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mailbox(tenant: Tenant, user_key: str) -> Mailbox:
    user = tenant.user(user_key)

    def build() -> Mailbox:
        first = user["id"] == tenant.users[0]["id"]
        archive = math.ceil(tenant.archive_bytes / LARGE_MESSAGE_BYTES) if first else 0
        data = build_mailbox(tenant.rng("mail", user["id"]), user, tenant.colleagues(user), large_message=tenant.large_items and first,
                             archive_messages=archive)
        folders = Collection(tenant.clock)
        folders.load([f.folder for f in data])
        box = Mailbox(user, folders, {f.well_known_name: f.folder["id"] for f in data if f.well_known_name}, {})
        for folder in data:
            store = Collection(tenant.clock)
            store.load([m.message for m in folder.messages])
            box.messages[folder.folder["id"]] = store
            for m in folder.messages:
                box.mime[m.message["id"]] = m.mime
                box.located[m.message["id"]] = folder.folder["id"]
        return box

    return tenant.lazy(("mail", user["id"]), build)


def _message_shape(request: Request):
    def shape(message: dict) -> dict:
        body = select(message, request)
        return {"@odata.etag": f'W/"{message["changeKey"]}"', **body} if message.get("changeKey") else body

    return shape


def register(app: GraphApp, tenant: Tenant) -> None:
    def guarded(request: Request) -> Mailbox:
        require(request.principal, "Mail.Read", "Mail.ReadBasic.All", "Mail.ReadWrite")
        return mailbox(tenant, request.params["user"])

    def list_folders(request: Request) -> Response:
        box = guarded(request)
        parent = box.folder(request.params.get("folder", "msgfolderroot"))["id"]
        children = [f for f in box.folders.current() if f.get("parentFolderId") == parent and f["id"] != box.root_id]
        if request.query.get("includeHiddenFolders", "").lower() != "true":
            children = [f for f in children if not f.get("isHidden")]
        return collection(request, children, user_context(request, "mailFolders"), FOLDER_PAGE, shape=lambda f: select(f, request))

    def get_folder(request: Request) -> Response:
        folder = guarded(request).folder(request.params["folder"])
        return entity(request, user_context(request, "mailFolders/$entity"), select(folder, request))

    def folder_delta(request: Request) -> Response:
        box = guarded(request)
        return tenant.delta.respond(request, f"folders/{box.user['id']}", box.folders, user_context(request, "mailFolders/delta"), FOLDER_PAGE,
                                    lambda f: select(f, request), removed("mailFolder"))

    def list_messages(request: Request) -> Response:
        box = guarded(request)
        if "folder" in request.params:
            messages = box.messages[box.folder(request.params["folder"])["id"]].current()
        else:
            messages = [m for store in box.messages.values() for m in store.current()]
        messages = sorted(messages, key=lambda m: m.get("receivedDateTime") or "", reverse=True)
        return collection(request, messages, user_context(request, "messages"), MESSAGE_PAGE, shape=_message_shape(request))

    def message_delta(request: Request) -> Response:
        box = guarded(request)
        folder_id = box.folder(request.params["folder"])["id"]
        return tenant.delta.respond(request, f"messages/{box.user['id']}/{folder_id}", box.messages[folder_id],
                                    user_context(request, f"mailFolders('{folder_id}')/messages/delta"), MESSAGE_PAGE,
                                    _message_shape(request), removed("message"))

    def get_message(request: Request) -> Response:
        message = guarded(request).message(request.params["message"])
        return entity(request, user_context(request, "messages/$entity"), _message_shape(request)(message))

    def message_value(request: Request) -> Response:
        box = guarded(request)
        box.message(request.params["message"])
        blob = box.mime[request.params["message"]]
        return Response(200, blob.chunks(), {"Content-Type": "text/plain"}, length=blob.size)

    for prefix in ("/users/{user}", ):
        app.route("GET", prefix + "/mailFolders", list_folders)
        app.route("GET", prefix + "/mailFolders/delta", folder_delta)
        app.route("GET", prefix + "/mailFolders/{folder}", get_folder)
        app.route("GET", prefix + "/mailFolders/{folder}/childFolders", list_folders)
        app.route("GET", prefix + "/mailFolders/{folder}/messages", list_messages)
        app.route("GET", prefix + "/mailFolders/{folder}/messages/delta", message_delta)
        app.route("GET", prefix + "/mailFolders/{folder}/messages/{message}", get_message)
        app.route("GET", prefix + "/mailFolders/{folder}/messages/{message}/$value", message_value)
        app.route("GET", prefix + "/messages", list_messages)
        app.route("GET", prefix + "/messages/{message}", get_message)
        app.route("GET", prefix + "/messages/{message}/$value", message_value)
