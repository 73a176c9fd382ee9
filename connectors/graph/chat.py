"""Teams: a user's chats and the channels of the teams they joined, their messages, and each message's JSON with
the inline images it carries (hostedContents).

Listings yield a container's messages oldest first (channel replies after their root), whatever order Graph
pages them in: the ledger keeps that order and a chat target replays it.

Chats have no delta in Graph v1.0, so a chat's cursor is the newest `lastModifiedDateTime` seen: later passes ask
for `$filter=lastModifiedDateTime gt <cursor>`. Edits, reactions and soft deletes all bump that timestamp, so they
come back as changed items; a soft-deleted message is an item with `deletedDateTime` set (the sink redacts it),
never a Removed entry.

Channels have a delta, but only of root messages. Limitation: Graph's channel message delta does not report a
reply that is added, edited or deleted under a root that did not change itself. A later pass therefore re-lists the
replies of the roots the delta reports and nothing else; replies under unchanged roots are only picked up by a full
listing (no cursor, as after CursorExpired). Replies of a root the delta reports as removed cannot be listed and
are left to the ledger.

System messages are asked for with `Prefer: include-unknown-enum-members`; without it Graph disguises their
messageType as `unknownFutureValue`.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from connectors.graph.reader import canonical
from connectors.graph.session import GraphApiError, GraphSession, item_failure
from migrator.errors import CursorExpired
from migrator.model import (
    Change,
    Container,
    Cursor,
    Item,
    ItemRef,
    Payload,
    Removed,
    User,
)

PAGE = 50  # the largest $top Graph accepts for chats, chat messages and replies
PREFER = {"Prefer": "include-unknown-enum-members"}
SUMMARY_LENGTH = 80
_HOSTED_SRC = re.compile(r"""src=["']([^"']*/hostedContents/([^/"']+)/\$value)["']""")
_TAG = re.compile(r"<[^>]+>")
_API_VERSION = re.compile(r"^https://[^/]+/(?:v1\.0|beta)/")


class ChatReader:
    workload = "chat"

    def __init__(self, session: GraphSession, page: int = PAGE) -> None:
        self.session = session
        self.page = page  # smaller in tests, to prove every listing follows its nextLinks

    # -- containers -------------------------------------------------------------------------------------

    async def containers(self, user: User) -> AsyncIterator[Container]:
        params = {"$expand": "members", "$top": str(min(self.page, PAGE))}
        async for chat in self.session.items(f"users/{user.source_id}/chats", params):
            name = chat.get("topic") or _member_names(chat, user) or chat["chatType"]
            # Topics repeat (two meetings with one subject), so the path carries a stable part of the id as well.
            short = hashlib.sha1(chat["id"].encode()).hexdigest()[:8]
            yield Container(chat["id"], name, "chat", ("Chats", f"{name} [{short}]"), chat["chatType"])
        async for team in self.session.items(f"users/{user.source_id}/joinedTeams"):
            async for channel in self.session.items(f"teams/{team['id']}/channels"):
                path = (team["displayName"], channel["displayName"])
                yield Container(f"{team['id']}/{channel['id']}", channel["displayName"], "chat", path, "channel")

    # -- changes ----------------------------------------------------------------------------------------

    def changes(self, user: User, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        if container.role == "channel":
            return self._channel_changes(container, cursor)
        return self._chat_changes(container, cursor)

    async def _chat_changes(self, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        params = {"$top": str(self.page), "$orderby": "lastModifiedDateTime desc"}
        if cursor:
            params["$filter"] = f"lastModifiedDateTime gt {cursor}"
        newest, found = cursor, {}
        async for message in self.session.items(f"chats/{container.source_id}/messages", params, PREFER):
            # A message changed while we page moves to the front and pushes the rest back: one may come twice.
            if message["id"] in found:
                continue
            found[message["id"]] = message
            newest = _later(newest, message.get("lastModifiedDateTime"))
        for message in oldest_first(found.values()):
            yield _ref(message["id"], message)
        if newest:
            yield Cursor(newest)

    async def _channel_changes(self, container: Container, cursor: str | None) -> AsyncIterator[Change]:
        base = _channel_base(container)
        found: dict[str, dict[str, Any]] = {}
        removed: list[str] = []
        delta_link = None
        async for page in self._delta_pages(cursor or f"{base}/delta", container):
            for root in page.get("value", []):
                if "@removed" in root:
                    removed.append(root["id"])
                    continue
                found[root["id"]] = root
                params = {"$top": str(self.page)}
                async for reply in self.session.items(f"{base}/{root['id']}/replies", params, PREFER):
                    found[f"{root['id']}/{reply['id']}"] = reply
            delta_link = page.get("@odata.deltaLink", delta_link)
        by_message = {id(message): source_id for source_id, message in found.items()}
        for message in oldest_first(found.values()):
            yield _ref(by_message[id(message)], message)
        for source_id in removed:
            yield Removed(source_id)
        if delta_link:
            yield Cursor(delta_link)

    async def _delta_pages(self, url: str, container: Container) -> AsyncIterator[dict[str, Any]]:
        """The delta's pages, with 410 turned into CursorExpired (and only for the delta's own requests)."""
        pages = self.session.pages(url, headers=PREFER)
        while True:
            try:
                page = await anext(pages)
            except StopAsyncIteration:
                return
            except GraphApiError as exc:
                if exc.status == 410:
                    raise CursorExpired(f"the delta token of channel {container.name} has expired") from None
                raise
            yield page

    # -- fetch ------------------------------------------------------------------------------------------

    async def fetch(self, user: User, container: Container, ref: ItemRef) -> Item:
        try:
            # A listing gives each message whole, as GET does; reading it again would spend one of the tenant's
            # 20 message reads a second on what the ledger already holds.
            message = json.loads(ref.listed) if ref.listed else await self.session.get_json(_message_url(container, ref.source_id), headers=PREFER)
            hosted = {content_id: await self._download(url) for content_id, url in self._hosted(message).items()}
        except GraphApiError as exc:
            raise item_failure(exc) from None
        message.pop("@odata.context", None)  # names the server, not the message: keeps the payload portable
        document = {"message": message, "hosted_sha256": {k: hashlib.sha256(v).hexdigest() for k, v in hosted.items()}}
        return Item(ref, Payload.from_bytes(canonical(document)), {"message": message, "hosted": hosted, "role": container.role})

    def _hosted(self, message: dict[str, Any]) -> dict[str, str]:
        """hostedContent id -> URL of every inline image, each once. Bodies name them by absolute Graph URLs; they are read
        from the Graph this session talks to (the same URL in production), so neither the token nor a request goes
        to a host a message body names."""
        content = (message.get("body") or {}).get("content") or ""
        found: dict[str, str] = {}
        for url, content_id in _HOSTED_SRC.findall(content):
            url = html.unescape(url)  # HTML escapes `&` in attribute values
            if url.startswith(self.session.graph_url + "/"):
                found[content_id] = url
            elif _API_VERSION.match(url):
                found[content_id] = self.session.url(_API_VERSION.sub("", url))
        return found

    async def _download(self, url: str) -> bytes:
        async with self.session.stream(url) as response:
            return await response.aread()


# -- helpers ----------------------------------------------------------------------------------------------


def _member_names(chat: dict[str, Any], user: User) -> str:
    others = sorted(m.get("displayName") or "" for m in chat.get("members") or [] if m.get("userId") != user.source_id)
    return ", ".join(name for name in others if name)


def _channel_base(container: Container) -> str:
    team_id, channel_id = container.source_id.split("/", 1)
    return f"teams/{team_id}/channels/{channel_id}/messages"


def _message_url(container: Container, source_id: str) -> str:
    if container.role != "channel":
        return f"chats/{container.source_id}/messages/{source_id}"
    root, _, reply = source_id.partition("/")
    base = f"{_channel_base(container)}/{root}"
    return f"{base}/replies/{reply}" if reply else base


def _ref(source_id: str, message: dict[str, Any]) -> ItemRef:
    # lastModifiedDateTime moves on every edit, reaction and soft delete; the etag is only a fallback.
    change_key = message.get("lastModifiedDateTime") or message.get("etag") or ""
    return ItemRef(source_id, change_key, "chatMessage", summary(message), listed=json.dumps(message, separators=(",", ":")))


def summary(message: dict[str, Any]) -> str:
    """A one-line plain-text label for listings and reports: who said what, or which event happened."""
    if message.get("deletedDateTime"):
        return "(deleted)"
    detail = (message.get("eventDetail") or {}).get("@odata.type", "")
    if detail:
        return "(" + detail.rsplit(".", 1)[-1].removesuffix("EventMessageDetail") + ")"
    body = message.get("body") or {}
    text = body.get("content") or ""
    if body.get("contentType") == "html":
        text = html.unescape(_TAG.sub(" ", text))
    text = " ".join(filter(None, [message.get("subject"), " ".join(text.split())]))
    sender = ((message.get("from") or {}).get("user") or {}).get("displayName")
    line = f"{sender}: {text}" if sender else text
    return line if len(line) <= SUMMARY_LENGTH else line[: SUMMARY_LENGTH - 1] + "…"


def oldest_first(messages) -> list[dict[str, Any]]:
    """Messages in the order they were written (Graph lists them newest first), so that a planned container's
    ledger order is its conversation order: a chat target replays them in that order."""
    return sorted(messages, key=lambda m: (datetime.fromisoformat(m.get("createdDateTime") or "1970-01-01T00:00:00+00:00"), m["id"]))


def _later(current: str | None, candidate: str | None) -> str | None:
    """The later of two Graph timestamps, compared as instants (Graph may vary the digits of the fraction)."""
    if not candidate:
        return current
    if not current or datetime.fromisoformat(candidate) > datetime.fromisoformat(current):
        return candidate
    return current
