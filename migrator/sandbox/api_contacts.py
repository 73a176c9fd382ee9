"""Contacts: contact folders, contacts with paging and per-folder delta, and contact photos."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migrator.sandbox.auth import require
from migrator.sandbox.gen_contacts import build_contacts, make_contact
from migrator.sandbox.http import GraphError, Request, Response
from migrator.sandbox.odata import collection, entity, removed, select, user_context
from migrator.sandbox.store import Collection

if TYPE_CHECKING:
    from migrator.sandbox.app import GraphApp
    from migrator.sandbox.tenant import Tenant

PAGE = 10


@dataclass
class AddressBook:
    folders: Collection
    contacts: dict[str, Collection]  # folder id -> contacts
    photos: dict[str, bytes]
    default_folder: str

    def folder(self, folder_id: str) -> dict[str, Any]:
        found = self.folders.get(folder_id)
        if found is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return found

    def contact(self, contact_id: str) -> tuple[str, dict[str, Any]]:
        for folder_id, store in self.contacts.items():
            found = store.get(contact_id)
            if found is not None:
                return folder_id, found
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    def add(self, rng, folder_id: str | None = None) -> dict[str, Any]:
        folder_id = folder_id or self.default_folder
        contact = make_contact(rng, folder_id)
        self.contacts[folder_id].upsert(contact)
        return contact

    def update(self, contact_id: str, **changes: Any) -> dict[str, Any]:
        folder_id, contact = self.contact(contact_id)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        change_key = secrets.token_urlsafe(12)
        updated = {**contact, **changes, "changeKey": change_key, "@odata.etag": f'W/"{change_key}"', "lastModifiedDateTime": now}
        self.contacts[folder_id].upsert(updated)
        return updated

    def delete(self, contact_id: str) -> None:
        folder_id, _ = self.contact(contact_id)
        self.contacts[folder_id].remove(contact_id)
        self.photos.pop(contact_id, None)


def address_book(tenant: Tenant, user_key: str) -> AddressBook:
    user = tenant.user(user_key)

    def build() -> AddressBook:
        data = build_contacts(tenant.rng("contacts", user["id"]), user, tenant.colleagues(user))
        folders = Collection(tenant.clock)
        folders.load([f.folder for f in data])
        book = AddressBook(folders, {}, {}, data[0].folder["id"])
        for folder in data:
            store = Collection(tenant.clock)
            store.load(folder.contacts)
            book.contacts[folder.folder["id"]] = store
            book.photos.update(folder.photos)
        return book

    return tenant.lazy(("contacts", user["id"]), build)


def register(app: GraphApp, tenant: Tenant) -> None:
    def guarded(request: Request) -> AddressBook:
        require(request.principal, "Contacts.Read", "Contacts.ReadWrite")
        return address_book(tenant, request.params["user"])

    def list_folders(request: Request) -> Response:
        book = guarded(request)
        # Without a folder, Graph lists the folders inside the default Contacts folder.
        parent = book.folder(request.params["folder"])["id"] if "folder" in request.params else book.default_folder
        folders = [f for f in book.folders.current() if f.get("parentFolderId") == parent]
        return collection(request, folders, user_context(request, "contactFolders"), PAGE, shape=lambda f: select(f, request))

    def get_folder(request: Request) -> Response:
        folder = guarded(request).folder(request.params["folder"])
        return entity(request, user_context(request, "contactFolders/$entity"), select(folder, request))

    def list_contacts(request: Request) -> Response:
        book = guarded(request)
        if "folder" in request.params:
            contacts = book.contacts[book.folder(request.params["folder"])["id"]].current()
        else:
            contacts = book.contacts[book.default_folder].current()
        return collection(request, contacts, user_context(request, "contacts"), PAGE, shape=lambda c: select(c, request))

    def contact_delta(request: Request) -> Response:
        book = guarded(request)
        folder_id = book.folder(request.params["folder"])["id"]
        return tenant.delta.respond(
            request, f"contacts/{request.params['user']}/{folder_id}", book.contacts[folder_id], user_context(request, "contacts/delta"), PAGE,
            lambda c: select(c, request), removed("contact"),
        )

    def get_contact(request: Request) -> Response:
        _, contact = guarded(request).contact(request.params["contact"])
        return entity(request, user_context(request, "contacts/$entity"), select(contact, request))

    def photo_value(request: Request) -> Response:
        book = guarded(request)
        book.contact(request.params["contact"])
        photo = book.photos.get(request.params["contact"])
        if photo is None:
            raise GraphError(404, "ImageNotFound", "The photo wasn't found.")
        kind = "image/png" if photo.startswith(b"\x89PNG") else "image/jpeg"
        return Response(200, photo, {"Content-Type": kind})

    app.route("GET", "/users/{user}/contactFolders", list_folders)
    app.route("GET", "/users/{user}/contactFolders/{folder}", get_folder)
    app.route("GET", "/users/{user}/contactFolders/{folder}/childFolders", list_folders)
    app.route("GET", "/users/{user}/contactFolders/{folder}/contacts", list_contacts)
    app.route("GET", "/users/{user}/contactFolders/{folder}/contacts/delta", contact_delta)
    app.route("GET", "/users/{user}/contactFolders/{folder}/contacts/{contact}", get_contact)
    app.route("GET", "/users/{user}/contacts", list_contacts)
    app.route("GET", "/users/{user}/contacts/{contact}", get_contact)
    app.route("GET", "/users/{user}/contacts/{contact}/photo/$value", photo_value)
