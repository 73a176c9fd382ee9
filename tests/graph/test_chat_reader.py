"""The chat reader against the sandbox: chats and channels as containers, full and incremental listings of
messages and replies, expired channel cursors, fetched messages with their inline images, and Teams throttling."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import random

import pytest

from connectors.graph.chat import ChatReader
from connectors.graph.transport import Politeness
from migrator.errors import CursorExpired, ItemError
from migrator.model import Container, Cursor, ItemRef, Removed, User
from migrator.sandbox.api_teams import department_chats, department_team
from migrator.sandbox.gen_teams import PNG_SIGNATURE, edit_message
from tests.graph.conftest import collect, run, session_for


def first_user(sandbox) -> tuple[dict, User]:
    entry = sandbox.tenant.users[0]
    return entry, User(entry["userPrincipalName"], entry["displayName"], entry["department"], entry["id"])


def chats_of(sandbox, entry: dict) -> dict:
    """chat id -> ChatState, for the chats `entry` is in."""
    state = department_chats(sandbox.tenant, entry["department"])
    return {chat_id: state["chats"][chat_id] for chat_id in state["by_user"][entry["id"]]}


def chat_container(chat_id: str) -> Container:
    return Container(chat_id, chat_id, "chat", (), "group")


def channel_container(team_id: str, channel: dict) -> Container:
    return Container(f"{team_id}/{channel['id']}", channel["displayName"], "chat", (), "channel")


async def using(sandbox, action, page: int = 50, politeness: Politeness | None = None):
    session = session_for(sandbox, politeness)
    try:
        return await action(ChatReader(session, page=page))
    finally:
        await session.close()


def changes(sandbox, user: User, container: Container, cursor: str | None = None, page: int = 50) -> list:
    return run(using(sandbox, lambda reader: collect(reader.changes(user, container, cursor)), page))


def split(found: list) -> tuple[list[ItemRef], list[Removed], list[Cursor]]:
    return ([c for c in found if isinstance(c, ItemRef)], [c for c in found if isinstance(c, Removed)],
            [c for c in found if isinstance(c, Cursor)])


def test_containers_are_the_users_chats_and_the_channels_of_their_teams(sandbox):
    entry, user = first_user(sandbox)
    found = run(using(sandbox, lambda reader: collect(reader.containers(user)), page=3))
    chats = chats_of(sandbox, entry)
    team, _ = department_team(sandbox.tenant, entry["department"])
    by_id = {c.source_id: c for c in found}
    assert len(by_id) == len(found)
    assert set(by_id) == set(chats) | {f"{team.team['id']}/{c.channel['id']}" for c in team.channels}
    for chat_id, state in chats.items():
        container = by_id[chat_id]
        assert container.role == state.data.chat["chatType"] and container.workload == "chat"
        others = sorted(m["displayName"] for m in state.data.members if m["userId"] != entry["id"])
        assert container.name == (state.data.chat["topic"] or ", ".join(others))
        assert container.path[0] == "Chats" and container.path[1].startswith(container.name)
    assert len({c.path for c in found}) == len(found)
    assert {c.role for c in found} >= {"oneOnOne", "group", "meeting", "channel"}
    for channel in team.channels:
        container = by_id[f"{team.team['id']}/{channel.channel['id']}"]
        assert container.role == "channel" and container.path == (team.team["displayName"], channel.channel["displayName"])


def test_a_full_listing_of_each_chat_yields_every_message_then_the_newest_timestamp(sandbox):
    entry, user = first_user(sandbox)
    for chat_id, state in chats_of(sandbox, entry).items():
        refs, removed, cursors = split(changes(sandbox, user, chat_container(chat_id), page=7))
        truth = {m["id"]: m for m in state.thread.messages}
        assert len(truth) > 7  # so the listing had to follow nextLinks
        assert sorted(r.source_id for r in refs) == sorted(truth) and not removed
        assert all(r.change_key == truth[r.source_id]["lastModifiedDateTime"] and r.kind == "chatMessage" for r in refs)
        assert cursors == [Cursor(max(m["lastModifiedDateTime"] for m in truth.values()))]


def test_a_full_listing_of_each_channel_yields_every_root_and_reply_then_a_delta_link(sandbox):
    entry, user = first_user(sandbox)
    team, threads = department_team(sandbox.tenant, entry["department"])
    longest = 0
    for channel in team.channels:
        thread = threads[channel.channel["id"]]
        refs, removed, cursors = split(changes(sandbox, user, channel_container(team.team["id"], channel.channel), page=7))
        expected = {m["id"] for m in thread.messages}
        for root_id, replies in thread.replies.items():
            expected |= {f"{root_id}/{r['id']}" for r in replies}
            longest = max(longest, len(replies))
        assert sorted(r.source_id for r in refs) == sorted(expected) and not removed
        assert len(cursors) == 1 and "/messages/delta?" in cursors[0].value
    assert longest > 50  # the long thread needs several pages of replies, even at Graph's largest $top


def test_a_second_chat_pass_yields_exactly_the_new_the_edited_and_the_soft_deleted_message(sandbox):
    entry, user = first_user(sandbox)
    chat_id, state = next(iter(chats_of(sandbox, entry).items()))
    container = chat_container(chat_id)
    _, _, [cursor] = split(changes(sandbox, user, container))
    ordinary = [m for m in state.thread.messages if m["messageType"] == "message" and not m["deletedDateTime"]]
    posted = state.post(random.Random(3), entry)
    edited = state.edit(ordinary[0]["id"], "<p>aangepast ✅</p>")
    deleted = state.delete(ordinary[1]["id"])
    refs, removed, [later] = split(changes(sandbox, user, container, cursor.value))
    assert {r.source_id: r.change_key for r in refs} == {m["id"]: m["lastModifiedDateTime"] for m in (posted, edited, deleted)}
    assert not removed and later.value == max(m["lastModifiedDateTime"] for m in (posted, edited, deleted))
    names = {r.source_id: r.name for r in refs}
    assert names[deleted["id"]] == "(deleted)" and names[edited["id"]].endswith("aangepast ✅")
    assert changes(sandbox, user, container, later.value) == [later]


def test_a_later_channel_pass_yields_the_changed_root_with_its_replies_and_removals(sandbox):
    entry, user = first_user(sandbox)
    team, threads = department_team(sandbox.tenant, entry["department"])
    channel = team.channels[0].channel
    thread = threads[channel["id"]]
    container = channel_container(team.team["id"], channel)
    _, _, [cursor] = split(changes(sandbox, user, container))
    root_id = next(root for root, replies in thread.replies.items() if len(replies) > 2)
    thread.messages.upsert(edit_message(thread.message(root_id), "<p>bijgewerkt</p>", dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)))
    gone = next(m["id"] for m in thread.messages if m["id"] != root_id and m["id"] not in thread.replies)
    thread.messages.remove(gone)
    refs, removed, [later] = split(changes(sandbox, user, container, cursor.value, page=2))
    assert refs[0].source_id == root_id  # the root, then its replies (listed anew, though none changed)
    assert sorted(r.source_id for r in refs[1:]) == sorted(f"{root_id}/{r['id']}" for r in thread.replies[root_id])
    assert refs[0].change_key == "2026-03-01T09:00:00.000Z" and removed == [Removed(gone)] and later != cursor
    sandbox.tenant.delta.expire_all()
    with pytest.raises(CursorExpired):
        changes(sandbox, user, container, later.value)


def hosted_message(threads: dict, want_reply: bool):
    """(thread, root id or None, message id, hostedContent id) of a message with an inline image."""
    for thread in threads.values():
        reply_roots = {r["id"]: root for root, replies in thread.replies.items() for r in replies}
        for message_id, content_id in thread.hosted:
            if (message_id in reply_roots) == want_reply:
                return thread, reply_roots.get(message_id), message_id, content_id
    raise AssertionError("the sandbox tenant has no such message")


def test_fetch_returns_the_message_with_its_image_bytes_and_mentions_in_a_deterministic_payload(sandbox):
    entry, user = first_user(sandbox)
    chats = chats_of(sandbox, entry)
    thread, _, message_id, content_id = hosted_message({c: s.thread for c, s in chats.items()}, want_reply=False)
    chat_id = next(c for c, s in chats.items() if s.thread is thread)
    mentioned = next((c, m) for c, s in chats.items() for m in s.thread.messages if len(m["mentions"]) >= 2)

    async def action(reader: ChatReader):
        image = await reader.fetch(user, chat_container(chat_id), ItemRef(message_id, "", "chatMessage"))
        again = await reader.fetch(user, chat_container(chat_id), ItemRef(message_id, "", "chatMessage"))
        mention = await reader.fetch(user, chat_container(mentioned[0]), ItemRef(mentioned[1]["id"], "", "chatMessage"))
        return image, await image.payload.read_all(), await again.payload.read_all(), mention

    image, payload, again, mention = run(using(sandbox, action))
    data = thread.hosted[(message_id, content_id)].read_all()
    assert image.metadata["hosted"] == {content_id: data} and data.startswith(PNG_SIGNATURE)
    assert image.metadata["message"]["id"] == message_id and f"hostedContents/{content_id}/$value" in image.metadata["message"]["body"]["content"]
    document = json.loads(payload)
    assert payload == again and document["hosted_sha256"] == {content_id: hashlib.sha256(data).hexdigest()}
    assert document["message"] == image.metadata["message"] and "@odata.context" not in document["message"]
    assert mention.metadata["message"]["mentions"] == mentioned[1]["mentions"]
    assert all(f"<at id=\"{m['id']}\">" in mention.metadata["message"]["body"]["content"] for m in mentioned[1]["mentions"])


def test_fetch_of_a_channel_reply_carries_its_image(sandbox):
    entry, user = first_user(sandbox)
    team, threads = department_team(sandbox.tenant, entry["department"])
    thread, root_id, reply_id, content_id = hosted_message(threads, want_reply=True)
    channel = next(c.channel for c in team.channels if threads[c.channel["id"]] is thread)
    ref = ItemRef(f"{root_id}/{reply_id}", "", "chatMessage")
    item = run(using(sandbox, lambda reader: reader.fetch(user, channel_container(team.team["id"], channel), ref)))
    assert item.metadata["message"]["replyToId"] == root_id and item.metadata["message"]["id"] == reply_id
    assert item.metadata["hosted"][content_id] == thread.hosted[(reply_id, content_id)].read_all()


def test_system_messages_arrive_with_their_real_message_type(sandbox):
    entry, user = first_user(sandbox)
    chat_id, event = next((c, m) for c, s in chats_of(sandbox, entry).items() for m in s.thread.messages
                          if m["messageType"] == "systemEventMessage")
    container = chat_container(chat_id)

    async def action(reader: ChatReader):
        listed = [r async for r in reader.changes(user, container, None) if isinstance(r, ItemRef) and r.source_id == event["id"]]
        return listed, await reader.fetch(user, container, ItemRef(event["id"], "", "chatMessage"))

    listed, item = run(using(sandbox, action))
    kind = event["eventDetail"]["@odata.type"].rsplit(".", 1)[-1].removesuffix("EventMessageDetail")
    assert listed[0].name == f"({kind})"
    assert item.metadata["message"]["messageType"] == "systemEventMessage"
    assert item.metadata["message"]["eventDetail"] == event["eventDetail"]


def test_a_missing_message_fails_alone(sandbox):
    entry, user = first_user(sandbox)
    chat_id = next(iter(chats_of(sandbox, entry)))
    with pytest.raises(ItemError, match="404"):
        run(using(sandbox, lambda reader: reader.fetch(user, chat_container(chat_id), ItemRef("1", "", "chatMessage"))))


def test_a_throttled_chat_listing_still_completes(sandbox):
    entry, user = first_user(sandbox)
    chat_id, state = max(chats_of(sandbox, entry).items(), key=lambda pair: len(pair[1].thread.messages))
    throttle = sandbox.tenant.limiter.throttle
    throttle.enabled, throttle.teams_messages_per_second, throttle.retry_after = True, 5, 1

    async def short_sleep(seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.25))  # retries come sooner than asked: the window is a second anyway

    async def action(reader: ChatReader):
        found = await collect(reader.changes(user, chat_container(chat_id), None))
        return found, reader.session.transport.retries["throttled"]

    politeness = Politeness(backoff_base=0.01, backoff_cap=0.05, sleep=short_sleep)
    found, throttled = run(using(sandbox, action, page=2, politeness=politeness))
    refs, _, _ = split(found)
    assert sorted(r.source_id for r in refs) == sorted(m["id"] for m in state.thread.messages)
    assert throttled > 0 and sandbox.tenant.limiter.throttled["TeamsMessages"] > 0


def counting_teams_reads(sandbox) -> list[int]:
    """Counts the Teams message reads the sandbox answers (throttled or not)."""
    limiter, count = sandbox.tenant.limiter, [0]
    admit = limiter.teams_message_read

    def counted(app):
        count[0] += 1
        admit(app)

    limiter.teams_message_read = counted
    return count


def test_a_listed_message_is_fetched_from_its_listing_reading_only_its_images(sandbox):
    entry, user = first_user(sandbox)
    chats = chats_of(sandbox, entry)
    thread, _, message_id, content_id = hosted_message({c: s.thread for c, s in chats.items()}, want_reply=False)
    container = chat_container(next(c for c, s in chats.items() if s.thread is thread))
    reads = counting_teams_reads(sandbox)

    async def action(reader: ChatReader):
        listed = next(r for r in await collect(reader.changes(user, container, None)) if isinstance(r, ItemRef) and r.source_id == message_id)
        before = reads[0]
        from_listing = await reader.fetch(user, container, listed)
        fetch_reads = reads[0] - before
        read_again = await reader.fetch(user, container, ItemRef(message_id, listed.change_key, "chatMessage"))
        return listed, fetch_reads, await from_listing.payload.read_all(), await read_again.payload.read_all()

    listed, fetch_reads, from_listing, read_again = run(using(sandbox, action))
    assert listed.listed and json.loads(listed.listed)["id"] == message_id
    assert fetch_reads == 1, "only the inline image is read; the message itself came with the listing"
    assert from_listing == read_again, "the listing's message is the one GET returns: same payload, same hash"
    assert json.loads(from_listing)["hosted_sha256"][content_id]


def test_teams_reads_are_spaced_to_the_tenant_limit_so_none_is_throttled(sandbox):
    entry, user = first_user(sandbox)
    chat_id, state = max(chats_of(sandbox, entry).items(), key=lambda pair: len(pair[1].thread.messages))
    throttle = sandbox.tenant.limiter.throttle
    throttle.enabled, throttle.teams_messages_per_second = True, 5
    reads = counting_teams_reads(sandbox)

    async def action(reader: ChatReader):
        found = await collect(reader.changes(user, chat_container(chat_id), None))
        return found, reader.session.transport.retries["throttled"]

    found, throttled = run(using(sandbox, action, page=2, politeness=Politeness(teams_reads_per_second=5)))
    refs, _, _ = split(found)
    assert sorted(r.source_id for r in refs) == sorted(m["id"] for m in state.thread.messages)
    assert reads[0] > 10, "enough pages to exceed two seconds' allowance"
    assert throttled == 0 and sandbox.tenant.limiter.throttled["TeamsMessages"] == 0
