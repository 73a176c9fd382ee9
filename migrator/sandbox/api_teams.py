"""Teams: chats with members and messages, teams with channels, root messages with their replies
(expanded or paged), channel message delta, and hosted contents. Message reads count against the
per-tenant Teams rate limit."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from migrator.sandbox.auth import require
from migrator.sandbox.content import Blob
from migrator.sandbox.gen_teams import (
    GRAPH_ROOT,
    ChatData,
    TeamData,
    build_chats,
    build_team,
    delete_message,
    edit_message,
    make_chat_message,
)
from migrator.sandbox.http import GraphError, Request, Response
from migrator.sandbox.odata import collection, entity, removed, select
from migrator.sandbox.store import Collection

if TYPE_CHECKING:
    from migrator.sandbox.app import GraphApp
    from migrator.sandbox.tenant import Tenant

MESSAGE_PAGE = 20
MESSAGE_MAX = 50


@dataclass
class Thread:
    """Messages of a chat or a channel, as served, plus the replies of channel threads."""

    messages: Collection
    replies: dict[str, Collection] = field(default_factory=dict)
    hosted: dict[tuple[str, str], Blob] = field(default_factory=dict)

    def message(self, message_id: str) -> dict[str, Any]:
        found = self.messages.get(message_id)
        if found is None:
            raise GraphError(404, "NotFound", "Message not found.")
        return found


@dataclass
class ChatState:
    data: ChatData
    thread: Thread

    # -- mutations, for tests and demos of delta passes ------------------------------------------

    def post(self, rng, sender: dict, html: str | None = None) -> dict[str, Any]:
        message = make_chat_message(rng, self.data, sender, when=dt.datetime.now(dt.UTC), html=html)
        self.thread.messages.upsert(message)
        return message

    def edit(self, message_id: str, html: str) -> dict[str, Any]:
        edited = edit_message(self.thread.message(message_id), html, dt.datetime.now(dt.UTC))
        self.thread.messages.upsert(edited)
        return edited

    def delete(self, message_id: str) -> dict[str, Any]:
        deleted = delete_message(self.thread.message(message_id), dt.datetime.now(dt.UTC))
        self.thread.messages.upsert(deleted)
        return deleted


def _thread(tenant: Tenant, messages: list[dict], hosted: dict, replies: dict[str, list[dict]] | None = None) -> Thread:
    store = Collection(tenant.clock)
    store.load(messages)
    thread = Thread(store, hosted=dict(hosted))
    for root_id, entries in (replies or {}).items():
        reply_store = Collection(tenant.clock)
        reply_store.load(entries)
        thread.replies[root_id] = reply_store
    return thread


def department_chats(tenant: Tenant, department: str) -> dict[str, Any]:
    """Chats of one department's people: by user id the chats they are in, and by chat id its state."""

    def build() -> dict[str, Any]:
        members = tenant.department_members(department)
        per_user = build_chats(tenant.rng("chats", department), members)
        states: dict[str, ChatState] = {}
        for chats in per_user.values():
            for chat in chats:
                if chat.chat["id"] not in states:
                    states[chat.chat["id"]] = ChatState(chat, _thread(tenant, chat.messages, chat.hosted_contents))
        return {"by_user": {uid: [c.chat["id"] for c in chats] for uid, chats in per_user.items()}, "chats": states}

    return tenant.lazy(("chats", department), build)


def department_team(tenant: Tenant, department: str) -> tuple[TeamData, dict[str, Thread]]:
    def build() -> tuple[TeamData, dict[str, Thread]]:
        team = build_team(tenant.rng("team", department), department, tenant.department_members(department))
        threads = {c.channel["id"]: _thread(tenant, c.messages, c.hosted_contents, c.replies) for c in team.channels}
        return team, threads

    return tenant.lazy(("team", department), build)



def register(app: GraphApp, tenant: Tenant) -> None:
    def chat_of(request: Request) -> ChatState:
        require(request.principal, "Chat.Read.All", "Chat.ReadBasic.All", "Chat.ReadWrite.All")
        for department in tenant.departments():
            state = department_chats(tenant, department)["chats"].get(request.params["chat"])
            if state is not None:
                return state
        raise GraphError(404, "NotFound", "Chat not found.")

    def team_of(request: Request) -> tuple[TeamData, dict[str, Thread]]:
        require(request.principal, "Team.ReadBasic.All", "TeamSettings.Read.All", "Group.Read.All")
        for department in tenant.departments():
            team, threads = department_team(tenant, department)
            if team.team["id"] == request.params["team"]:
                return team, threads
        raise GraphError(404, "NotFound", "No team found with Group Id " + request.params["team"])

    def channel_of(request: Request) -> tuple[dict, Thread]:
        team, threads = team_of(request)
        for channel in team.channels:
            if channel.channel["id"] == request.params["channel"]:
                return channel.channel, threads[channel.channel["id"]]
        raise GraphError(404, "NotFound", "Channel not found.")

    def list_chats(request: Request) -> Response:
        require(request.principal, "Chat.Read.All", "Chat.ReadBasic.All", "Chat.ReadWrite.All")
        user = tenant.user(request.params["user"])
        state = department_chats(tenant, user["department"])
        chats = [state["chats"][cid] for cid in state["by_user"].get(user["id"], [])]
        expand = request.query.get("$expand", "")

        def shape(chat: ChatState) -> dict:
            body = select(chat.data.chat, request)
            return {**body, "members": chat.data.members} if "members" in expand else body

        return collection(request, chats, f"users('{user['id']}')/chats", MESSAGE_PAGE, MESSAGE_MAX, shape=shape)

    def get_chat(request: Request) -> Response:
        chat = chat_of(request)
        return entity(request, "chats/$entity", select(chat.data.chat, request))

    def chat_members(request: Request) -> Response:
        chat = chat_of(request)
        return collection(request, chat.data.members, f"chats('{chat.data.chat['id']}')/members", MESSAGE_MAX)

    def chat_messages(request: Request) -> Response:
        chat = chat_of(request)
        messages = _ordered(chat.thread.messages.current(), request)
        return collection(request, messages, f"chats('{chat.data.chat['id']}')/messages", MESSAGE_PAGE, MESSAGE_MAX, shape=message_shape(request))

    def chat_message(request: Request) -> Response:
        chat = chat_of(request)
        message = chat.thread.message(request.params["message"])
        return entity(request, f"chats('{chat.data.chat['id']}')/messages/$entity", message_shape(request)(message))

    def hosted_list(request: Request) -> Response:
        thread = chat_of(request).thread if "chat" in request.params else channel_of(request)[1]
        thread.message(request.params["message"])
        found = [{"id": hc_id, "contentBytes": None, "contentType": None} for (mid, hc_id) in thread.hosted if mid == request.params["message"]]
        return collection(request, found, "hostedContents", MESSAGE_MAX)

    def hosted_value(request: Request) -> Response:
        thread = chat_of(request).thread if "chat" in request.params else channel_of(request)[1]
        blob = thread.hosted.get((request.params["message"], request.params["hosted"]))
        if blob is None:
            raise GraphError(404, "NotFound", "Hosted content not found.")
        return Response(200, blob.chunks(), {"Content-Type": "image/png"}, length=blob.size)

    def list_teams(request: Request) -> Response:
        require(request.principal, "Team.ReadBasic.All", "TeamSettings.Read.All", "Group.Read.All")
        teams = [department_team(tenant, d)[0].team for d in tenant.departments()]
        return collection(request, teams, "teams", MESSAGE_PAGE, shape=lambda t: select(t, request))

    def joined_teams(request: Request) -> Response:
        require(request.principal, "Team.ReadBasic.All", "TeamSettings.Read.All", "Group.Read.All")
        user = tenant.user(request.params["user"])
        team, _ = department_team(tenant, user["department"])
        return collection(request, [team.team], f"users('{user['id']}')/joinedTeams", MESSAGE_PAGE, shape=lambda t: select(t, request))

    def get_team(request: Request) -> Response:
        team, _ = team_of(request)
        return entity(request, "teams/$entity", select(team.team, request))

    def team_members(request: Request) -> Response:
        team, _ = team_of(request)
        return collection(request, team.members, f"teams('{team.team['id']}')/members", MESSAGE_MAX)

    def channels(request: Request) -> Response:
        team, _ = team_of(request)
        return collection(request, [c.channel for c in team.channels], f"teams('{team.team['id']}')/channels", MESSAGE_MAX, shape=lambda c: select(c, request))

    def get_channel(request: Request) -> Response:
        channel, _ = channel_of(request)
        return entity(request, "teams/channels/$entity", select(channel, request))

    def channel_messages(request: Request) -> Response:
        channel, thread = channel_of(request)
        expand = "replies" in request.query.get("$expand", "")
        context = f"teams('{request.params['team']}')/channels('{channel['id']}')/messages"
        return collection(request, _ordered(thread.messages.current(), request), context, MESSAGE_PAGE, MESSAGE_MAX,
                          shape=lambda m: _with_replies(request, thread, m, context, tenant.replies_expand_limit) if expand else message_shape(request)(m))

    def channel_message(request: Request) -> Response:
        _channel, thread = channel_of(request)
        message = thread.message(request.params["message"])
        return entity(request, "teams/channels/messages/$entity", message_shape(request)(message))

    def replies(request: Request) -> Response:
        _channel, thread = channel_of(request)
        thread.message(request.params["message"])
        found = thread.replies.get(request.params["message"])
        entries = _ordered(found.current() if found else [], request)
        return collection(request, entries, f"teams/channels/messages('{request.params['message']}')/replies", MESSAGE_PAGE, MESSAGE_MAX,
                          shape=message_shape(request))

    def reply(request: Request) -> Response:
        _, thread = channel_of(request)
        found = thread.replies.get(request.params["message"])
        entry = found.get(request.params["reply"]) if found else None
        if entry is None:
            raise GraphError(404, "NotFound", "Message not found.")
        return entity(request, "teams/channels/messages/replies/$entity", message_shape(request)(entry))

    def reply_hosted_value(request: Request) -> Response:
        _, thread = channel_of(request)
        blob = thread.hosted.get((request.params["reply"], request.params["hosted"]))
        if blob is None:
            raise GraphError(404, "NotFound", "Hosted content not found.")
        return Response(200, blob.chunks(), {"Content-Type": "image/png"}, length=blob.size)

    def channel_delta(request: Request) -> Response:
        channel, thread = channel_of(request)
        return tenant.delta.respond(request, f"channel/{channel['id']}", thread.messages, "chatMessages/delta", MESSAGE_PAGE,
                                    message_shape(request),
                                    removed("chatMessage"))

    teams_reads = {"mailbox": False, "teams_messages": True}
    directory = {"mailbox": False}
    app.route("GET", "/users/{user}/chats", list_chats, **directory)
    app.route("GET", "/chats/{chat}", get_chat, **directory)
    app.route("GET", "/chats/{chat}/members", chat_members, **directory)
    app.route("GET", "/chats/{chat}/messages", chat_messages, **teams_reads)
    app.route("GET", "/chats/{chat}/messages/{message}", chat_message, **teams_reads)
    app.route("GET", "/chats/{chat}/messages/{message}/hostedContents", hosted_list, **teams_reads)
    app.route("GET", "/chats/{chat}/messages/{message}/hostedContents/{hosted}/$value", hosted_value, **teams_reads)
    app.route("GET", "/teams", list_teams, **directory)
    app.route("GET", "/users/{user}/joinedTeams", joined_teams, **directory)
    app.route("GET", "/teams/{team}", get_team, **directory)
    app.route("GET", "/teams/{team}/members", team_members, **directory)
    app.route("GET", "/teams/{team}/channels", channels, **directory)
    app.route("GET", "/teams/{team}/channels/{channel}", get_channel, **directory)
    app.route("GET", "/teams/{team}/channels/{channel}/messages/delta", channel_delta, **teams_reads)
    app.route("GET", "/teams/{team}/channels/{channel}/messages", channel_messages, **teams_reads)
    app.route("GET", "/teams/{team}/channels/{channel}/messages/{message}", channel_message, **teams_reads)
    app.route("GET", "/teams/{team}/channels/{channel}/messages/{message}/replies", replies, **teams_reads)
    app.route("GET", "/teams/{team}/channels/{channel}/messages/{message}/replies/{reply}", reply, **teams_reads)
    app.route("GET", "/teams/{team}/channels/{channel}/messages/{message}/replies/{reply}/hostedContents/{hosted}/$value", reply_hosted_value, **teams_reads)
    app.route("GET", "/teams/{team}/channels/{channel}/messages/{message}/hostedContents", hosted_list, **teams_reads)
    app.route("GET", "/teams/{team}/channels/{channel}/messages/{message}/hostedContents/{hosted}/$value", hosted_value, **teams_reads)


def message_shape(request: Request):
    """Graph shows system messages as `unknownFutureValue` unless the caller opts in to newer enum members."""
    opted_in = "include-unknown-enum-members" in request.header("prefer")

    here = f"{request.base_url}/v1.0"

    def shape(message: dict) -> dict:
        body = select(message, request)
        if body.get("messageType") == "systemEventMessage" and not opted_in:
            body = {**body, "messageType": "unknownFutureValue"}
        content = (body.get("body") or {}).get("content") or ""
        if GRAPH_ROOT in content:  # inline images link to this server, as Graph's link to Graph
            body = {**body, "body": {**body["body"], "content": content.replace(GRAPH_ROOT, here)}}
        return body

    return shape


def _ordered(messages: list[dict], request: Request) -> list[dict]:
    """Newest first, as Graph lists chat and channel messages; $orderby picks the timestamp."""
    order = request.query.get("$orderby", "createdDateTime desc")
    key = "lastModifiedDateTime" if order.startswith("lastModifiedDateTime") else "createdDateTime"
    found = request.query.get("$filter", "")
    if found.startswith((f"{key} gt ", f"{key} lt ")):
        _, op, value = found.split(" ", 2)
        messages = [m for m in messages if (m.get(key) or "") > value] if op == "gt" else [m for m in messages if (m.get(key) or "") < value]
    return sorted(messages, key=lambda m: m.get(key) or "", reverse=True)


def _with_replies(request: Request, thread: Thread, message: dict, context: str, limit: int) -> dict:
    found = thread.replies.get(message["id"])
    entries = sorted(found.current() if found else [], key=lambda m: m.get("createdDateTime") or "", reverse=True)
    shape = message_shape(request)
    body = {**shape(message), "replies": [shape(r) for r in entries[:limit]]}
    if len(entries) > limit:
        body["replies@odata.nextLink"] = f"{request.base_url}/v1.0/{context}/{message['id']}/replies?$top={min(limit, MESSAGE_MAX)}&$skip={limit}"
    return body
