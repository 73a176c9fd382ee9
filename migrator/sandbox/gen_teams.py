"""Teams chats, teams, channels and their messages for the sandbox tenant, in the JSON shapes Graph v1.0 returns.

A migrator meets far more than plain text in Teams: mentions that must line up with `<at>` tags, inline images
fetched from `hostedContents`, file links into SharePoint/OneDrive, quoted replies, system events with a dozen
`eventDetail` subtypes, edited and soft-deleted messages, reactions, and markup that has to be sanitised before it
lands anywhere else. Every one of those appears here, deterministically from the caller's `rng`.

Shapes follow the Graph v1.0 reference and its examples (chatMessage, chat, channel, team, aadUserConversationMember,
chatMessageMention/Reaction/Attachment, the *EventMessageDetail types, "Get system messages"). Two deliberate
choices the server should know:

* Identities carry `"@odata.type": "#microsoft.graph.teamworkUserIdentity"` and `tenantId`, as Graph's own
  get-message example does. `tenantId` is a dynamic property Graph adds; the SDK model does not declare it.
* `messageType` is stored as `systemEventMessage`. Graph only returns that value to callers sending
  `Prefer: include-unknown-enum-members`; without the header it says `unknownFutureValue`.
"""

from __future__ import annotations

import base64
import html
import json
import random
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from migrator.sandbox.content import Blob, BytesBlob
from migrator.sandbox.names import DOMAIN, TENANT_ID, TOPICS, guid

GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
TEAMS_WEB = "https://teams.microsoft.com"
# SharePoint host names drop everything but letters and digits from the tenant name ("contoso-overheid" -> ...).
TENANT_LABEL = re.sub(r"[^a-z0-9]", "", DOMAIN.split(".")[0].lower())
SHAREPOINT_HOST = f"{TENANT_LABEL}.sharepoint.com"
ONEDRIVE_HOST = f"{TENANT_LABEL}-my.sharepoint.com"
# Graph's way of saying "this member sees the whole history".
ALL_HISTORY = "0001-01-01T00:00:00Z"
SYSTEM_EVENT_BODY = "<systemEventMessage/>"
USER_IDENTITY = "#microsoft.graph.teamworkUserIdentity"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000
# The synthetic tenant's Teams history starts here; everything is placed within a few months after it.
START_MS = (datetime(2025, 1, 6, 8, 0, tzinfo=UTC) - _UNIX) // timedelta(milliseconds=1)


# --------------------------------------------------------------------------------------------------------------
# Public data shapes


@dataclass
class ChatData:
    """One chat. The same object is listed under each member, so the server can mutate it in one place."""

    chat: dict
    members: list[dict]
    messages: list[dict]
    hosted_contents: dict[tuple[str, str], Blob] = field(default_factory=dict)


@dataclass
class ChannelData:
    """One channel: root messages, their replies by root id, and the bytes behind inline images keyed by
    (message id, hostedContent id); for an image in a reply the message id is the reply's."""

    channel: dict
    messages: list[dict]
    replies: dict[str, list[dict]]
    hosted_contents: dict[tuple[str, str], Blob] = field(default_factory=dict)
    # For /teams/{id}/channels/{id}/members: the team's members for standard channels, a subset for private ones.
    members: list[dict] = field(default_factory=list)


@dataclass
class TeamData:
    """A department's team; `channels` starts with General."""

    team: dict
    members: list[dict]
    channels: list[ChannelData]
    # The team site the channel file links point into, e.g. https://<tenant>.sharepoint.com/sites/Financien.
    site_url: str = ""


# --------------------------------------------------------------------------------------------------------------
# Time and ids


def _ms(when: datetime) -> int:
    """Milliseconds since the Unix epoch; naive datetimes are taken as UTC, never as local time."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _UNIX) // timedelta(milliseconds=1)


def _iso(ms: int) -> str:
    """Graph's timestamp form: UTC, millisecond precision, trailing Z."""
    return (_UNIX + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _gap(rng: random.Random) -> int:
    """Time between two messages: mostly minutes, sometimes hours, now and then days."""
    roll = rng.random()
    if roll < 0.6:
        return rng.randint(20_000, 15 * 60_000)
    if roll < 0.9:
        return rng.randint(15 * 60_000, 5 * 3_600_000)
    return rng.randint(5 * 3_600_000, 3 * _DAY_MS)


def _duration(seconds: int) -> str:
    """ISO 8601 duration as Graph writes callDuration, e.g. PT23M11S."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + f"{secs}S"


def _hex(rng: random.Random, bits: int = 128) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _thread_id(rng: random.Random, suffix: str) -> str:
    """Group chats are `19:<hex>@thread.v2`, channels `19:<hex>@thread.tacv2`."""
    return f"19:{_hex(rng)}@{suffix}"


def _one_on_one_id(a: dict, b: dict) -> str:
    # Graph names a 1:1 chat after both user ids; sorting makes the id independent of who started it.
    first, second = sorted((a["id"], b["id"]))
    return f"19:{first}_{second}@unq.gbl.spaces"


def _meeting_chat_id(rng: random.Random) -> str:
    return f"19:meeting_{_b64(guid(rng))}@thread.v2"


def _hosted_content_id(rng: random.Random) -> str:
    """Opaque like Graph's: base64 of an ASM object reference. All-ASCII text without `>?~` never yields `/` or `+`,
    so the id is safe in a URL path as it is."""
    obj = f"0-weu-d{rng.randint(1, 9)}-{_hex(rng)}"
    return _b64(f"id=x_{obj},type=1,url=https://eu-api.asm.skype.com/v1/objects/{obj}/views/imgo")


def _member_id(thread_id: str, user_id: str) -> str:
    """Membership ids are base64 of tenant, thread and user, as Graph's are."""
    return _b64(f"0##{TENANT_ID}##{thread_id}##{user_id}")


# --------------------------------------------------------------------------------------------------------------
# Identities and members


def _user_identity(user: dict, *, named: bool = True) -> dict:
    return {
        "@odata.type": USER_IDENTITY,
        "id": user["id"],
        "displayName": user["displayName"] if named else None,
        "userIdentityType": "aadUser",
        "tenantId": TENANT_ID,
    }


def _identity_set(user: dict, *, named: bool = True) -> dict:
    return {"application": None, "device": None, "user": _user_identity(user, named=named)}


def _member(thread_id: str, user: dict, roles: list[str], visible_from: str = ALL_HISTORY) -> dict:
    return {
        "@odata.type": "#microsoft.graph.aadUserConversationMember",
        "id": _member_id(thread_id, user["id"]),
        "roles": roles,
        "displayName": user["displayName"],
        "visibleHistoryStartDateTime": visible_from,
        "userId": user["id"],
        "email": user.get("mail") or user.get("userPrincipalName"),
        "tenantId": TENANT_ID,
    }


# --------------------------------------------------------------------------------------------------------------
# Where a message lives


@dataclass
class _Place:
    """A chat or a channel: what message builders need for ids, URLs and who can take part."""

    people: list[dict]
    hosted: dict[tuple[str, str], Blob]
    chat_id: str | None = None
    team_id: str | None = None
    channel_id: str | None = None
    channel_name: str = ""
    site: str = ""
    taken: set[int] = field(default_factory=set)

    def claim(self, ms: int) -> int:
        """Message ids are creation milliseconds; two messages in one conversation never share one."""
        while ms in self.taken:
            ms += 1
        self.taken.add(ms)
        return ms

    def image_url(self, message_id: str, root_id: str | None, content_id: str) -> str:
        if self.chat_id:
            return f"{GRAPH_ROOT}/chats/{self.chat_id}/messages/{message_id}/hostedContents/{content_id}/$value"
        base = f"{GRAPH_ROOT}/teams/{self.team_id}/channels/{self.channel_id}/messages"
        if root_id:
            return f"{base}/{root_id}/replies/{message_id}/hostedContents/{content_id}/$value"
        return f"{base}/{message_id}/hostedContents/{content_id}/$value"

    def file_url(self, sender: dict, name: str) -> str:
        """Chat files live in the sender's OneDrive, channel files in the team site's channel folder."""
        if self.chat_id:
            owner = re.sub(r"[^a-z0-9]", "_", sender["userPrincipalName"].lower())
            return f"https://{ONEDRIVE_HOST}/personal/{owner}/Documents/Microsoft Teams Chat Files/{name}"
        return f"https://{SHAREPOINT_HOST}/sites/{self.site}/Shared Documents/{self.channel_name}/{name}"

    def web_url(self, message_id: str, root_id: str | None) -> str | None:
        if self.chat_id:
            return None  # Graph leaves webUrl null on chat messages
        return (
            f"{TEAMS_WEB}/l/message/{quote(self.channel_id, safe='')}/{message_id}?groupId={self.team_id}"
            f"&tenantId={TENANT_ID}&createdTime={message_id}&parentMessageId={root_id or message_id}"
        )

    def channel_identity(self) -> dict | None:
        return {"teamId": self.team_id, "channelId": self.channel_id} if self.channel_id else None


def _message(
    place: _Place,
    ms: int,
    sender: dict | None,
    body: dict,
    *,
    reply_to: str | None = None,
    subject: str | None = None,
    importance: str = "normal",
    mentions: list[dict] | None = None,
    attachments: list[dict] | None = None,
) -> dict:
    """A chatMessage with every property Graph returns, in Graph's order; system events have no sender."""
    message_id = str(ms)
    return {
        "id": message_id,
        "replyToId": reply_to,
        "etag": message_id,
        "messageType": "message",
        "createdDateTime": _iso(ms),
        "lastModifiedDateTime": _iso(ms),
        "lastEditedDateTime": None,
        "deletedDateTime": None,
        "subject": subject,
        "summary": None,
        "chatId": place.chat_id,
        "importance": importance,
        "locale": "en-us",
        "webUrl": place.web_url(message_id, reply_to),
        "channelIdentity": place.channel_identity(),
        "policyViolation": None,
        "eventDetail": None,
        "from": _identity_set(sender) if sender else None,
        "body": body,
        "attachments": attachments or [],
        "mentions": mentions or [],
        "reactions": [],
        "messageHistory": [],
    }


def _event(place: _Place, ms: int, detail: dict, *, reply_to: str | None = None) -> dict:
    message = _message(place, ms, None, {"contentType": "html", "content": SYSTEM_EVENT_BODY}, reply_to=reply_to)
    message["messageType"] = "systemEventMessage"
    message["eventDetail"] = detail
    return message


# --------------------------------------------------------------------------------------------------------------
# System event details (initiators carry no display name, as in Graph's examples)


def _members_added(initiator: dict, added: list[dict], visible_from: str) -> dict:
    return {
        "@odata.type": "#microsoft.graph.membersAddedEventMessageDetail",
        "visibleHistoryStartDateTime": visible_from,
        "members": [{"id": u["id"], "displayName": None, "userIdentityType": "aadUser"} for u in added],
        "initiator": _identity_set(initiator, named=False),
    }


def _chat_renamed(chat_id: str, topic: str, initiator: dict) -> dict:
    return {
        "@odata.type": "#microsoft.graph.chatRenamedEventMessageDetail",
        "chatId": chat_id,
        "chatDisplayName": topic,
        "initiator": _identity_set(initiator, named=False),
    }


def _call_started(call_id: str, kind: str, initiator: dict) -> dict:
    return {
        "@odata.type": "#microsoft.graph.callStartedEventMessageDetail",
        "callId": call_id,
        "callEventType": kind,
        "initiator": _identity_set(initiator, named=False),
    }


def _call_ended(call_id: str, kind: str, seconds: int, participants: list[dict], initiator: dict) -> dict:
    return {
        "@odata.type": "#microsoft.graph.callEndedEventMessageDetail",
        "callId": call_id,
        "callDuration": _duration(seconds),
        "callEventType": kind,
        "callParticipants": [{"participant": _identity_set(u)} for u in participants],
        "initiator": _identity_set(initiator, named=False),
    }


def _channel_added(channel: dict, initiator: dict) -> dict:
    return {
        "@odata.type": "#microsoft.graph.channelAddedEventMessageDetail",
        "channelId": channel["id"],
        "channelDisplayName": channel["displayName"],
        "initiator": _identity_set(initiator, named=False),
    }


# --------------------------------------------------------------------------------------------------------------
# Words. Dutch like the rest of the tenant, with the non-ASCII text and emoji that break naive exporters.

SENTENCES = (
    "Heb je de stukken over {topic} al gezien?",
    "Ik zet {topic} op de agenda voor donderdag ☕",
    "Kleine update over {topic}: we liggen op schema 👍",
    "Wie pakt de reactie op {topic} op?",
    "Dank je! Ik kijk er vanmiddag naar 🙏",
    "Kunnen we {topic} even kort afstemmen? Om 14:00 past mij goed.",
    "Naïeve vraag misschien, maar wat is de status van {topic}?",
    "De deadline voor {topic} schuift naar vrijdag – €2.450 extra is goedgekeurd.",
    "Top, dank voor het snelle schakelen! 🎉",
    "Çok teşekkürler — ik stuur het door naar de coördinator.",
    "Überprüfung van {topic} is afgerond ✅",
    "Status {topic}: 80% klaar, de rest volgt «na het reces».",
    "Overleg verplaatst naar zaal 3.14 (oude gebouw) 🏢",
    "Tekens-test: 日本語, ελληνικά, العربية, emoji 👩🏽‍💻 — komt alles goed door?",
    "Ik ben morgen vrij; mijn vervanger weet van {topic}.",
    "Zijn de cijfers voor {topic} al gecontroleerd door de controller?",
    "Goed idee, laten we dat zo doen.",
    "Even checken: geldt dit ook voor {topic}? 🤔",
    "Concept staat klaar, graag jullie feedback vóór 12:00.",
    "Nog één ding: <niet> vergeten om de bijlage te anonimiseren & te archiveren.",
)
SUBJECTS = ("Vraag over {topic}", "{Topic}", "Planning {topic}", "Besluit nodig: {topic}", "Terugkoppeling {topic}")
FILES = (
    "Begroting 2027 – concept v2.xlsx", "Notulen ketenoverleg 12-03.docx",
    "Beleidsnota informatiebeveiliging (def).pdf",
    "Überblick Q3.pptx", "Çalışma planı.docx", "Persbericht_concept.docx", "Auditbevindingen nr. 4.xlsx",
    "Plattegrond huisvesting.pdf", "Reactie Wob-verzoek — geanonimiseerd.docx",
)
CHANNELS = (
    ("Beleid & Strategie", "Beleidsvorming en strategische keuzes"),
    ("Projecten", "Lopende projecten en mijlpalen"),
    ("Koffiehoek ☕", "Alles wat niet over werk gaat 🎈"),
    ("Vragen / Antwoorden", "Stel hier je vraag aan het team"),
    ("Overleg — intern", "Voorbereiding van overleggen"),
)
PRIVATE_CHANNELS = (("Management (vertrouwelijk)", "Alleen voor het management"), ("Personeelszaken 🔒", "Besloten"))
REACTIONS = (
    ("like", "Like"), ("heart", "Heart"), ("laugh", "Laugh"), ("surprised", "Surprised"), ("sad", "Sad"),
    ("👍", "Like"), ("❤️", "Heart"), ("😆", "Laugh"), ("🎉", "Party popper"), ("🙏", "Folded hands"),
)
EMOJI = (
    ("1f44d_thumbsup", "👍", "Duim omhoog"), ("1f600_grinningface", "😀", "Lach"), ("2615_hotbeverage", "☕", "Koffie"),
)


def _topic(rng: random.Random) -> str:
    return rng.choice(TOPICS)


def _sentence(rng: random.Random) -> str:
    return rng.choice(SENTENCES).format(topic=_topic(rng))


def _subject(rng: random.Random) -> str:
    topic = _topic(rng)
    return rng.choice(SUBJECTS).format(topic=topic, Topic=topic[:1].upper() + topic[1:])


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _plain(content: str) -> str:
    """Text of an HTML body, for the preview in a quoted-message reference."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", content)).split())


def tiny_png(rng: random.Random) -> bytes:
    """A small but complete PNG (RGB, one IDAT), different per call; no imaging library needed."""
    width, height = rng.randint(8, 24), rng.randint(6, 16)
    red, green, blue = rng.randrange(256), rng.randrange(256), rng.randrange(256)
    rows = (b"\x00" + bytes((red, (green + 9 * y) & 255, blue)) * width for y in range(height))
    pixels = zlib.compress(b"".join(rows))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------------------------
# Message content kinds. Each returns the body and the mentions/attachments that go with it.


@dataclass
class _Draft:
    """Context for composing one message."""

    rng: random.Random
    place: _Place
    sender: dict
    message_id: str
    root_id: str | None
    earlier: list[dict]


@dataclass
class _Content:
    html: str
    mentions: list[dict] = field(default_factory=list)
    attachments: list[dict] = field(default_factory=list)
    text: bool = False

    def body(self) -> dict:
        return {"contentType": "text" if self.text else "html", "content": self.html}


def _mention(index: int, user: dict) -> dict:
    return {
        "id": index,
        "mentionText": user["displayName"],
        "mentioned": {"application": None, "device": None, "conversation": None, "user": _user_identity(user)},
    }


def _others(draft: _Draft) -> list[dict]:
    return [u for u in draft.place.people if u["id"] != draft.sender["id"]] or [draft.sender]


def _kind_text(d: _Draft) -> _Content:
    return _Content(_sentence(d.rng), text=True)


def _kind_paragraph(d: _Draft) -> _Content:
    return _Content(f"<p>{_esc(_sentence(d.rng))}</p>")


def _kind_rich(d: _Draft) -> _Content:
    slug = quote(_topic(d.rng).replace(" ", "-"))
    link = f"https://intranet.{DOMAIN}/dossiers/{slug}?bron=teams&amp;versie=2"
    return _Content(
        f"<p>{_esc(_sentence(d.rng))} <span style=\"color:rgb(196, 49, 75);font-weight:bold\">Let op: deadline!</span>"
        f" Zie <a href=\"{link}\" rel=\"noreferrer noopener\" target=\"_blank\" title=\"{link}\">het dossier</a>"
        f" en <i>vooral</i> <u>hoofdstuk 3</u>.</p>"
    )


def _kind_emoji(d: _Draft) -> _Content:
    code, alt, title = d.rng.choice(EMOJI)
    return _Content(f"<p>{_esc(_sentence(d.rng))} <emoji id=\"{code}\" alt=\"{alt}\" title=\"{title}\"></emoji></p>")


def _kind_list(d: _Draft) -> _Content:
    items = "".join(f"<li>{_esc(_sentence(d.rng))}</li>" for _ in range(d.rng.randint(2, 4)))
    return _Content(f"<p>Actiepunten:</p><ul>{items}</ul><ol><li>Eerst</li><li>Daarna</li></ol>")


def _mentioning(d: _Draft, count: int) -> _Content:
    people = d.rng.sample(_others(d), min(count, len(_others(d))))
    tags = [f"<at id=\"{i}\">{_esc(u['displayName'])}</at>" for i, u in enumerate(people)]
    return _Content(
        f"<p>{' en '.join(tags)}, {_esc(_sentence(d.rng))}</p>", mentions=[_mention(i, u) for i, u in enumerate(people)]
    )


def _kind_mention(d: _Draft) -> _Content:
    return _mentioning(d, 1)


def _kind_mention2(d: _Draft) -> _Content:
    return _mentioning(d, 2)


def _kind_image(d: _Draft) -> _Content:
    content_id = _hosted_content_id(d.rng)
    png = tiny_png(d.rng)
    d.place.hosted[(d.message_id, content_id)] = BytesBlob(png)
    width, height = struct.unpack(">II", png[16:24])
    src = d.place.image_url(d.message_id, d.root_id, content_id)
    return _Content(
        f"<p>{_esc(_sentence(d.rng))}</p><p><img alt=\"image\" src=\"{src}\" width=\"{width * 10}\""
        f" height=\"{height * 10}\" itemscope=\"png\" style=\"vertical-align:bottom; width:{width * 10}px;"
        f" height:{height * 10}px\"></p>"
    )


def _kind_file(d: _Draft) -> _Content:
    attachment_id = guid(d.rng)
    name = d.rng.choice(FILES)
    attachment = {
        "id": attachment_id,
        "contentType": "reference",
        "contentUrl": d.place.file_url(d.sender, name),
        "content": None,
        "name": name,
        "thumbnailUrl": None,
        "teamsAppId": None,
    }
    return _Content(f"<p>{_esc(_sentence(d.rng))}</p><attachment id=\"{attachment_id}\"></attachment>",
                    attachments=[attachment])


def _quotable(message: dict) -> bool:
    return message["messageType"] == "message" and message["deletedDateTime"] is None


def _kind_quote(d: _Draft) -> _Content:
    """A reply quoting an earlier message: Graph's `messageReference` attachment, its content a JSON string."""
    candidates = [m for m in d.earlier[-8:] if _quotable(m)]
    if not candidates:
        return _kind_paragraph(d)
    quoted = d.rng.choice(candidates)
    sender = quoted["from"]["user"]
    reference = {
        "messageId": quoted["id"],
        "messagePreview": _plain(quoted["body"]["content"])[:140],
        "messageSender": {
            "application": None,
            "device": None,
            "user": {"userIdentityType": "aadUser", "tenantId": TENANT_ID, "id": sender["id"],
                     "displayName": sender["displayName"]},
        },
    }
    attachment = {
        "id": quoted["id"],
        "contentType": "messageReference",
        "contentUrl": None,
        "content": json.dumps(reference, ensure_ascii=False),
        "name": None,
        "thumbnailUrl": None,
        "teamsAppId": None,
    }
    return _Content(f"<attachment id=\"{quoted['id']}\"></attachment><p>{_esc(_sentence(d.rng))}</p>",
                    attachments=[attachment])


def _kind_code(d: _Draft) -> _Content:
    code = "Get-ChildItem -Path .\\stukken | Where-Object { $_.Length -gt 1MB } # > 1 MB & \"oud\""
    block = f"<codeblock class=\"PowerShell\"><code>{_esc(code)}</code></codeblock>"
    return _Content(f"<p>Dit script gebruik ik:</p>{block}")


def _kind_table(d: _Draft) -> _Content:
    rows = [("Post", "Bedrag"), ("Inhuur", "€ 12.500"), ("Licenties", "€ 3.120,50"), ("Ønskeliste", "—")]
    cells = "".join("<tr>" + "".join(f"<td><p>{_esc(c)}</p></td>" for c in row) + "</tr>" for row in rows)
    return _Content(f"<p>Overzicht:</p><table itemprop=\"copy-paste-table\"><tbody>{cells}</tbody></table>")


KINDS: dict[str, Callable[[_Draft], _Content]] = {
    "text": _kind_text,
    "paragraph": _kind_paragraph,
    "rich": _kind_rich,
    "emoji": _kind_emoji,
    "list": _kind_list,
    "mention": _kind_mention,
    "mention2": _kind_mention2,
    "image": _kind_image,
    "file": _kind_file,
    "quote": _kind_quote,
    "code": _kind_code,
    "table": _kind_table,
}
# How often each kind turns up when nothing in particular is required.
WEIGHTS = {"text": 16, "paragraph": 30, "rich": 6, "emoji": 6, "list": 3, "mention": 10, "mention2": 3,
           "image": 5, "file": 5, "quote": 5, "code": 2, "table": 2}
_KIND_NAMES, _KIND_WEIGHTS = list(WEIGHTS), list(WEIGHTS.values())


def _compose(d: _Draft, kind: str | None) -> _Content:
    kind = kind or d.rng.choices(_KIND_NAMES, _KIND_WEIGHTS)[0]
    return KINDS[kind](d)


def _post(
    rng: random.Random,
    place: _Place,
    ms: int,
    sender: dict,
    earlier: list[dict],
    *,
    kind: str | None = None,
    root_id: str | None = None,
    subject: str | None = None,
) -> dict:
    ms = place.claim(ms)
    content = _compose(_Draft(rng, place, sender, str(ms), root_id, earlier), kind)
    roll = rng.random()
    # "urgent" exists for chats only; channel posts can be at most "high".
    importance = "urgent" if roll < 0.01 and place.chat_id else "high" if roll < 0.05 else "normal"
    return _message(place, ms, sender, content.body(), reply_to=root_id, subject=subject, importance=importance,
                    mentions=content.mentions, attachments=content.attachments)


# --------------------------------------------------------------------------------------------------------------
# Edits, deletions, reactions


def _set_modified(message: dict, ms: int) -> None:
    """Graph bumps lastModifiedDateTime and the etag on every change, reactions included."""
    if ms > int(message["etag"]):
        message["lastModifiedDateTime"] = _iso(ms)
        message["etag"] = str(ms)


def edit_message(message: dict, new_html: str, when: datetime) -> dict:
    """The message as Graph shows it after an edit. Returns a new dict; mentions and attachments whose tags the new
    HTML no longer carries are dropped, as Teams drops them."""
    ms = _ms(when)
    edited = dict(message)
    edited["body"] = {"contentType": "html", "content": new_html}
    edited["mentions"] = [m for m in message["mentions"] if f"<at id=\"{m['id']}\">" in new_html]
    edited["attachments"] = [a for a in message["attachments"] if f"<attachment id=\"{a['id']}\">" in new_html]
    edited["lastEditedDateTime"] = _iso(ms)
    edited["lastModifiedDateTime"] = _iso(ms)
    edited["etag"] = str(ms)
    return edited


def delete_message(message: dict, when: datetime) -> dict:
    """The message as Graph lists it after a soft delete: still there, deletedDateTime set, body content empty and no
    mentions, attachments or reactions. Returns a new dict; hosted images of the message are the caller's to drop."""
    ms = _ms(when)
    deleted = dict(message)
    deleted["body"] = {"contentType": message["body"]["contentType"], "content": ""}
    deleted["mentions"], deleted["attachments"], deleted["reactions"] = [], [], []
    deleted["deletedDateTime"] = _iso(ms)
    deleted["lastModifiedDateTime"] = _iso(ms)
    deleted["etag"] = str(ms)
    return deleted


def _react(rng: random.Random, message: dict, people: list[dict]) -> None:
    """Adds 1-4 reactions from other people, each also recorded in messageHistory as Graph does."""
    sender_id = message["from"]["user"]["id"]
    reactors = [u for u in people if u["id"] != sender_id] or people
    when = int(message["id"])
    for user in rng.sample(reactors, min(len(reactors), rng.randint(1, 4))):
        when += rng.randint(5_000, 3_600_000)
        reaction_type, name = rng.choice(REACTIONS)
        reaction = {"reactionType": reaction_type, "displayName": name, "reactionContentUrl": None,
                    "createdDateTime": _iso(when), "user": _identity_set(user)}
        message["reactions"].append(reaction)
        message["messageHistory"].append({"modifiedDateTime": _iso(when), "actions": "reactionAdded",
                                          "reaction": reaction})
        _set_modified(message, when)


def _edited_html(rng: random.Random, content: str) -> str:
    return content + f"<p><em>Aanvulling:</em> {_esc(_sentence(rng))}</p>"


def _aftermath(rng: random.Random, place: _Place, messages: list[dict]) -> list[dict]:
    """What happens to messages after they are sent: reactions, edits, soft deletes (at least one of each kind of
    change in any conversation long enough to have them)."""
    ordinary = [i for i, m in enumerate(messages) if m["messageType"] == "message"]
    if not ordinary:
        return messages
    edits = {i for i in ordinary if rng.random() < 0.07 and messages[i]["body"]["contentType"] == "html"}
    deletions = {i for i in ordinary if rng.random() < 0.04} - edits
    if len(ordinary) >= 6:
        html_ones = [i for i in ordinary if messages[i]["body"]["contentType"] == "html"]
        edits = edits or ({rng.choice(html_ones)} if html_ones else set())
        deletions = deletions or {rng.choice([i for i in ordinary if i not in edits] or ordinary)}
    result = list(messages)
    for i in ordinary:
        message = result[i]
        if rng.random() < 0.2:
            message = dict(message, reactions=[], messageHistory=[])
            _react(rng, message, place.people)
        created = int(message["id"])
        if i in edits:
            edit_ms = max(created + rng.randint(30_000, 90 * 60_000), int(message["etag"]) + 1)
            message = edit_message(message, _edited_html(rng, message["body"]["content"]), _at(edit_ms))
        if i in deletions:
            delete_ms = max(created + rng.randint(10_000, _DAY_MS), int(message["etag"]) + 1)
            message = delete_message(message, _at(delete_ms))
            for key in [k for k in place.hosted if k[0] == message["id"]]:
                del place.hosted[key]
        result[i] = message
    return result


def _at(ms: int) -> datetime:
    return _UNIX + timedelta(milliseconds=ms)


# --------------------------------------------------------------------------------------------------------------
# Chats


def _chat_json(chat_id: str, chat_type: str, topic: str | None, created: int, updated: int) -> dict:
    return {
        "id": chat_id,
        "topic": topic,
        "createdDateTime": _iso(created),
        "lastUpdatedDateTime": _iso(updated),
        "chatType": chat_type,
        "webUrl": f"{TEAMS_WEB}/l/chat/{quote(chat_id, safe='@')}/0?tenantId={TENANT_ID}",
        "tenantId": TENANT_ID,
        "onlineMeetingInfo": None,
        "isHiddenForAllMembers": False,
    }


def _fill(rng: random.Random, place: _Place, messages: list[dict], count: int, start: int, required: list[str],
          senders: Callable[[int], list[dict]]) -> int:
    """Appends `count` ordinary messages after `start`; the `required` kinds each land at a random position.
    `senders(ms)` says who could be posting at that time. Returns the time of the last message."""
    slots = rng.sample(range(count), min(len(required), count))
    wanted = dict(zip(slots, required))
    ms = start
    for index in range(count):
        ms += _gap(rng)
        sender = rng.choice(senders(ms))
        messages.append(_post(rng, place, ms, sender, messages, kind=wanted.get(index)))
    return ms


def _call(rng: random.Random, place: _Place, messages: list[dict], ms: int, kind: str, people: list[dict]) -> int:
    """A call: started and ended events around it, with the people who joined."""
    call_id, initiator = guid(rng), rng.choice(people)
    seconds = rng.randint(40, 75 * 60)
    messages.append(_event(place, place.claim(ms), _call_started(call_id, kind, initiator)))
    end = place.claim(ms + seconds * 1000)
    joined = [initiator] + [u for u in people if u is not initiator and rng.random() < 0.8]
    messages.append(_event(place, end, _call_ended(call_id, kind, seconds, joined, initiator)))
    return end


def _one_on_one(rng: random.Random, a: dict, b: dict) -> ChatData:
    chat_id = _one_on_one_id(a, b)
    place = _Place([a, b], {}, chat_id=chat_id)
    created = START_MS + rng.randrange(0, 60 * _DAY_MS)
    messages: list[dict] = []
    total, called = rng.randint(10, 40), rng.random() < 0.5
    first = total // 2
    required = ["quote", rng.choice(["image", "file"])]
    ms = _fill(rng, place, messages, first, created, required, lambda _: [a, b])
    if called:  # a call adds two event messages, still within the 10-40 per chat
        ms = _call(rng, place, messages, ms + _gap(rng), "call", [a, b])
    _fill(rng, place, messages, total - first - 2 * called, ms, [], lambda _: [a, b])
    chat = _chat_json(chat_id, "oneOnOne", None, created, created)
    members = [_member(chat_id, u, ["owner"]) for u in (a, b)]
    return ChatData(chat, members, _aftermath(rng, place, messages), place.hosted)


def _group_chat(rng: random.Random, people: list[dict]) -> ChatData:
    """A group chat: created with a membersAdded event, usually named (chatRenamed), sometimes joined later by one
    more person whose visible history then starts at the join."""
    chat_id = _thread_id(rng, "thread.v2")
    place = _Place(list(people), {}, chat_id=chat_id)
    creator, late = people[0], (people[-1] if len(people) >= 4 and rng.random() < 0.6 else None)
    first = [u for u in people if u is not late]
    created = START_MS + rng.randrange(0, 60 * _DAY_MS)
    messages = [_event(place, place.claim(created + 1000), _members_added(creator, first[1:], ALL_HISTORY))]
    updated = created
    topic = f"{_topic(rng).capitalize()} {rng.choice(['overleg', 'werkgroep', '🚀', '& co', '2027'])}"
    if rng.random() < 0.8:
        updated = place.claim(created + 60_000)
        messages.append(_event(place, updated, _chat_renamed(chat_id, topic, creator)))
    else:
        topic = None  # unnamed group chats have a null topic
    total = rng.randint(10, 38)
    half = total // 2
    ms = _fill(rng, place, messages, half, created + 120_000, ["mention2", "image", "file"], lambda _: first)
    visible = ALL_HISTORY
    if late:
        updated = ms = place.claim(ms + _gap(rng))
        visible = rng.choice([ALL_HISTORY, _iso(ms)])
        messages.append(_event(place, ms, _members_added(creator, [late], visible)))
    _fill(rng, place, messages, total - half, ms, ["quote", rng.choice(["code", "table", "rich"])], lambda _: people)
    chat = _chat_json(chat_id, "group", topic, created, updated)
    members = [_member(chat_id, u, ["owner"], visible if u is late else ALL_HISTORY) for u in people]
    return ChatData(chat, members, _aftermath(rng, place, messages), place.hosted)


def _meeting_chat(rng: random.Random, people: list[dict]) -> ChatData:
    """The chat of a Teams meeting: talk before, during and after the call, with onlineMeetingInfo on the chat."""
    chat_id = _meeting_chat_id(rng)
    place = _Place(list(people), {}, chat_id=chat_id)
    organizer = people[0]
    created = START_MS + rng.randrange(0, 60 * _DAY_MS)
    messages: list[dict] = []
    total = rng.randint(10, 36)
    ms = _fill(rng, place, messages, total // 3, created, ["mention2"], lambda _: people)
    ms = _call(rng, place, messages, ms + _gap(rng), "meeting", people)
    _fill(rng, place, messages, total - total // 3, ms, ["image", "file", "quote", "list"], lambda _: people)
    chat = _chat_json(chat_id, "meeting", f"Overleg {_topic(rng)}", created, created)
    chat["onlineMeetingInfo"] = {
        "calendarEventId": "AAMkA" + base64.b64encode(rng.randbytes(105)).decode(),
        "joinWebUrl": f"{TEAMS_WEB}/l/meetup-join/{quote(chat_id, safe='')}/0?context="
                      + quote(json.dumps({"Tid": TENANT_ID, "Oid": organizer["id"]}, separators=(",", ":")), safe=""),
        "organizer": _user_identity(organizer, named=False),
    }
    members = [_member(chat_id, u, ["owner"]) for u in people]
    return ChatData(chat, members, _aftermath(rng, place, messages), place.hosted)


def _chunks(rng: random.Random, people: list[dict], low: int, high: int) -> list[list[dict]]:
    """Splits a shuffled copy of `people` into groups of low..high (a short tail joins the group before it)."""
    order = list(people)
    rng.shuffle(order)
    groups: list[list[dict]] = []
    while order:
        size = rng.randint(low, high)
        groups.append(order[:size])
        order = order[size:]
    if len(groups) > 1 and len(groups[-1]) < low:
        groups[-2].extend(groups.pop())
    return [g for g in groups if len(g) >= 2]


def build_chats(rng: random.Random, users: list[dict]) -> dict[str, list[ChatData]]:
    """Every user's chats: 1:1 chats with (usually) four colleagues, two group chats and a meeting chat. A chat is
    one ChatData object listed under each of its members, so a change made through one member shows for all."""
    by_user: dict[str, list[ChatData]] = {u["id"]: [] for u in users}
    count = len(users)
    if count < 2:
        return by_user
    pairs = sorted({tuple(sorted((i, (i + step) % count))) for i in range(count) for step in (1, 3)
                    if (i + step) % count != i})
    chats = [_one_on_one(rng, users[i], users[j]) for i, j in pairs]
    for _ in range(2):
        chats += [_group_chat(rng, group) for group in _chunks(rng, users, 3, 6)]
    chats += [_meeting_chat(rng, group) for group in _chunks(rng, users, 3, 8)]
    for chat in chats:
        for member in chat.members:
            by_user[member["userId"]].append(chat)
    return by_user


def make_chat_message(rng: random.Random, chat: ChatData, sender: dict, *, when: datetime,
                      html: str | None = None) -> dict:
    """A new message in `chat` from `sender` at `when`, not yet added to `chat.messages` (the caller does that).
    Without `html` the body is a generated paragraph; with it, the HTML is used as given (no mentions parsed)."""
    place = _Place([sender], chat.hosted_contents, chat_id=chat.chat["id"])
    place.taken = {int(m["id"]) for m in chat.messages}
    ms = place.claim(_ms(when))
    body = {"contentType": "html", "content": html if html is not None else f"<p>{_esc(_sentence(rng))}</p>"}
    return _message(place, ms, sender, body)


# --------------------------------------------------------------------------------------------------------------
# Teams and channels


def _site_name(department: str) -> str:
    folded = department.translate(str.maketrans("ëéèïöüäçøş", "eeeiouacos"))
    return re.sub(r"[^A-Za-z0-9]", "", folded) or "Team"


def _channel_json(rng: random.Random, team_id: str, name: str, description: str | None, membership: str,
                  created: int, channel_id: str) -> dict:
    email = f"{_hex(rng, 32)}.{TENANT_LABEL}.onmicrosoft.com@emea.teams.ms" if membership == "standard" else ""
    return {
        "id": channel_id,
        "createdDateTime": _iso(created),
        "displayName": name,
        "description": description,
        "isFavoriteByDefault": None,
        "email": email,
        "tenantId": TENANT_ID,
        "webUrl": f"{TEAMS_WEB}/l/channel/{quote(channel_id, safe='')}/{quote(name, safe='')}"
                  f"?groupId={team_id}&tenantId={TENANT_ID}",
        "membershipType": membership,
        "isArchived": False,
    }


def _thread_length(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.35:
        return 0
    if roll < 0.75:
        return rng.randint(1, 5)
    if roll < 0.9:
        return rng.randint(6, 10)
    return rng.randint(11, 24)


def _thread(rng: random.Random, place: _Place, root: dict, length: int, required: list[str]) -> list[dict]:
    """Replies to `root`, oldest first, posted by channel members over the following hours or days."""
    replies: list[dict] = []
    slots = dict(zip(rng.sample(range(length), min(len(required), length)), required))
    ms = int(root["id"])
    for index in range(length):
        ms += rng.randint(30_000, 4 * 3_600_000)
        sender = rng.choice(place.people)
        replies.append(_post(rng, place, ms, sender, [root, *replies], kind=slots.get(index), root_id=root["id"]))
    return _aftermath(rng, place, replies)


@dataclass
class _ChannelPlan:
    name: str
    description: str | None
    membership: str
    people: list[dict]
    roots: int
    required: list[str]
    long_thread: int = 0  # replies in the one very long thread, if this channel has it


def _channel(rng: random.Random, team: dict, site: str, plan: _ChannelPlan, channel_id: str, created: int,
             general_events: list[tuple[int, dict]]) -> ChannelData:
    channel = _channel_json(rng, team["id"], plan.name, plan.description, plan.membership, created, channel_id)
    if plan.membership == "private":
        site = f"{site}-{_site_name(plan.name)}"  # a private channel's files live in a site of its own
    place = _Place(plan.people, {}, team_id=team["id"], channel_id=channel_id, channel_name=plan.name, site=site)
    roots = [_event(place, place.claim(ms), detail) for ms, detail in general_events]
    ms = created + 3_600_000
    wanted = dict(zip(rng.sample(range(plan.roots), min(len(plan.required), plan.roots)), plan.required))
    for index in range(plan.roots):
        ms += rng.randint(2 * 3_600_000, 4 * _DAY_MS)
        subject = _subject(rng) if rng.random() < 0.4 else None
        sender = rng.choice(plan.people)
        roots.append(_post(rng, place, ms, sender, [], kind=wanted.get(index), subject=subject))
    replies: dict[str, list[dict]] = {}
    ordinary = [r for r in roots if r["messageType"] == "message"]
    long_root = ordinary[0]["id"] if plan.long_thread else None
    busy = {r["id"] for r in rng.sample(ordinary[1:], min(2, len(ordinary) - 1))}  # threads that need paging
    for root in ordinary:
        length = plan.long_thread if root["id"] == long_root else (
            rng.randint(11, 18) if root["id"] in busy else _thread_length(rng))
        if length:
            needs = ["image", "quote", "mention2"] if root["id"] == long_root else []
            replies[root["id"]] = _thread(rng, place, root, length, needs)
    roots = _aftermath(rng, place, roots)
    return ChannelData(channel, roots, replies, place.hosted)


def _channel_plans(rng: random.Random, users: list[dict], description: str) -> list[_ChannelPlan]:
    """General plus two or three more; the last is private when the team is big enough for a private circle."""
    extra = rng.sample(CHANNELS, rng.randint(2, 3))
    plans = [_ChannelPlan("General", description, "standard", users, rng.randint(8, 12),
                          ["mention2", "image", "file", "code", "table", "rich"])]
    for index, (name, purpose) in enumerate(extra):
        plans.append(_ChannelPlan(name, purpose, "standard", users, rng.randint(6, 12),
                                  ["mention", "image", "file"], long_thread=rng.randint(58, 62) if index == 0 else 0))
    if len(users) >= 3:
        name, purpose = rng.choice(PRIVATE_CHANNELS)
        circle = users[: max(2, len(users) // 3)]
        plans[-1] = _ChannelPlan(name, purpose, "private", circle, rng.randint(6, 10), ["file", "emoji"],
                                 long_thread=plans[-1].long_thread)
    return plans


def build_team(rng: random.Random, department: str, users: list[dict]) -> TeamData:
    """The department's team: all users as members (the first one or two are owners), General first, then two or
    three more channels, one of them private. One thread has about sixty replies, several more than ten."""
    if not users:
        raise ValueError(f"team {department!r} needs at least one member")
    team_id = guid(rng)
    created = START_MS + rng.randrange(0, 7 * _DAY_MS)
    general_id = _thread_id(rng, "thread.tacv2")
    site = _site_name(department)
    description = f"Team van de afdeling {department} — overleg, stukken en planning."
    team = {
        "id": team_id,
        "createdDateTime": _iso(created),
        "displayName": department,
        "description": description,
        "internalId": general_id,
        "classification": None,
        "specialization": "none",
        "visibility": rng.choice(["private", "public"]),
        "webUrl": f"{TEAMS_WEB}/l/team/{quote(general_id, safe='')}/conversations?groupId={team_id}"
                  f"&tenantId={TENANT_ID}",
        "isArchived": False,
        "tenantId": TENANT_ID,
        "memberSettings": {"allowCreateUpdateChannels": True, "allowDeleteChannels": False,
                           "allowAddRemoveApps": True, "allowCreateUpdateRemoveTabs": True,
                           "allowCreateUpdateRemoveConnectors": True, "allowCreatePrivateChannels": True},
        "guestSettings": {"allowCreateUpdateChannels": False, "allowDeleteChannels": False},
        "messagingSettings": {"allowUserEditMessages": True, "allowUserDeleteMessages": True,
                              "allowOwnerDeleteMessages": True, "allowTeamMentions": True,
                              "allowChannelMentions": True},
        "funSettings": {"allowGiphy": True, "giphyContentRating": "moderate", "allowStickersAndMemes": True,
                        "allowCustomMemes": False},
    }
    owners = users[:2] if len(users) > 2 else users[:1]
    roles = {u["id"]: ["owner"] if u in owners else [] for u in users}
    members = [_member(general_id, u, roles[u["id"]]) for u in users]
    plans = _channel_plans(rng, users, description)
    ids = [general_id] + [_thread_id(rng, "thread.tacv2") for _ in plans[1:]]
    opened = [created] + sorted(created + rng.randint(3_600_000, 10 * _DAY_MS) for _ in plans[1:])
    owner = users[0]
    events = [(created + 1000, _members_added(owner, users[1:], ALL_HISTORY))] if len(users) > 1 else []
    channels: list[ChannelData] = []
    for plan, channel_id, when in zip(plans, ids, opened):
        data = _channel(rng, team, site, plan, channel_id, when, events if plan.name == "General" else [])
        data.members = list(members) if plan.membership == "standard" else [
            _member(channel_id, u, roles[u["id"]]) for u in plan.people]
        channels.append(data)
        if plan.membership == "standard" and channels[0] is not data:
            # Graph announces a new standard channel in General; add it there, in time order.
            general = channels[0]
            taken = {int(m["id"]) for m in general.messages}
            taken.update(int(r["id"]) for thread in general.replies.values() for r in thread)
            place = _Place(users, general.hosted_contents, team_id=team_id, channel_id=general_id,
                           channel_name="General", site=site, taken=taken)
            notice = _event(place, place.claim(when), _channel_added(data.channel, owner))
            general.messages = sorted([*general.messages, notice], key=lambda m: int(m["id"]))
    return TeamData(team, members, channels, f"https://{SHAREPOINT_HOST}/sites/{site}")
