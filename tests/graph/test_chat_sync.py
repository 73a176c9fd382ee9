"""Delta passes for chats into a real Synapse: a message deleted in Teams after it was copied stays
in the room until `sync --propagate-deletes`, which redacts it; a pass with nothing changed sends
nothing."""

from __future__ import annotations

import asyncio

import httpx

from mappings.chat import SOURCE_KEY, room_key
from migrator.job import STAGES, SYNC_STAGES, Job, Selection
from migrator.model import Container
from migrator.sandbox.api_teams import department_chats
from migrator.wiring import build_sink
from tests.graph.test_chat_to_synapse import (  # noqa: F401
    chat_config,
    members_of,
    register_real_users,
    room_events,
    tenant_sandbox,
)


def sync(config, stages) -> tuple[object, object]:
    sink = build_sink("chat", config.targets["chat"], config)
    job = Job(config, sinks={"chat": sink})
    try:
        return asyncio.run(job.run("sync", Selection.from_config(config), stages)), sink
    finally:
        job.close()


def test_a_message_deleted_in_teams_is_redacted_only_when_deletions_are_propagated(tmp_path, tenant_sandbox, synapse):  # noqa: F811
    member = members_of(tenant_sandbox)[0]
    register_real_users(synapse, [member])
    prefix = "teams_sync_"
    config = chat_config(tmp_path, tenant_sandbox, synapse, prefix, only=member)
    bulk, _ = sync(config, STAGES)
    assert bulk.copy.outcomes["failed"] == 0

    chats = department_chats(tenant_sandbox.tenant, member["department"])
    chat_id = next(iter(chats["by_user"][member["id"]]))
    chat = chats["chats"][chat_id]
    container = Container(chat_id, chat_id, "chat", (), chat.data.chat["chatType"])
    doomed = next(m for m in chat.thread.messages if m["messageType"] == "message" and not m["deletedDateTime"])
    _, timeline = room_events(synapse, f"#{prefix}{room_key(container)}:{synapse.server_name}")
    [copied] = [e for e in timeline if (e["content"].get(SOURCE_KEY) or {}).get("key") == doomed["id"]]
    chat.delete(doomed["id"])

    kept, _ = sync(config, STAGES)
    assert kept.copy.outcomes["removed"] == 1 and kept.deleted is None
    assert event_content(synapse, copied), "kept until deletions are propagated"

    propagated, _ = sync(config, SYNC_STAGES)
    assert propagated.deleted.outcomes == {"deleted": 1}
    assert event_content(synapse, copied) == {}, "redacted: the event stays, its content is gone"

    quiet, sink = sync(config, SYNC_STAGES)
    assert sum(quiet.copy.outcomes.values()) == 0 and sum(quiet.deleted.outcomes.values()) == 0 and sink.sent == 0


def event_content(server, event: dict) -> dict:
    answer = httpx.get(f"{server.url}/_matrix/client/v3/rooms/{event['room_id']}/event/{event['event_id']}",
                       headers={"Authorization": f"Bearer {server.registration.as_token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["content"]
