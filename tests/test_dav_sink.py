"""The CalDAV/CardDAV sink against a real Radicale. What the sink stored is checked with plain httpx
requests and vobject, which share no code with it."""

from __future__ import annotations

import asyncio
import hashlib
import re

import httpx
import pytest
import vobject

from connectors.dav import DavSink, collection_slug
from migrator.contracts import Sink
from migrator.errors import ItemError
from migrator.model import DestRef, Payload, Target
from tests.fixtures import radicale as radicale_fixture
from tests.fixtures.radicale import RadicaleServer, running_radicale
from tests.sink_contract import OWNER, SinkContract

radicale = radicale_fixture.radicale  # the module-scoped server, as a fixture of this module


def run(coro):
    return asyncio.run(coro)


def raw(server: RadicaleServer, user: str = OWNER) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(user, server.users[user]))


def emptied_home(server: RadicaleServer, user: str = OWNER) -> str:
    """The user's home with every collection deleted, so each test starts from nothing.

    (owner_only rights allow collections only directly below the principal, so tests cannot
    each get a home of their own.)
    """
    home = f"/{user}/"
    with raw(server, user) as client:
        listing = client.request("PROPFIND", home, headers={"Depth": "1"})
        for href in re.findall(r"<response><href>([^<]+)</href>", listing.text):
            if href.rstrip("/") != home.rstrip("/"):
                assert client.delete(href).status_code in (200, 204)
    return home


def make_sink(server: RadicaleServer, kind: str, home: str | None = None) -> DavSink:
    return DavSink(
        server.url,
        kind,
        login=lambda owner: (owner, server.users[owner]),
        home=(lambda owner: home) if home else None,
    )


def event(uid: str, summary: str = "Kwartaaloverleg", description: str = "") -> bytes:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Example//Test//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20260110T090000Z",  # before DTSTART on purpose: Radicale re-orders it
        "DTSTART:20260112T090000Z",
        "DTEND:20260112T100000Z",
        f"SUMMARY:{summary}",
        *([f"DESCRIPTION:{description}"] if description else []),
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def card(uid: str, name: str = "Jansen, Els") -> bytes:
    family, given = name.split(", ")
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{given} {family}", f"N:{family};{given};;;", "EMAIL;TYPE=work:els@example.test", "END:VCARD"]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def dav_target(key: str, data: bytes, kind: str = "caldav") -> Target:
    content_type = "text/calendar; charset=utf-8" if kind == "caldav" else "text/vcard; charset=utf-8"
    return Target(key, Payload.from_bytes(data, chunk_size=11), {"uid": key.rsplit(".", 1)[0], "content_type": content_type})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- the contract


class _DavContract(SinkContract):
    kind = "caldav"

    @pytest.fixture
    def sink(self, radicale):
        emptied_home(radicale)
        sink = make_sink(radicale, self.kind)
        assert isinstance(sink, Sink)
        return sink

    def remove(self, sink, ref: DestRef) -> None:
        assert run(sink.delete(OWNER, ref))


class TestCalDavSink(_DavContract):
    kind = "caldav"


class TestCardDavSink(_DavContract):
    kind = "carddav"


# ---------------------------------------------------------------- real objects


def test_a_real_event_is_created_found_replaced_and_not_created_twice(radicale):
    sink = make_sink(radicale, "caldav", emptied_home(radicale))
    path = ("Agenda",)
    collection = run(sink.ensure_container(OWNER, path))
    first = event("evt-1")
    stored = run(sink.put(OWNER, path, dav_target("evt-1.ics", first)))
    assert (stored.size, stored.content_hash) == (len(first), sha(first))
    assert stored.dest_id == f"{collection}evt-1.ics" and stored.etag

    # Radicale keeps vobject's rendering, not the bytes; the sink still describes what was sent.
    with raw(radicale) as client:
        body = client.get(stored.dest_id).content
    assert body != first
    parsed = vobject.readOne(body.decode())
    assert parsed.vevent.uid.value == "evt-1" and parsed.vevent.summary.value == "Kwartaaloverleg"
    assert run(sink.find(OWNER, path, dav_target("evt-1.ics", first))) == stored

    second = event("evt-1", summary="Kwartaaloverleg (verzet)", description="Nieuwe zaal")
    replaced = run(sink.put(OWNER, path, dav_target("evt-1.ics", second), replace=stored))
    assert replaced.etag != stored.etag
    assert run(sink.stat(OWNER, replaced)) == replaced
    with raw(radicale) as client:
        assert vobject.readOne(client.get(stored.dest_id).text).vevent.summary.value == "Kwartaaloverleg (verzet)"

    with pytest.raises(ItemError, match="changed on the server meanwhile"):
        run(sink.put(OWNER, path, dav_target("evt-1.ics", first), replace=stored))  # the old etag
    with pytest.raises(ItemError, match="already exists"):
        run(sink.put(OWNER, path, dav_target("evt-1.ics", first)))
    assert run(sink.stat(OWNER, replaced)).content_hash == sha(second)  # neither refusal wrote anything
    assert run(sink.list_keys(OWNER, path)) == {"evt-1.ics"}


def test_an_event_edited_on_the_server_no_longer_matches_what_was_sent(radicale):
    sink = make_sink(radicale, "caldav", emptied_home(radicale))
    run(sink.ensure_container(OWNER, ("Agenda",)))
    data = event("evt-2")
    stored = run(sink.put(OWNER, ("Agenda",), dav_target("evt-2.ics", data)))
    with raw(radicale) as client:
        body = client.get(stored.dest_id).text.replace("Kwartaaloverleg", "Iets anders")
        assert client.put(stored.dest_id, content=body.encode(), headers={"If-Match": stored.etag}).status_code in (201, 204)
    again = run(sink.stat(OWNER, stored))
    assert again is not None and again.content_hash != sha(data) and again.etag != stored.etag


def test_a_real_vcard_is_created_found_replaced_and_not_created_twice(radicale):
    sink = make_sink(radicale, "carddav", emptied_home(radicale))
    path = ("Contactpersonen",)
    collection = run(sink.ensure_container(OWNER, path))
    with raw(radicale) as client:
        answer = client.request("PROPFIND", collection, headers={"Depth": "0"})
    assert "addressbook" in answer.text and "<displayname>Contactpersonen</displayname>" in answer.text

    first = card("c-1")
    stored = run(sink.put(OWNER, path, dav_target("c-1.vcf", first, "carddav")))
    assert run(sink.find(OWNER, path, dav_target("c-1.vcf", first, "carddav"))) == stored
    assert (stored.size, stored.content_hash) == (len(first), sha(first))

    second = card("c-1", "Jansen-de Vries, Els")
    replaced = run(sink.put(OWNER, path, dav_target("c-1.vcf", second, "carddav"), replace=stored))
    assert run(sink.stat(OWNER, replaced)) == replaced
    with raw(radicale) as client:
        assert vobject.readOne(client.get(replaced.dest_id).text).fn.value == "Els Jansen-de Vries"
    with pytest.raises(ItemError, match="changed on the server meanwhile"):
        run(sink.put(OWNER, path, dav_target("c-1.vcf", first, "carddav"), replace=stored))
    with pytest.raises(ItemError, match="already exists"):
        run(sink.put(OWNER, path, dav_target("c-1.vcf", first, "carddav")))
    assert run(sink.list_keys(OWNER, path)) == {"c-1.vcf"}


def test_calendar_names_give_distinct_collections_and_listing_names_exactly_what_is_stored(radicale):
    sink = make_sink(radicale, "caldav", emptied_home(radicale))
    names = [("Agenda",), ("Agénda",), ("Agenda 2",), ("Календарь",), ("日历",), ("Projects", "2026")]
    collections = [run(sink.ensure_container(OWNER, name)) for name in names]
    assert len(set(collections)) == len(names)
    assert collections[0].endswith("/Agenda/")
    assert all(c.isascii() for c in collections)
    assert [run(sink.ensure_container(OWNER, name)) for name in names] == collections  # idempotent
    for n, name in enumerate(names):
        run(sink.put(OWNER, name, dav_target(f"e{n}.ics", event(f"e{n}"))))
    for n, name in enumerate(names):
        assert run(sink.list_keys(OWNER, name)) == {f"e{n}.ics"}
    with raw(radicale) as client:
        answer = client.request("PROPFIND", collections[3], headers={"Depth": "0"})
    assert "Календарь" in answer.text  # the display name keeps the original
    assert collection_slug(("Agénda",)) == collection_slug(("Agénda",)) != collection_slug(("Agenda",))


def test_an_address_book_name_is_not_taken_by_a_calendar(radicale):
    home = emptied_home(radicale)
    run(make_sink(radicale, "caldav", home).ensure_container(OWNER, ("Gedeeld",)))
    with pytest.raises(ItemError, match="exists but is not an address book"):
        run(make_sink(radicale, "carddav", home).ensure_container(OWNER, ("Gedeeld",)))


def test_a_put_into_a_missing_collection_creates_it(radicale):
    sink = make_sink(radicale, "caldav", emptied_home(radicale))
    stored = run(sink.put(OWNER, ("Nooit aangemaakt",), dav_target("x.ics", event("x"))))
    assert run(sink.list_keys(OWNER, ("Nooit aangemaakt",))) == {"x.ics"}
    assert run(sink.stat(OWNER, stored)).content_hash == sha(event("x"))


def test_a_wrong_password_is_an_item_error_naming_the_account(radicale):
    sink = DavSink(radicale.url, "caldav", login=lambda owner: (owner, "wrong"))
    with pytest.raises(ItemError, match="401.*|refused for ada"):
        run(sink.ensure_container(OWNER, ("Agenda",)))


def test_an_object_above_max_resource_size_fails_alone_with_the_servers_words(tmp_path):
    with running_radicale(tmp_path, {OWNER: "pw"}, max_resource_size=4000) as server:
        sink = make_sink(server, "caldav")
        path = ("Agenda",)
        run(sink.ensure_container(OWNER, path))
        big = event("big", description="x" * 6000)
        with pytest.raises(ItemError) as refused:
            run(sink.put(OWNER, path, dav_target("big.ics", big)))
        assert "412 Precondition Failed" in str(refused.value) and "size limit" in str(refused.value)
        small = run(sink.put(OWNER, path, dav_target("small.ics", event("small"))))
        assert run(sink.stat(OWNER, small)).content_hash == sha(event("small"))
        assert run(sink.find(OWNER, path, dav_target("big.ics", big))) is None
        assert run(sink.list_keys(OWNER, path)) == {"small.ics"}


def test_one_sink_serves_several_event_loops_and_owners(radicale):
    home = {"ada": emptied_home(radicale)}
    sink = make_sink(radicale, "carddav")
    # bob's default home is /bob/, owned by bob: owner_only rights keep ada out of it.
    for owner in ("ada", "bob"):
        run(sink.ensure_container(owner, (f"Adresboek {home['ada'][-5:-1]}",)))

    async def both() -> set[str]:
        path = (f"Adresboek {home['ada'][-5:-1]}",)
        await sink.put("bob", path, dav_target("b.vcf", card("b"), "carddav"))
        keys = await sink.list_keys("bob", path)
        await sink.close()
        return keys

    assert run(both()) == {"b.vcf"}
    assert run(sink.list_keys("ada", (f"Adresboek {home['ada'][-5:-1]}",))) == set()
