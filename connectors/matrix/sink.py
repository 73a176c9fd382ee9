"""A sink that retells chats in Matrix rooms through an application service.

Rooms are found again by alias (the target path's first element, a key derived from the Teams chat id), so a
chat that several migrated users share lands once, and each of them is invited. Every event this sink sends
carries a custom content key naming its part (`org.m365migrator.source`: message id, image or reaction), and the
message part also the sha256 and size of the plan it came from. The first time a room is used in a run its
timeline is read back once into an index (part key -> event), so `find` needs no transaction cache: a rerun,
or a run after the homeserver forgot its transaction ids, sends nothing twice. Transaction ids are still
derived from the part key, which covers a retry within the homeserver's cache window.

A plan is sent part by part, each only when the index lacks it: a run killed between the text and its image
leaves a gap the next run fills. Messages of one room must arrive in order; the engine serialises the items of
one container for sinks declaring `ordered`, and a lock per room keeps writers of shared rooms apart.

A target that is not a chat plan (the engine's contract probes) is stored as a file: uploaded, then an `m.file`.

dest_id is "<room id>/<event id>" of the message part.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from connectors.matrix.client import AppserviceClient
from mappings.chat import PLAN_KIND, SOURCE_KEY, ChatOptions, alias_localpart, room_spec
from migrator.errors import ItemError
from migrator.model import Capabilities, DestRef, Target


@dataclass
class Entry:
    event_id: str
    sha256: str | None = None
    size: int | None = None


@dataclass
class Room:
    room_id: str
    index: dict[str, Entry] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)
    indexed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def txn_id(part_key: str, room_id: str, suffix: str = "") -> str:
    """Deterministic per part and room: a retried send is recognised by the homeserver while it remembers it."""
    return "m365-" + hashlib.sha256(f"{room_id}\n{part_key}\n{suffix}".encode()).hexdigest()[:40]


def file_plan(dest_key: str, data: bytes) -> dict[str, Any]:
    name = dest_key.rsplit("/", 1)[-1] or "item"
    content = {"msgtype": "m.file", "body": name, "info": {"mimetype": "application/octet-stream", "size": len(data)}}
    return {"id": dest_key, "parts": [{"key": dest_key, "type": "m.room.message", "sender": None, "ts": None,
                                       "media": dest_key, "content": content}], "names": {}}


class MatrixSink:
    caps = Capabilities(hashes=("sha256",), cheap_find=True, ordered=True, delete=True)

    def __init__(self, homeserver: str, as_token: str, options: ChatOptions, bot_localpart: str = "m365-migrator",
                 ca_file: str | None = None, skip_tls_verify: bool = False) -> None:
        self.options = options
        self.bot = f"@{bot_localpart}:{options.server_name}"
        self.client = AppserviceClient(homeserver, as_token, self.bot, ca_file=ca_file, skip_tls_verify=skip_tls_verify)
        self._rooms: dict[str, Room] = {}  # alias -> room
        self._by_id: dict[str, Room] = {}
        self._alias_locks: dict[str, asyncio.Lock] = {}
        self._ghosts: dict[str, asyncio.Task] = {}  # registrations under way, so concurrent first uses wait for one
        self._ready: set[str] = set()
        self._accounts: set[str] = set()  # real accounts seen to exist in this run
        self.sent = 0  # events sent by this sink, for reports and tests

    async def close(self) -> None:
        await self.client.close()

    # -- rooms ---------------------------------------------------------------------------------------------

    def alias(self, path: tuple[str, ...]) -> str:
        return f"#{alias_localpart(path[0], self.options)}:{self.options.server_name}"

    async def ensure_container(self, owner: str, path: tuple[str, ...]) -> str:
        if not path or not path[0]:
            raise ItemError("a room needs a non-empty key")
        if _is_user_id(owner) and owner not in self._accounts:
            if not await self.client.exists(owner):
                # Synapse accepts invites for accounts that do not exist: the person would never see the room.
                raise ItemError(f"the Matrix account {owner} does not exist: create it (or correct identity.matrix_id), then rerun")
            self._accounts.add(owner)
        room = await self._room(path, invite=[owner] if _is_user_id(owner) else [])
        if _is_user_id(owner) and owner not in room.members:
            state = await self.client.membership(room.room_id, owner)
            if state not in ("invite", "join"):
                await self.client.invite(room.room_id, owner)
            room.members.add(owner)
        return room.room_id

    async def _room(self, path: tuple[str, ...], invite: list[str] | None = None) -> Room:
        alias = self.alias(path)
        if alias in self._rooms:
            return self._rooms[alias]
        async with self._alias_locks.setdefault(alias, asyncio.Lock()):
            if alias not in self._rooms:
                room_id = await self.client.resolve_alias(alias)
                created = False
                if room_id is None:
                    room_id = await self.client.create_room(room_spec(path, self.options, self.bot, invite or []))
                    created = room_id is not None
                    room_id = room_id or await self.client.resolve_alias(alias)
                if room_id is None:
                    raise ItemError(f"room {alias} could neither be created nor found")
                room = self._by_id.get(room_id) or Room(room_id, indexed=created)  # stat() may have met it first
                room.members = {self.bot, *(invite or [])} if created else await self.client.joined_members(room_id)
                self._rooms[alias] = self._by_id[room_id] = room
        return self._rooms[alias]

    async def _indexed(self, room: Room) -> Room:
        """Reads the room's timeline once: every part this sink ever sent there, with the latest plan hash."""
        if room.indexed:
            return room
        originals: dict[str, Entry] = {}
        edits: dict[str, tuple[str, int]] = {}
        token: str | None = None
        while True:
            chunk, token = await self.client.messages(room.room_id, token)
            for event in chunk:
                mark = (event.get("content") or {}).get(SOURCE_KEY)
                if not isinstance(mark, dict) or "key" not in mark:
                    continue
                if mark.get("edit"):
                    edits.setdefault(mark["key"], (mark.get("sha256"), mark.get("size")))  # newest first
                else:
                    originals.setdefault(mark["key"], Entry(event["event_id"], mark.get("sha256"), mark.get("size")))
            if token is None:
                break
        for key, (sha, size) in edits.items():
            if key in originals:
                originals[key].sha256, originals[key].size = sha, size
        room.index.update(originals)
        room.indexed = True
        return room

    # -- the Sink protocol ---------------------------------------------------------------------------------

    async def find(self, owner: str, path: tuple[str, ...], target: Target) -> DestRef | None:
        room = await self._room(path)
        plan, _ = _plan_of(target, await target.payload.read_all())
        async with room.lock:
            await self._indexed(room)
            main = room.index.get(plan["parts"][0]["key"])
            if main is None or any(part["key"] not in room.index for part in plan["parts"]):
                return None  # absent, or a run stopped part-way: put() sends what is missing
            return DestRef(target.dest_key, f"{room.room_id}/{main.event_id}", main.size, main.sha256)

    async def put(self, owner: str, path: tuple[str, ...], target: Target, replace: DestRef | None = None) -> DestRef:
        data = await target.payload.read_all()
        plan, media = _plan_of(target, data)
        sha, size = hashlib.sha256(data).hexdigest(), len(data)
        room = await self._room(path)
        async with room.lock:
            await self._indexed(room)
            for number, part in enumerate(plan["parts"]):
                existing = room.index.get(part["key"])
                if existing is None:
                    mark = {"key": part["key"], **({"sha256": sha, "size": size} if number == 0 else {})}
                    event_id = await self._send(room, plan, part, media, mark)
                    room.index[part["key"]] = Entry(event_id, mark.get("sha256"), mark.get("size"))
                elif number == 0 and existing.sha256 != sha and part["type"] == "m.room.message":
                    await self._edit(room, plan, part, media, existing, sha, size)
            main = room.index[plan["parts"][0]["key"]]
        return DestRef(target.dest_key, f"{room.room_id}/{main.event_id}", main.size, main.sha256)

    async def stat(self, owner: str, ref: DestRef) -> DestRef | None:
        room_id, _, event_id = ref.dest_id.partition("/")
        event = await self.client.event(room_id, event_id)
        mark = (event or {}).get("content", {}).get(SOURCE_KEY)
        if not isinstance(mark, dict):
            return None  # gone, or redacted (a redaction strips the content)
        room = self._by_id.get(room_id) or Room(room_id)
        self._by_id.setdefault(room_id, room)
        async with room.lock:
            entry = (await self._indexed(room)).index.get(mark["key"])
        if entry is None or entry.event_id != event_id:
            return DestRef(ref.dest_key, ref.dest_id, mark.get("size"), mark.get("sha256"))
        return DestRef(ref.dest_key, ref.dest_id, entry.size, entry.sha256)

    async def list_keys(self, owner: str, path: tuple[str, ...]) -> set[str]:
        raise NotImplementedError("the Matrix sink does not declare listing")

    async def delete(self, owner: str, ref: DestRef) -> bool:
        """Redacts a message deleted in Teams (`sync --propagate-deletes`): Matrix keeps the event,
        without its content, as Teams keeps a "This message has been deleted" placeholder."""
        if await self.stat(owner, ref) is None:
            return False
        await self.remove(ref)
        return True

    # -- sending -------------------------------------------------------------------------------------------

    async def _send(self, room: Room, plan: dict[str, Any], part: dict[str, Any], media: dict[str, bytes], mark: dict[str, Any]) -> str:
        sender = part.get("sender")
        if sender:
            await self._ghost(sender, plan["names"].get(sender))
            await self._joined(room, sender, part.get("ts"), plan["names"].get(sender))
        content = {**part["content"], SOURCE_KEY: mark}
        if part.get("media"):
            data = media.get(part["media"])
            if data is None:
                raise ItemError(f"the bytes of {part['content'].get('body')} were not handed to the sink")
            info = part["content"].get("info") or {}
            content["url"] = await self.client.upload(data, info.get("mimetype", "application/octet-stream"),
                                                      part["content"].get("body", "file"), sender)
        relation = self._relation(room, plan, part)
        if relation:
            content["m.relates_to"] = relation
        event_id = await self.client.send(room.room_id, part["type"], txn_id(part["key"], room.room_id), content, sender, part.get("ts"))
        self.sent += 1
        return event_id

    def _relation(self, room: Room, plan: dict[str, Any], part: dict[str, Any]) -> dict[str, Any] | None:
        """Links to earlier events, found in the room's index. A root or quoted message that is not there
        (deleted at the source) leaves the message unlinked rather than failed: its text still says it all."""
        if part["type"] == "m.reaction":
            target = room.index.get(part["annotates"])
            if target is None:
                raise ItemError(f"reaction to message {part['annotates']}, which is not in the room")
            return {**part["content"]["m.relates_to"], "event_id": target.event_id}
        root = room.index.get(plan.get("thread_root") or "")
        quoted = room.index.get(plan.get("reply_to") or "")
        if root is not None:
            reply = quoted or root
            return {"rel_type": "m.thread", "event_id": root.event_id, "is_falling_back": quoted is None,
                    "m.in_reply_to": {"event_id": reply.event_id}}
        if quoted is not None:
            return {"m.in_reply_to": {"event_id": quoted.event_id}}
        return None

    async def _edit(self, room: Room, plan: dict[str, Any], part: dict[str, Any], media: dict[str, bytes], existing: Entry,
                    sha: str, size: int) -> None:
        """A changed message (edited at the source since it was sent) is replaced with `m.replace`."""
        sender = part.get("sender")
        if sender:
            await self._ghost(sender, plan["names"].get(sender))
            await self._joined(room, sender, None, plan["names"].get(sender))
        new = {k: v for k, v in part["content"].items() if k != "m.relates_to"}
        if part.get("media"):
            info = new.get("info") or {}
            new["url"] = await self.client.upload(media[part["media"]], info.get("mimetype", "application/octet-stream"),
                                                  new.get("body", "file"), sender)
        content = {**new, "body": "* " + new.get("body", ""), "m.new_content": new,
                   "m.relates_to": {"rel_type": "m.replace", "event_id": existing.event_id},
                   SOURCE_KEY: {"key": part["key"], "edit": True, "sha256": sha, "size": size}}
        await self.client.send(room.room_id, "m.room.message", txn_id(part["key"], room.room_id, sha), content, sender, None)
        self.sent += 1
        existing.sha256, existing.size = sha, size

    async def _ghost(self, user: str, name: str | None) -> None:
        """Registers an imported sender once per run and gives it the Teams display name, before it joins any room
        (a later rename would add a membership event to every room it is in)."""
        if user in self._ready:
            return
        task = self._ghosts.get(user)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = self._ghosts[user] = asyncio.ensure_future(self._register(user, name))
        try:
            await asyncio.shield(task)
        finally:
            self._ghosts.pop(user, None)
        self._ready.add(user)

    async def _register(self, user: str, name: str | None) -> None:
        localpart = user[1:].split(":", 1)[0]
        created = await self.client.register(localpart)
        if name and (created or await self.client.display_name(user) != name):
            await self.client.set_display_name(user, name)

    async def _joined(self, room: Room, user: str, ts: int | None, name: str | None) -> None:
        """Brings a ghost into the room just before its first event there, dated like that event."""
        if user in room.members:
            return
        await self.client.set_membership(room.room_id, user, "invite", None, ts)
        await self.client.set_membership(room.room_id, user, "join", user, ts, name)
        room.members.add(user)

    # -- for tests and tools -------------------------------------------------------------------------------

    async def remove(self, ref: DestRef) -> None:
        room_id, _, event_id = ref.dest_id.partition("/")
        await self.client.redact(room_id, event_id, txn_id(event_id, room_id, "redact"))
        room = self._by_id.get(room_id)
        if room is not None:
            room.index = {k: v for k, v in room.index.items() if v.event_id != event_id}


def _is_user_id(owner: str) -> bool:
    return owner.startswith("@") and ":" in owner


def _plan_of(target: Target, data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    if target.metadata.get("kind") == PLAN_KIND:
        try:
            return json.loads(data), target.metadata.get("media") or {}
        except json.JSONDecodeError as exc:
            raise ItemError(f"the chat plan of {target.dest_key} is not JSON: {exc}") from None
    return file_plan(target.dest_key, data), {target.dest_key: data}
