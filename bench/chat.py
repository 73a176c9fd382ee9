"""Teams chats into a local Synapse: the whole engine (Graph sandbox -> plan -> copy -> verify through the
application service) against a plain loop that sends the same events with the same masquerading and timestamps
over one connection, measured side by side in one run.

Usage: python -m bench.chat [--users N] [--json FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from bench import json_option, timed_stages, write_results
from mappings.chat import SOURCE_KEY
from migrator.config import load_config
from migrator.sandbox.app import Sandbox
from migrator.sandbox.tenant import Tenant
from migrator.sandbox.tls import ensure_tls
from migrator.wiring import build_sink
from tests.fixtures.synapse import running_synapse
from tests.graph.configs import sandbox_source

ENGINE_PREFIX, LOOP_PREFIX = "teams_engine_", "teams_loop_"


def write_config(root: Path, sandbox: Sandbox, server) -> Path:
    (root / "as-token").write_text(server.registration.as_token)
    (root / "migrator.toml").write_text(f"""
{sandbox_source(root, sandbox)}
[workloads]
enabled = ["chat"]

[targets.chat]
kind = "matrix"
url = "{server.url}"
server_name = "{server.server_name}"
as_token = {{ file = "as-token" }}
room_prefix = "{ENGINE_PREFIX}"

[identity]
matrix_id = "@{{local}}:{server.server_name}"
""")
    return root / "migrator.toml"


def engine_rooms(client: httpx.Client, server) -> dict[str, list[dict]]:
    """room id -> the events the engine sent there, oldest first."""
    rooms = client.get("/_matrix/client/v3/joined_rooms").json()["joined_rooms"]
    found = {}
    for room_id in rooms:
        events, token = [], None
        while True:
            page = client.get(f"/_matrix/client/v3/rooms/{room_id}/messages",
                              params={"dir": "b", "limit": 1000, **({"from": token} if token else {})}).json()
            events += [e for e in page.get("chunk", []) if isinstance(e["content"].get(SOURCE_KEY), dict)]
            token = page.get("end")
            if not page.get("chunk") or not token:
                break
        if events:
            found[room_id] = list(reversed(events))
    return found


def prepare_loop(client: httpx.Client, rooms: dict[str, list[dict]], bot: str) -> list[tuple[str, dict, bytes | None]]:
    """Untimed: a new room per engine room with every sender joined, and the bytes of each image; returns the sends."""
    sends = []
    for n, events in enumerate(rooms.values()):
        room = client.post("/_matrix/client/v3/createRoom", json={"room_alias_name": f"{LOOP_PREFIX}{n}", "preset": "private_chat"}).json()["room_id"]
        for sender in sorted({e["sender"] for e in events} - {bot}):
            client.post(f"/_matrix/client/v3/rooms/{room}/invite", json={"user_id": sender}).raise_for_status()
            client.post(f"/_matrix/client/v3/join/{room}", params={"user_id": sender}, json={}).raise_for_status()
        for event in events:
            data = None
            if event["content"].get("msgtype") == "m.image":
                server_name, media_id = event["content"]["url"].removeprefix("mxc://").split("/", 1)
                data = client.get(f"/_matrix/client/v1/media/download/{server_name}/{media_id}").content
            sends.append((room, event, data))
    return sends


def _relinked(relation: dict, sent: dict[str, str]) -> dict:
    """The engine's relation, pointing at the loop's copies of the same events."""
    relation = {**relation, "event_id": sent.get(relation.get("event_id", ""), relation.get("event_id"))}
    if "m.in_reply_to" in relation:
        relation["m.in_reply_to"] = {"event_id": sent[relation["m.in_reply_to"]["event_id"]]}
    return {k: v for k, v in relation.items() if v is not None}


def plain_loop(client: httpx.Client, sends: list[tuple[str, dict, bytes | None]]) -> float:
    """The same events, each a PUT with ?user_id= and ?ts= (images uploaded first, relations relinked)."""
    sent: dict[str, str] = {}
    start = time.perf_counter()
    for n, (room, event, data) in enumerate(sends):
        content = dict(event["content"])
        if "m.relates_to" in content:
            content["m.relates_to"] = _relinked(content["m.relates_to"], sent)
        if data is not None:
            upload = client.post("/_matrix/media/v3/upload", content=data, params={"user_id": event["sender"]},
                                 headers={"Content-Type": content["info"]["mimetype"]})
            content["url"] = upload.json()["content_uri"]
        answer = client.put(f"/_matrix/client/v3/rooms/{room}/send/{event['type']}/loop-{n}",
                            params={"user_id": event["sender"], "ts": event["origin_server_ts"]}, json=content)
        answer.raise_for_status()
        sent[event["event_id"]] = answer.json()["event_id"]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3)
    json_option(parser, "chat")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tenant = Tenant(seed=7, users=args.users)
        server = running_synapse(root / "synapse")
        try:
            with Sandbox(tenant, ensure_tls(root / "tls")) as sandbox:
                for user in tenant.department_members(tenant.users[0]["department"]):  # the real accounts they are invited with
                    server.register_user(user["userPrincipalName"].split("@")[0])
                config = load_config(write_config(root, sandbox, server))
                sink = build_sink("chat", config.targets["chat"], config)
                stage_times, results = timed_stages(config, sinks={"chat": sink})
            headers = {"Authorization": f"Bearer {server.registration.as_token}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
                rooms = engine_rooms(client, server)
                sends = prepare_loop(client, rooms, f"@m365-migrator:{server.server_name}")
                loop_seconds = plain_loop(client, sends)
        finally:
            server.stop()
    copy = results["copy"].copy.outcomes
    assert copy["copied"] and not copy["failed"], copy
    assert results["verify"].verify.outcomes["mismatch"] == 0, results["verify"].verify.outcomes
    events = sink.sent
    looped = len(sends)
    engine = sum(stage_times.values())
    print(f"{copy['copied'] + copy['healed']} chat items ({copy['copied']} copied, {copy['healed']} shared with another member, "
          f"{copy['skipped']} skipped) -> {events} events in {len(rooms)} rooms of a local Synapse")
    print(f"plain appservice send loop (one connection, same events)  {looped / loop_seconds:8.1f} events/s")
    print(f"engine copy stage (Graph fetch -> map -> send)             {events / stage_times['copy']:8.1f} events/s")
    print(f"engine plan + copy + verify                                {events / engine:8.1f} events/s")
    print("stage seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in stage_times.items()))
    print(f"ratio copy stage / plain loop                              {(events / stage_times['copy']) / (looped / loop_seconds):8.2f}")
    print(f"ratio whole engine / plain loop                            {(events / engine) / (looped / loop_seconds):8.2f}")
    write_results(args.json, {
        "items": copy["copied"] + copy["healed"], "events": events, "rooms": len(rooms), "loop_events": looped,
        "seconds": {"send_loop": loop_seconds, **stage_times},
        "ratio_copy_vs_loop": (events / stage_times["copy"]) / (looped / loop_seconds), "ratio_engine_vs_loop": (events / engine) / (looped / loop_seconds),
    })


if __name__ == "__main__":
    main()
