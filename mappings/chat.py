"""Teams chats and channels -> Matrix rooms; Teams messages -> the Matrix events that retell them.

A chat or channel becomes one room, found again through an alias derived from its Teams id (a chat is listed
under each of its members; all of them land in the same room). Its target path is (room key, name, topic).

A message becomes a *plan*: the events to send, in order, each with a stable part key, a sender (a ghost user
of the application service's namespace, or None for the service's own bot) and the original time. The first
part is the message itself; inline images follow as `m.image` events, then reactions as `m.annotation`s. What
only the homeserver can say (event ids of thread roots and quoted messages, mxc:// URIs of uploads) is left to
the sink, named by source message id or hosted-content id.

Pure: no I/O, no clock. Edited messages carry their last version; deleted ones are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from mappings.chat_html import Hooks, render_html
from migrator.contracts import WorkloadMapping
from migrator.model import Container, Item, Payload, Skip, Target

PLAN_KIND = "matrix.chat"
SOURCE_KEY = "org.m365migrator.source"  # custom content key: part key, and on messages the plan's hash and size
MATRIX_TO = "https://matrix.to/#/"
REACTIONS = {"like": "👍", "heart": "❤️", "laugh": "😆", "surprised": "😮", "sad": "😢", "angry": "😡"}
_HOSTED = re.compile(r"/hostedContents/([^/\"']+)/\$value")
_FRACTION = re.compile(r"\.\d+")
_EMPTY_PARAGRAPH = re.compile(r"<p>\s*</p>")
_LOCALPART_UNSAFE = re.compile(r"[^a-z0-9._=/-]")
_IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png", "png"), (b"\xff\xd8\xff", "image/jpeg", "jpg"),
                (b"GIF8", "image/gif", "gif"), (b"RIFF", "image/webp", "webp"))


@dataclass(frozen=True)
class ChatOptions:
    server_name: str
    ghost_prefix: str = "teams_"  # localpart prefix of imported senders: the appservice's exclusive namespace
    room_prefix: str = "teams_"  # alias localpart prefix of imported rooms


# -- identities -----------------------------------------------------------------------------------------------


def ghost_id(source_user_id: str, options: ChatOptions) -> str:
    """The Matrix user an imported Teams sender posts as; stable for a Graph user (or app) id."""
    local = _LOCALPART_UNSAFE.sub("_", source_user_id.lower())
    return f"@{options.ghost_prefix}{local}:{options.server_name}"


def _identity(identity_set: dict[str, Any] | None) -> tuple[str, str] | None:
    """(source id, display name) of a Graph identitySet: a user, else an app (bots post too)."""
    for kind in ("user", "application"):
        found = (identity_set or {}).get(kind) or {}
        if found.get("id"):
            return found["id"], found.get("displayName") or ""
    return None


# -- rooms ----------------------------------------------------------------------------------------------------


def room_key(container: Container) -> str:
    return hashlib.sha256(container.source_id.encode()).hexdigest()[:24]


def container_path(container: Container) -> tuple[str, ...]:
    """(room key, room name, topic). A 1:1 chat has no name: clients name it after the other person."""
    if container.role == "channel":
        team, channel = (container.path[0], container.path[-1]) if len(container.path) >= 2 else ("", container.name)
        name = f"{team} / {channel}" if team else channel
        return room_key(container), name, f"Microsoft Teams channel {channel} of team {team}".strip()
    name = "" if container.role == "oneOnOne" else container.name
    return room_key(container), name, f"Microsoft Teams chat ({container.role})"


def room_spec(path: tuple[str, ...], options: ChatOptions, creator: str, invite: list[str]) -> dict[str, Any]:
    """The createRoom request for a target path: private, invite-only, history visible to members from before they
    joined (imported history predates every join), the creating bot the only admin."""
    key, name, topic = (tuple(path) + ("", "", ""))[:3]
    body: dict[str, Any] = {
        "room_alias_name": alias_localpart(key, options),
        "preset": "private_chat",
        "visibility": "private",
        "invite": sorted(set(invite)),
        "initial_state": [{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}}],
        "power_level_content_override": {  # the creator is admin by creating (room version 12 forbids naming it)
            "users_default": 0,
            "events_default": 0,
            "state_default": 50,
            "invite": 50,
            "redact": 50,
        },
    }
    if name:
        body["name"] = name
    if topic:
        body["topic"] = topic
    return body


def alias_localpart(key: str, options: ChatOptions) -> str:
    local = _LOCALPART_UNSAFE.sub("_", key.lower()).replace("/", "_")
    if local != key:  # a path that is not already a key (a hand-named room) stays unique after cleaning
        local += "_" + hashlib.sha256(key.encode()).hexdigest()[:8]
    return options.room_prefix + local


# -- messages -------------------------------------------------------------------------------------------------


def epoch_ms(timestamp: str) -> int:
    """Milliseconds since the epoch of a Graph timestamp (which may carry up to seven fraction digits)."""
    text = _FRACTION.sub(lambda m: m.group(0)[:7], timestamp.replace("Z", "+00:00"))
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def image_info(data: bytes) -> dict[str, Any]:
    """mimetype, size and (for PNG) pixel size of an inline image, from its bytes."""
    mimetype = next((kind for signature, kind, _ in _IMAGE_TYPES if data.startswith(signature)), "application/octet-stream")
    info: dict[str, Any] = {"mimetype": mimetype, "size": len(data)}
    if mimetype == "image/png" and len(data) >= 24:
        info["w"], info["h"] = struct.unpack(">II", data[16:24])
    return info


def _extension(mimetype: str) -> str:
    return next((ext for _, kind, ext in _IMAGE_TYPES if kind == mimetype), "bin")


def reaction_key(reaction_type: str) -> str:
    return REACTIONS.get(reaction_type.lower(), reaction_type if not reaction_type.isascii() else f":{reaction_type}:")


def map_message(item: Item, container: Container, options: ChatOptions) -> Target | Skip:
    message: dict[str, Any] = item.metadata["message"]
    hosted: dict[str, bytes] = item.metadata.get("hosted") or {}
    if message.get("deletedDateTime"):
        return Skip(f"deleted in Teams at {message['deletedDateTime']}", deleted_at_source=True)
    kind = message.get("messageType")
    if kind not in ("message", "systemEventMessage"):
        return Skip(f"Teams {kind} entries are not messages")
    plan = message_plan(message, container, options, hosted)
    payload = json.dumps(plan, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    media = {part["media"]: hosted[part["media"]] for part in plan["parts"] if part.get("media")}
    return Target(dest_key=f"{room_key(container)}/{message['id']}", payload=Payload.from_bytes(payload),
                  metadata={"kind": PLAN_KIND, "media": media})


def message_plan(message: dict[str, Any], container: Container, options: ChatOptions, hosted: dict[str, bytes]) -> dict[str, Any]:
    message_id, ts = message["id"], epoch_ms(message["createdDateTime"])
    sender = _identity(message.get("from"))
    sender_id = ghost_id(sender[0], options) if sender else None
    names: dict[str, str] = {}
    if sender and sender_id:
        names[sender_id] = sender[1]
    if message.get("messageType") == "systemEventMessage":
        content, reply_to = _system_notice(message.get("eventDetail") or {}, options, names), None
        sender_id = None  # Teams shows events without a sender: the service's bot posts them
        image_ids: list[str] = []
    else:
        content, reply_to, image_ids = _message_content(message, options, hosted, names)
    thread_root = message.get("replyToId") if container.role == "channel" else None
    parts: list[dict[str, Any]] = []
    if content["body"] or not image_ids:
        parts.append({"key": message_id, "type": "m.room.message", "sender": sender_id, "ts": ts, "content": content})
    for content_id in image_ids:
        data = hosted[content_id]
        info = image_info(data)
        name = f"image-{message_id}-{len(parts) + 1}.{_extension(info['mimetype'])}"
        key = message_id if not parts else f"{message_id}#image:{hashlib.sha256(content_id.encode()).hexdigest()[:16]}"
        parts.append({"key": key, "type": "m.room.message", "sender": sender_id, "ts": ts, "media": content_id,
                      "content": {"msgtype": "m.image", "body": name, "info": info}})
    for reaction in message.get("reactions") or []:
        who = _identity(reaction.get("user"))
        if who is None:
            continue
        reactor = ghost_id(who[0], options)
        if who[1]:
            names.setdefault(reactor, who[1])
        emoji = reaction_key(reaction.get("reactionType") or "")
        parts.append({"key": f"{message_id}#reaction:{who[0]}:{reaction.get('reactionType')}", "type": "m.reaction",
                      "sender": reactor, "ts": epoch_ms(reaction.get("createdDateTime") or message["createdDateTime"]),
                      "annotates": message_id, "content": {"m.relates_to": {"rel_type": "m.annotation", "key": emoji}}})
    return {"id": message_id, "parts": parts, "thread_root": thread_root if thread_root != message_id else None,
            "reply_to": reply_to, "names": dict(sorted(names.items()))}


def _message_content(message: dict[str, Any], options: ChatOptions, hosted: dict[str, bytes],
                     names: dict[str, str]) -> tuple[dict[str, Any], str | None, list[str]]:
    """(event content, source id of a quoted message, hosted-content ids of inline images in order)."""
    body = message.get("body") or {}
    mentions = {str(m.get("id")): m for m in message.get("mentions") or []}
    attachments = {a.get("id"): a for a in message.get("attachments") or []}
    quoted: list[str] = []

    def mention(at_id: str, label: str) -> tuple[str, str] | None:
        found = _identity((mentions.get(at_id) or {}).get("mentioned"))
        if found is None:
            return None
        user = ghost_id(found[0], options)
        if found[1]:
            names.setdefault(user, found[1])
        return MATRIX_TO + user, label or (mentions[at_id].get("mentionText") or found[1] or user)

    def attachment(attachment_id: str) -> tuple[str, str]:
        markup, plain, source = _attachment(attachments.get(attachment_id) or {})
        if source:
            quoted.append(source)
        return markup, plain

    if body.get("contentType") == "html":
        rendered = render_html(body.get("content") or "", Hooks(mention=mention, attachment=attachment))
        formatted, plain, mentioned = _EMPTY_PARAGRAPH.sub("", rendered.formatted), rendered.plain, rendered.mentioned_ids
        images = [m.group(1) for src in rendered.image_sources if (m := _HOSTED.search(src))]
        met = set(rendered.attachment_ids)
    else:
        formatted, plain, mentioned, images, met = "", (body.get("content") or "").strip(), (), [], set()
    for attachment_id, entry in attachments.items():  # attachments the body does not place: after the text
        if attachment_id not in met:
            markup, text, source = _attachment(entry)
            formatted, plain = formatted + markup, (plain + "\n\n" + text).strip()
            quoted.extend([source] if source else [])
    missing = [cid for cid in images if cid not in hosted]
    if missing:
        note = f"[{len(missing)} inline image(s) could not be read from Teams]"
        formatted, plain = formatted + f"<p><em>{note}</em></p>", (plain + "\n\n" + note).strip()
    subject = (message.get("subject") or "").strip()
    if subject:
        formatted = f"<p><strong>{_escape(subject)}</strong></p>" + (formatted or f"<p>{_escape(plain)}</p>")
        plain = f"{subject}\n\n{plain}".strip()
    content: dict[str, Any] = {"msgtype": "m.text", "body": plain}
    if formatted and (formatted != _escape(plain) or subject):
        content["format"] = "org.matrix.custom.html"
        content["formatted_body"] = formatted
    users = []
    for at_id in mentioned:
        found = _identity((mentions.get(at_id) or {}).get("mentioned"))
        if found and ghost_id(found[0], options) not in users:
            users.append(ghost_id(found[0], options))
    content["m.mentions"] = {"user_ids": users} if users else {}
    return content, (quoted[0] if quoted else None), list(dict.fromkeys(cid for cid in images if cid in hosted))


def _attachment(entry: dict[str, Any]) -> tuple[str, str, str | None]:
    """(html, plain text, quoted message id) for one Teams attachment."""
    kind = entry.get("contentType") or ""
    if kind == "messageReference":
        try:
            reference = json.loads(entry.get("content") or "{}")
        except json.JSONDecodeError:
            reference = {}
        who = (_identity(reference.get("messageSender")) or ("", ""))[1]
        preview = reference.get("messagePreview") or ""
        lead = f"{who}: " if who else ""
        return (f"<blockquote><p>{_escape(lead)}{_escape(preview)}</p></blockquote>",
                f"> {lead}{preview}", reference.get("messageId") or entry.get("id"))
    name = entry.get("name") or "attachment"
    url = entry.get("contentUrl") or ""
    if kind == "reference" and url.startswith("https://"):
        note = "file in SharePoint/OneDrive, not copied with the chat"
        url = quote(url, safe=":/?&=#%@+,;~")
        return (f'<p>📎 <a href="{_escape(url, True)}">{_escape(name)}</a> <em>({note})</em></p>',
                f"📎 {name} ({note}: {url})", None)
    return f"<p>📎 <em>{_escape(name)} ({kind or 'attachment'} not moved)</em></p>", f"📎 {name} ({kind or 'attachment'} not moved)", None


def _escape(text: str, quote: bool = False) -> str:
    return html.escape(text, quote=quote)


# -- system events --------------------------------------------------------------------------------------------


def _pill(identity_set: dict[str, Any] | None, options: ChatOptions, names: dict[str, str]) -> tuple[str, str]:
    """(html, plain) naming a person in a notice; the plain form falls back to the Matrix id."""
    found = _identity(identity_set)
    if found is None:
        return "someone", "someone"
    user = ghost_id(found[0], options)
    label = found[1] or names.get(user) or user
    return f'<a href="{MATRIX_TO}{user}">{_escape(label)}</a>', label


def _people(entries: list[dict[str, Any]], options: ChatOptions, names: dict[str, str]) -> tuple[str, str]:
    pills = [_pill({"user": entry}, options, names) for entry in entries]
    return ", ".join(p[0] for p in pills) or "nobody", ", ".join(p[1] for p in pills) or "nobody"


def _duration(text: str) -> str:
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?", text or "")
    if not match:
        return text or "?"
    hours, minutes, seconds = (int(float(v)) if v else 0 for v in match.groups())
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _system_notice(detail: dict[str, Any], options: ChatOptions, names: dict[str, str]) -> dict[str, Any]:
    kind = (detail.get("@odata.type") or "").rsplit(".", 1)[-1].removesuffix("EventMessageDetail")
    who_html, who = _pill(detail.get("initiator"), options, names)
    if kind in ("membersAdded", "membersDeleted", "membersJoined", "membersLeft"):
        verb = {"membersAdded": "added", "membersDeleted": "removed", "membersJoined": "joined with", "membersLeft": "left with"}[kind]
        people_html, people = _people(detail.get("members") or [], options, names)
        formatted, plain = f"{who_html} {verb} {people_html}", f"{who} {verb} {people}"
    elif kind == "chatRenamed":
        topic = detail.get("chatDisplayName") or ""
        formatted, plain = f"{who_html} renamed the chat to “{_escape(topic)}”", f"{who} renamed the chat to “{topic}”"
    elif kind == "callStarted":
        what = "meeting" if detail.get("callEventType") == "meeting" else "call"
        formatted, plain = f"{who_html} started a {what}", f"{who} started a {what}"
    elif kind == "callEnded":
        what = "Meeting" if detail.get("callEventType") == "meeting" else "Call"
        people_html, people = _people([p.get("participant", {}).get("user") or {} for p in detail.get("callParticipants") or []], options, names)
        length = _duration(detail.get("callDuration") or "")
        formatted, plain = f"{what} ended after {length}; taking part: {people_html}", f"{what} ended after {length}; taking part: {people}"
    elif kind == "channelAdded":
        channel = detail.get("channelDisplayName") or ""
        formatted, plain = f"{who_html} added the channel “{_escape(channel)}”", f"{who} added the channel “{channel}”"
    else:
        formatted, plain = f"Teams event: {_escape(kind or 'unknown')}", f"Teams event: {kind or 'unknown'}"
    return {"msgtype": "m.notice", "body": plain, "format": "org.matrix.custom.html", "formatted_body": formatted,
            "m.mentions": {}}


def chat_mapping(options: ChatOptions) -> WorkloadMapping:
    return WorkloadMapping(container_path=container_path, item=lambda item, container: map_message(item, container, options))
