"""The contacts reader against the sandbox: the folder tree and full listings equal the tenant's own
address book, a stored cursor yields exactly what changed (and expires with a 410), and fetched
contacts carry their photos in deterministic payloads."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

import connectors.graph.contacts as contacts_module
from connectors.graph.contacts import ContactsReader
from migrator.errors import CursorExpired, ItemError
from migrator.model import Cursor, ItemRef, Removed, User
from migrator.sandbox.api_contacts import address_book
from migrator.sandbox.store import Collection
from tests.graph.conftest import collect, run, session_for


def user_of(sandbox, index: int = 0) -> User:
    data = sandbox.tenant.users[index]
    return User(data["userPrincipalName"], data["displayName"], data["department"], data["id"])


def with_session(sandbox, work):
    async def go():
        session = session_for(sandbox)
        try:
            return await work(ContactsReader(session))
        finally:
            await session.close()

    return run(go())


async def containers(reader: ContactsReader, user: User) -> list:
    return await collect(reader.containers(user))


async def listing(reader: ContactsReader, user: User) -> dict:
    """Folder id -> (container, the changes of a pass without a cursor)."""
    return {c.source_id: (c, await collect(reader.changes(user, c, None))) async for c in reader.containers(user)}


def add_folder(book, parent_id: str, folder_id: str, name: str) -> None:
    """A folder in the sandbox's own state: its generator makes only one level below the default."""
    book.folders.upsert({"id": folder_id, "displayName": name, "parentFolderId": parent_id})
    book.contacts[folder_id] = Collection(book.folders.clock)


async def fetched(reader: ContactsReader, user: User, wanted: set[str] | None = None):
    """Every contact of every folder fetched, or only those whose ids are `wanted`."""
    async for container in reader.containers(user):
        async for change in reader.changes(user, container, None):
            if isinstance(change, ItemRef) and (wanted is None or change.source_id in wanted):
                yield await reader.fetch(user, container, change)


def refs(changes: list) -> dict[str, str]:
    return {c.source_id: c.change_key for c in changes if isinstance(c, ItemRef)}


@pytest.mark.parametrize("index", [0, 2])
def test_full_listing_equals_the_address_book(sandbox, monkeypatch, index):
    monkeypatch.setattr(contacts_module, "PAGE", 6)  # several delta pages per folder
    user = user_of(sandbox, index)
    book = address_book(sandbox.tenant, user.source_id)
    found = with_session(sandbox, lambda reader: listing(reader, user))

    assert set(found) == set(book.contacts) and len(found) == 2
    default, _ = found[book.default_folder]
    assert (default.role, default.workload, default.path) == ("default", "contacts", ("Contactpersonen",))
    for folder_id, (container, changes) in found.items():
        folder = book.folders.get(folder_id)
        assert container.name == folder["displayName"]
        if folder_id != book.default_folder:
            assert (container.role, container.path) == ("", ("Contactpersonen", folder["displayName"]))
        truth = {c["id"]: c["changeKey"] for c in book.contacts[folder_id].current()}
        assert refs(changes) == truth and len(changes) == len(truth) + 1
        assert isinstance(changes[-1], Cursor) and not any(isinstance(c, Removed) for c in changes)
        assert {c.kind for c in changes[:-1]} == {"contact"}


def test_nested_folders_are_found_with_their_paths(sandbox):
    user = user_of(sandbox)
    book = address_book(sandbox.tenant, user.source_id)
    sub = next(f for f in book.folders.current() if f["parentFolderId"] == book.default_folder)
    add_folder(book, sub["id"], "folder-deeper", "Oost")
    add_folder(book, "folder-deeper", "folder-deepest", "Zwolle")
    book.add(random.Random(4), "folder-deepest")

    found = {c.source_id: c for c in with_session(sandbox, lambda reader: containers(reader, user))}
    assert found["folder-deeper"].path == ("Contactpersonen", sub["displayName"], "Oost")
    assert found["folder-deepest"].path == ("Contactpersonen", sub["displayName"], "Oost", "Zwolle")
    assert len(found) == 4


def test_default_folder_is_found_without_subfolders(sandbox):
    user = user_of(sandbox)
    book = address_book(sandbox.tenant, user.source_id)
    for folder in book.folders.current():
        if folder["parentFolderId"] == book.default_folder:
            book.folders.remove(folder["id"])

    found = with_session(sandbox, lambda reader: containers(reader, user))
    assert [(c.source_id, c.role, c.path) for c in found] == [(book.default_folder, "default", ("Contactpersonen",))]


def test_stored_cursor_yields_exactly_the_changes_then_expires(sandbox):
    user = user_of(sandbox)
    book = address_book(sandbox.tenant, user.source_id)
    first = with_session(sandbox, lambda reader: listing(reader, user))
    default, changes = first[book.default_folder]
    sub_id = next(f for f in first if f != book.default_folder)
    sub, sub_changes = first[sub_id]

    existing = list(refs(changes))
    added = book.add(random.Random(8))
    changed = book.update(existing[0], jobTitle="Inkoper")
    book.delete(existing[1])

    async def second(reader):
        return (await collect(reader.changes(user, default, changes[-1].value)),
                await collect(reader.changes(user, sub, sub_changes[-1].value)))

    again, untouched = with_session(sandbox, second)
    assert refs(again) == {added["id"]: added["changeKey"], changed["id"]: changed["changeKey"]}
    assert [c for c in again if isinstance(c, Removed)] == [Removed(existing[1])]
    assert len(again) == 4 and isinstance(again[-1], Cursor)
    assert len(untouched) == 1 and isinstance(untouched[0], Cursor)  # nothing changed there

    sandbox.tenant.delta.expire_all()

    async def expired_then_full(reader):
        with pytest.raises(CursorExpired):
            await collect(reader.changes(user, default, again[-1].value))
        return await collect(reader.changes(user, default, None))

    full = with_session(sandbox, expired_then_full)
    assert refs(full) == {c["id"]: c["changeKey"] for c in book.contacts[book.default_folder].current()}
    assert added["id"] in refs(full) and existing[1] not in refs(full)


def test_fetch_brings_the_contact_and_its_photo(sandbox):
    user = user_of(sandbox)
    book = address_book(sandbox.tenant, user.source_id)

    async def fetch_all(reader):
        return [(item, await item.payload.read_all()) async for item in fetched(reader, user)]

    items = with_session(sandbox, fetch_all)
    assert len(items) == sum(len(store) for store in book.contacts.values())
    photos = 0
    for item, data in items:
        _, contact = book.contact(item.ref.source_id)
        assert item.metadata["contact"] == contact  # the sandbox answers with every property
        assert item.metadata["photo"] == book.photos.get(item.ref.source_id)  # the bytes, unchanged
        photo = item.metadata["photo"]
        digest = hashlib.sha256(photo).hexdigest() if photo is not None else None
        assert json.loads(data) == {"contact": contact, "photo_sha256": digest}
        assert item.payload.size == len(data)
        photos += photo is not None
    assert 3 <= photos < len(items)  # some with a photo, some without


def test_payload_is_deterministic(sandbox):
    user = user_of(sandbox)
    book = address_book(sandbox.tenant, user.source_id)
    contacts = book.contacts[book.default_folder].current()
    wanted = {next(c["id"] for c in contacts if c["id"] in book.photos), next(c["id"] for c in contacts if c["id"] not in book.photos)}

    async def twice(reader):
        return [[await item.payload.read_all() async for item in fetched(reader, user, wanted)] for _ in range(2)]

    first, second = with_session(sandbox, twice)
    assert len(first) == 2 and first == second


def test_fetching_a_deleted_contact_fails_that_item_alone(sandbox):
    user = user_of(sandbox)
    book = address_book(sandbox.tenant, user.source_id)

    async def work(reader):
        default = await anext(reader.containers(user))
        listed = [c for c in await collect(reader.changes(user, default, None)) if isinstance(c, ItemRef)]
        book.delete(listed[0].source_id)
        with pytest.raises(ItemError, match="404"):
            await reader.fetch(user, default, listed[0])
        return listed[1], await reader.fetch(user, default, listed[1])

    other, item = with_session(sandbox, work)
    assert item.metadata["contact"]["id"] == other.source_id
