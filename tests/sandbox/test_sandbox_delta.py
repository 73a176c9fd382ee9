"""After mutations, each workload's delta reports exactly what changed: new, changed and removed."""

from __future__ import annotations

import datetime as dt
import random

from migrator.sandbox.api_calendar import calendars
from migrator.sandbox.api_contacts import address_book
from migrator.sandbox.api_drive import onedrive
from migrator.sandbox.api_teams import department_team
from tests.sandbox.conftest import follow

WINDOW = {"startDateTime": "2025-01-01T00:00:00Z", "endDateTime": "2027-12-31T00:00:00Z"}


def sync(client, url, params=None):
    first = client.get(url, params=params)
    assert first.status_code == 200, first.text
    items, pages = follow(client, first.json().get("@odata.nextLink")) if first.json().get("@odata.nextLink") else ([], [])
    last = pages[-1] if pages else first.json()
    return first.json()["value"] + items, last["@odata.deltaLink"]


def split(changes):
    return {c["id"] for c in changes if "@removed" not in c and "deleted" not in c}, {c["id"] for c in changes if "@removed" in c or "deleted" in c}


def test_contacts_delta(fresh_graph, fresh_sandbox):
    tenant = fresh_sandbox.tenant
    user = tenant.users[0]["id"]
    book = address_book(tenant, user)
    url = f"users/{user}/contactFolders/{book.default_folder}/contacts/delta"
    everything, link = sync(fresh_graph, url)
    assert len(everything) == len(book.contacts[book.default_folder])
    added = book.add(random.Random(3))
    changed = book.update(everything[0]["id"], jobTitle="Directeur")
    book.delete(everything[1]["id"])
    changes, _ = sync(fresh_graph, link)
    assert split(changes) == ({added["id"], changed["id"]}, {everything[1]["id"]})


def test_drive_delta_reports_deleted_items_with_the_deleted_facet(fresh_graph, fresh_sandbox):
    tenant = fresh_sandbox.tenant
    user = tenant.users[0]["id"]
    drive = onedrive(tenant, user)
    everything, link = sync(fresh_graph, f"drives/{drive.id}/root/delta")
    assert {i["id"] for i in everything} == {i["id"] for i in drive.items.current()}
    root_position = [i for i in everything if "root" in i]
    assert everything.index(root_position[0]) == 0, "parents come before their children"
    a_file = next(i for i in everything if "file" in i)
    new = drive.add_file(random.Random(4), "root", "nieuw verslag.txt", b"hallo")
    replaced = drive.replace_content(a_file["id"], b"nieuwe inhoud")
    doomed = next(i for i in everything if "file" in i and i["id"] != a_file["id"])
    drive.delete(doomed["id"])
    changes, _ = sync(fresh_graph, link)
    present, removed = split(changes)
    assert {new["id"], replaced["id"]} <= present and removed == {doomed["id"]}
    gone = next(c for c in changes if c["id"] == doomed["id"])
    assert gone["deleted"] == {"state": "deleted"}
    latest = fresh_graph.get(f"drives/{drive.id}/root/delta", params={"token": "latest"}).json()
    assert latest["value"] == [] and "@odata.deltaLink" in latest


def test_calendar_view_delta(fresh_graph, fresh_sandbox):
    tenant = fresh_sandbox.tenant
    user = tenant.users[0]
    cals = calendars(tenant, user["id"])
    url = f"users/{user['id']}/calendarView/delta"
    everything, link = sync(fresh_graph, url, WINDOW)
    assert everything and all(e["type"] != "seriesMaster" for e in everything)
    added = cals.add(random.Random(5), user, tenant.colleagues(user), dt.datetime(2026, 6, 3, 10, 0, tzinfo=dt.UTC))
    single = next(e for e in everything if e["type"] == "singleInstance")
    cals.update(single["id"], subject="Verplaatst overleg")
    occurrence = next(e for e in everything if e["type"] == "occurrence")
    cals.delete(occurrence["id"])
    changes, _ = sync(fresh_graph, link)
    present, removed = split(changes)
    assert removed == {occurrence["id"]}
    assert {added["id"], single["id"]} <= present
    # Cancelling an occurrence changes its series master, so the series' other occurrences show as changed.
    others = [c for c in changes if c["id"] in present - {added["id"], single["id"]}]
    assert all(c.get("seriesMasterId") == occurrence["seriesMasterId"] for c in others)


def test_channel_message_delta(fresh_graph, fresh_sandbox):
    tenant = fresh_sandbox.tenant
    department = tenant.users[0]["department"]
    team, threads = department_team(tenant, department)
    channel = team.channels[0].channel["id"]
    url = f"teams/{team.team['id']}/channels/{channel}/messages/delta"
    everything, link = sync(fresh_graph, url)
    assert len(everything) == len(threads[channel].messages)
    target = everything[-1]
    edited = {**threads[channel].message(target["id"]), "lastModifiedDateTime": "2026-12-01T10:00:00.000Z", "lastEditedDateTime": "2026-12-01T10:00:00.000Z"}
    threads[channel].messages.upsert(edited)
    changes, _ = sync(fresh_graph, link)
    assert [c["id"] for c in changes] == [target["id"]] and changes[0]["lastEditedDateTime"] == "2026-12-01T10:00:00.000Z"


def test_chat_messages_after_a_post_an_edit_and_a_delete(fresh_graph, fresh_sandbox):
    from migrator.sandbox.api_teams import department_chats

    tenant = fresh_sandbox.tenant
    user = tenant.users[0]
    chats = department_chats(tenant, user["department"])
    chat_id = chats["by_user"][user["id"]][0]
    state = chats["chats"][chat_id]
    before = fresh_graph.get(f"chats/{chat_id}/messages", params={"$top": "50", "$orderby": "lastModifiedDateTime desc"}).json()["value"]
    newest = before[0]["lastModifiedDateTime"]
    posted = state.post(random.Random(6), user)
    edited = state.edit(before[-1]["id"], "<p>aangepast</p>")
    deleted = state.delete(before[-2]["id"])
    changed = fresh_graph.get(f"chats/{chat_id}/messages", params={
        "$top": "50", "$orderby": "lastModifiedDateTime desc", "$filter": f"lastModifiedDateTime gt {newest}",
    }).json()["value"]
    assert {m["id"] for m in changed} == {posted["id"], edited["id"], deleted["id"]}
    assert next(m for m in changed if m["id"] == deleted["id"])["deletedDateTime"]
