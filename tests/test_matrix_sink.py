"""The Matrix sink against a real Synapse: the sink contract, rooms found again by alias, and find() locating sent
events from the room's timeline alone, as after the homeserver forgot its transaction ids."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from connectors.matrix import MatrixSink
from mappings.chat import PLAN_KIND, SOURCE_KEY, ChatOptions
from migrator.errors import ItemError, TransientError
from migrator.model import DestRef, Payload, Target
from tests.sink_contract import SinkContract

_fresh = itertools.count()


def new_sink(server, prefix: str | None = None) -> MatrixSink:
    """A sink whose rooms no earlier test used: each gets its own alias prefix inside the service's namespace."""
    options = ChatOptions(server.server_name, room_prefix=prefix or f"teams_t{next(_fresh)}_")
    return MatrixSink(server.url, server.registration.as_token, options)


def run(coro):
    return asyncio.run(coro)


class TestMatrixSinkContract(SinkContract):
    @pytest.fixture
    def sink(self, synapse):
        return new_sink(synapse)

    def remove(self, sink, ref: DestRef) -> None:
        run(sink.remove(ref))


def plan_target(message_id: str, body: str, sender: str, ts: int, reactions: list[tuple[str, str]] = ()) -> Target:
    parts = [{"key": message_id, "type": "m.room.message", "sender": sender, "ts": ts,
              "content": {"msgtype": "m.text", "body": body, "m.mentions": {}}}]
    for reactor, emoji in reactions:
        parts.append({"key": f"{message_id}#reaction:{reactor}", "type": "m.reaction", "sender": reactor, "ts": ts + 1000,
                      "annotates": message_id, "content": {"m.relates_to": {"rel_type": "m.annotation", "key": emoji}}})
    plan = {"id": message_id, "parts": parts, "thread_root": None, "reply_to": None, "names": {sender: "Ada Lovelace"}}
    return Target(f"room/{message_id}", Payload.from_bytes(json.dumps(plan).encode()), {"kind": PLAN_KIND, "media": {}})


def test_a_second_sink_finds_every_part_from_the_timeline_and_sends_nothing(synapse):
    prefix = f"teams_t{next(_fresh)}_"
    ghost, other = f"@teams_ada:{synapse.server_name}", f"@teams_bob:{synapse.server_name}"
    owner = synapse.register_user(f"owner{next(_fresh)}")
    path = ("room", "Budget", "Microsoft Teams chat (group)")
    targets = [plan_target(str(1000 + n), f"bericht {n}", ghost, 1_736_150_400_000 + n * 60_000, [(other, "👍")] if n == 1 else [])
               for n in range(3)]

    async def first():
        sink = new_sink(synapse, prefix)
        await sink.ensure_container(owner, path)
        refs = [await sink.put(owner, path, t) for t in targets]
        await sink.close()
        return refs, sink.sent

    async def second():
        sink = new_sink(synapse, prefix)  # a new process: nothing cached, the transaction ids play no part
        await sink.ensure_container(owner, path)
        found = [await sink.find(owner, path, t) for t in targets]
        again = [await sink.put(owner, path, t) for t in targets]
        room_id = found[0].dest_id.split("/")[0]
        events, token = [], None
        while True:
            chunk, token = await sink.client.messages(room_id, token)
            events += chunk
            if token is None:
                break
        members = await sink.client.joined_members(room_id)
        joined = await sink.client.call("GET", f"/_matrix/client/v3/rooms/{room_id}/state/m.room.member/{ghost}", "join event")
        members = {user: await sink.client.membership(room_id, user) for user in (*members, owner)}
        names = await sink.client.display_name(ghost)
        await sink.close()
        return found, again, sink.sent, events, members, names, joined

    refs, sent = run(first())
    found, again, resent, events, members, name, joined = run(second())
    assert sent == 4 and resent == 0
    assert [f.dest_id for f in found] == [r.dest_id for r in refs] == [a.dest_id for a in again]
    assert all(f.content_hash == r.content_hash and f.size == r.size for f, r in zip(found, refs))
    messages = sorted((e for e in events if e["type"] == "m.room.message"), key=lambda e: e["origin_server_ts"])
    assert [(e["sender"], e["content"]["body"], e["origin_server_ts"]) for e in messages] == [
        (ghost, f"bericht {n}", 1_736_150_400_000 + n * 60_000) for n in range(3)]
    [reaction] = [e for e in events if e["type"] == "m.reaction"]
    assert reaction["sender"] == other and reaction["content"]["m.relates_to"]["event_id"] == refs[1].dest_id.split("/")[1]
    assert all(SOURCE_KEY in e["content"] for e in events)
    assert members[owner] == "invite" and members[ghost] == members[other] == "join"  # the real user is invited
    assert name == "Ada Lovelace" and joined == {"membership": "join", "displayname": "Ada Lovelace"}


def test_a_message_stopped_between_its_text_and_its_image_is_completed_without_repeating_the_text(synapse):
    prefix = f"teams_t{next(_fresh)}_"
    ghost = f"@teams_ada:{synapse.server_name}"
    path = ("gap", "", "")
    png = b"\x89PNG\r\n\x1a\n" + bytes(40)
    plan = {"id": "2000", "thread_root": None, "reply_to": None, "names": {ghost: "Ada"}, "parts": [
        {"key": "2000", "type": "m.room.message", "sender": ghost, "ts": 1_736_150_400_000,
         "content": {"msgtype": "m.text", "body": "kijk", "m.mentions": {}}},
        {"key": "2000#image:1", "type": "m.room.message", "sender": ghost, "ts": 1_736_150_400_000, "media": "c1",
         "content": {"msgtype": "m.image", "body": "image.png", "info": {"mimetype": "image/png", "size": len(png)}}}]}
    target = Target("gap/2000", Payload.from_bytes(json.dumps(plan).encode()), {"kind": PLAN_KIND, "media": {"c1": png}})

    async def interrupted():
        sink = new_sink(synapse, prefix)

        async def refuse(*args, **kwargs):
            raise TransientError("the media repository is away")

        sink.client.upload = refuse
        await sink.ensure_container("", path)
        with pytest.raises(TransientError):
            await sink.put("", path, target)
        await sink.close()
        return sink.sent

    async def resumed():
        sink = new_sink(synapse, prefix)
        await sink.ensure_container("", path)
        found = await sink.find("", path, target)
        stored = await sink.put("", path, target)
        room_id = stored.dest_id.split("/")[0]
        chunk, _ = await sink.client.messages(room_id, None)
        media = [e["content"]["url"] for e in chunk if e["content"].get("msgtype") == "m.image"]
        data = await sink.client.download(media[0])
        await sink.close()
        return found, sink.sent, [e["content"]["msgtype"] for e in reversed(chunk)], data

    assert run(interrupted()) == 1
    found, sent, kinds, data = run(resumed())
    assert found is None and sent == 1  # incomplete, so not "found"; only the image went out
    assert kinds == ["m.text", "m.image"] and data == png


def test_an_owner_without_a_matrix_account_fails_with_the_fix(synapse):
    sink = new_sink(synapse)
    with pytest.raises(ItemError, match="@nobody-here:localhost does not exist: create it"):
        run(sink.ensure_container("@nobody-here:localhost", ("absent", "", "")))
