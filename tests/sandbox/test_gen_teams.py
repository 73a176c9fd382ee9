"""The Teams generator's chats, teams, channels and messages: valid Graph v1.0 JSON by the SDK's own models,
internally consistent (mentions, hosted images, threads, membership), every awkward form present, deterministic
and fast."""

from __future__ import annotations

import json
import random
import re
import struct
import time
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from msgraph.generated.models.aad_user_conversation_member import (
    AadUserConversationMember,
)
from msgraph.generated.models.call_ended_event_message_detail import (
    CallEndedEventMessageDetail,
)
from msgraph.generated.models.call_started_event_message_detail import (
    CallStartedEventMessageDetail,
)
from msgraph.generated.models.channel import Channel
from msgraph.generated.models.channel_added_event_message_detail import (
    ChannelAddedEventMessageDetail,
)
from msgraph.generated.models.chat import Chat
from msgraph.generated.models.chat_message import ChatMessage
from msgraph.generated.models.chat_renamed_event_message_detail import (
    ChatRenamedEventMessageDetail,
)
from msgraph.generated.models.members_added_event_message_detail import (
    MembersAddedEventMessageDetail,
)
from msgraph.generated.models.team import Team
from msgraph.generated.models.teamwork_user_identity import TeamworkUserIdentity

from migrator.sandbox import gen_teams
from migrator.sandbox.gen_teams import (
    PNG_SIGNATURE,
    ChatData,
    TeamData,
    build_chats,
    build_team,
    delete_message,
    edit_message,
    make_chat_message,
)
from migrator.sandbox.names import DOMAIN, TENANT_ID, guid, local_part, person
from tests.sandbox.graph_models import parse, unknown_fields

EVENT_TYPES = {
    "#microsoft.graph.membersAddedEventMessageDetail": MembersAddedEventMessageDetail,
    "#microsoft.graph.chatRenamedEventMessageDetail": ChatRenamedEventMessageDetail,
    "#microsoft.graph.callStartedEventMessageDetail": CallStartedEventMessageDetail,
    "#microsoft.graph.callEndedEventMessageDetail": CallEndedEventMessageDetail,
    "#microsoft.graph.channelAddedEventMessageDetail": ChannelAddedEventMessageDetail,
}
# Graph adds tenantId to every teamworkUserIdentity it returns (see its get-message example) although the
# metadata, and so the SDK model, does not declare it. That one dynamic property is all this check lets through.
IDENTITY_TENANT = re.compile(r"\.(user|organizer)\.tenantId$")
HOSTED_URL = re.compile(r'src="(https://graph\.microsoft\.com/v1\.0/[^"]+/hostedContents/([^/"]+)/\$value)"')


def make_users(count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    users = []
    for index in range(count):
        given, family = person(rng)
        address = f"{local_part(given, family)}{index}@{DOMAIN}"
        users.append({"id": guid(rng), "displayName": f"{given} {family}", "userPrincipalName": address,
                      "mail": address})
    return users


USERS = make_users(20)


@pytest.fixture(scope="module")
def chats() -> dict[str, list[ChatData]]:
    return build_chats(random.Random(11), USERS)


@pytest.fixture(scope="module")
def team() -> TeamData:
    return build_team(random.Random(12), "Financiën", USERS)


def unique_chats(by_user: dict[str, list[ChatData]]) -> list[ChatData]:
    return list({id(chat): chat for chats in by_user.values() for chat in chats}.values())


def all_chat_messages(by_user: dict[str, list[ChatData]]) -> list[tuple[ChatData, dict]]:
    return [(chat, message) for chat in unique_chats(by_user) for message in chat.messages]


def all_channel_messages(team: TeamData) -> list[dict]:
    found = []
    for channel in team.channels:
        found += channel.messages
        for replies in channel.replies.values():
            found += replies
    return found


def every_message(chats, team) -> list[dict]:
    return [m for _, m in all_chat_messages(chats)] + all_channel_messages(team)


# Strings whose value, not just their type, decides how the SDK parses them (enums, discriminators).
ENUM_KEYS = {"messageType", "importance", "contentType", "chatType", "callEventType", "userIdentityType", "actions",
             "membershipType", "visibility", "@odata.type", "specialization", "giphyContentRating", "roles"}


def skeleton(value, key: str = ""):
    """The structure of a JSON value: keys, enum values and the form of timestamps, but not the text. Payloads
    with the same skeleton parse the same way, which keeps the SDK checks (about 12 ms a message) affordable."""
    if isinstance(value, dict):
        return {k: skeleton(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return sorted({json.dumps(skeleton(v, key), sort_keys=True) for v in value})
    if isinstance(value, str):
        if key in ENUM_KEYS:
            return value
        return re.sub(r"\d", "9", value) if key.endswith("DateTime") or key == "callDuration" else "str"
    return type(value).__name__


def representatives(payloads: list[dict]) -> list[dict]:
    """One payload for each distinct skeleton."""
    return list({json.dumps(skeleton(p), sort_keys=True): p for p in payloads}.values())


def graph_parse(model, payload: dict):
    """Parses with the SDK model and fails on any property it does not know, Graph's identity tenantId aside."""
    obj = parse(model, payload)
    extra = [path for path in unknown_fields(obj) if not IDENTITY_TENANT.search(path)]
    assert not extra, f"properties {model.__name__} does not know: {extra}"
    return obj


# --------------------------------------------------------------------------------------------------------------
# Graph shapes


def test_chats_members_and_messages_parse_as_graph_models(chats):
    for payload in representatives([chat.chat for chat in unique_chats(chats)]):
        parsed = graph_parse(Chat, payload)
        assert parsed.tenant_id == TENANT_ID and parsed.chat_type.value == payload["chatType"]
    for member in representatives([m for chat in unique_chats(chats) for m in chat.members]):
        assert type(graph_parse(AadUserConversationMember, member)) is AadUserConversationMember
    shapes = representatives([m for _, m in all_chat_messages(chats)])
    for message in shapes:
        parsed = graph_parse(ChatMessage, message)
        assert parsed.chat_id == message["chatId"] and parsed.channel_identity is None
    assert len(shapes) >= 30


def test_team_channels_and_channel_messages_parse_as_graph_models(team):
    parsed = graph_parse(Team, team.team)
    assert parsed.display_name == "Financiën" and parsed.internal_id == team.channels[0].channel["id"]
    for member in team.members:
        graph_parse(AadUserConversationMember, member)
    for channel in team.channels:
        graph_parse(Channel, channel.channel)
        for member in channel.members:
            graph_parse(AadUserConversationMember, member)
    for message in representatives(all_channel_messages(team)):
        parsed = graph_parse(ChatMessage, message)
        assert parsed.channel_identity.team_id == team.team["id"] and parsed.chat_id is None
        assert parsed.channel_identity.channel_id in {c.channel["id"] for c in team.channels}


def test_identities_and_event_details_select_the_right_subclasses(chats, team):
    seen = set()
    for message in representatives(every_message(chats, team)):
        parsed = parse(ChatMessage, message)
        if message["messageType"] == "systemEventMessage":
            kind = message["eventDetail"]["@odata.type"]
            assert type(parsed.event_detail) is EVENT_TYPES[kind]
            assert message["body"] == {"contentType": "html", "content": "<systemEventMessage/>"}
            assert message["from"] is None
            seen.add(kind)
        else:
            assert parsed.event_detail is None
            assert type(parsed.from_.user) is TeamworkUserIdentity
            assert parsed.from_.user.user_identity_type.value == "aadUser"
        for mention in parsed.mentions:
            assert type(mention.mentioned.user) is TeamworkUserIdentity
        for reaction in parsed.reactions:
            assert type(reaction.user.user) is TeamworkUserIdentity
    assert seen == set(EVENT_TYPES)


def test_messages_look_like_graph_ids_and_times(chats, team):
    conversations = [chat.messages for chat in unique_chats(chats)]
    for channel in team.channels:
        conversations.append(channel.messages + [r for replies in channel.replies.values() for r in replies])
    for messages in conversations:
        ids = [m["id"] for m in messages]
        assert len(set(ids)) == len(ids)
        for message in messages:
            created = datetime.fromisoformat(message["createdDateTime"])
            assert message["id"].isdigit() and int(message["id"]) == created.timestamp() * 1000
            assert message["lastModifiedDateTime"] >= message["createdDateTime"]
            assert int(message["etag"]) >= int(message["id"]) and message["locale"] == "en-us"
    for chat in unique_chats(chats):
        assert [m["id"] for m in chat.messages] == sorted((m["id"] for m in chat.messages), key=int)


# --------------------------------------------------------------------------------------------------------------
# Consistency


def test_every_at_tag_has_its_mention_and_back(chats, team):
    for message in every_message(chats, team):
        content = message["body"]["content"]
        tags = dict(re.findall(r'<at id="(\d+)">([^<]*)</at>', content))
        mentions = {str(m["id"]): m for m in message["mentions"]}
        assert tags.keys() == mentions.keys(), message["id"]
        for key, text in tags.items():
            assert mentions[key]["mentionText"] == text.replace("&amp;", "&")
            assert mentions[key]["mentioned"]["user"]["displayName"] == mentions[key]["mentionText"]


def valid_png(data: bytes) -> bool:
    """Signature, chunk CRCs, and pixel data that inflates to exactly the size IHDR announces."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    offset, chunks = len(PNG_SIGNATURE), {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        tag, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        if crc != zlib.crc32(tag + body):
            return False
        chunks[tag] = body
        offset += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    return b"IEND" in chunks and len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + 3 * width)


def test_hosted_images_resolve_to_png_bytes_and_nothing_is_orphaned(chats, team):
    holders = [(chat.hosted_contents, chat.messages, f"/chats/{chat.chat['id']}/messages/")
               for chat in unique_chats(chats)]
    for channel in team.channels:
        prefix = f"/teams/{team.team['id']}/channels/{channel.channel['id']}/messages/"
        holders.append((channel.hosted_contents,
                        channel.messages + [r for replies in channel.replies.values() for r in replies], prefix))
    images = 0
    for hosted, messages, prefix in holders:
        referenced = set()
        for message in messages:
            for url, content_id in HOSTED_URL.findall(message["body"]["content"]):
                root = message["replyToId"]
                path = f"{root}/replies/{message['id']}" if root else message["id"]
                assert url.endswith(f"{prefix}{path}/hostedContents/{content_id}/$value")
                assert "/" not in content_id and "+" not in content_id
                blob = hosted[(message["id"], content_id)]
                assert valid_png(blob.read_all()) and blob.size == len(blob.read_all())
                referenced.add((message["id"], content_id))
                images += 1
        assert referenced == set(hosted)
    assert images >= 20


def test_replies_hang_off_existing_roots_and_some_threads_need_paging(team):
    lengths = []
    for channel in team.channels:
        roots = {m["id"]: m for m in channel.messages}
        assert all(m["replyToId"] is None for m in channel.messages)
        for root_id, replies in channel.replies.items():
            assert roots[root_id]["messageType"] == "message"
            assert all(r["replyToId"] == root_id and int(r["id"]) > int(root_id) for r in replies)
            assert [r["id"] for r in replies] == sorted((r["id"] for r in replies), key=int)
            lengths.append(len(replies))
    assert sum(length > 10 for length in lengths) >= 3
    assert 55 <= max(lengths) <= 65


def test_quotes_reference_earlier_messages_with_graph_json(chats, team):
    quotes = 0
    conversations = [chat.messages for chat in unique_chats(chats)]
    for channel in team.channels:
        conversations += [[channel.messages[0]] + [m for m in channel.messages if m["id"] == root] + replies
                          for root, replies in channel.replies.items()]
    for messages in conversations:
        earlier = set()
        for message in messages:
            for attachment in message["attachments"]:
                assert f'<attachment id="{attachment["id"]}"></attachment>' in message["body"]["content"]
                if attachment["contentType"] == "messageReference":
                    reference = json.loads(attachment["content"])
                    assert reference["messageId"] == attachment["id"] in earlier
                    assert reference["messageSender"]["user"]["userIdentityType"] == "aadUser"
                    quotes += 1
                elif attachment["contentType"] == "reference":
                    assert attachment["contentUrl"].startswith(f"https://{gen_teams.TENANT_LABEL}")
                    assert attachment["contentUrl"].endswith(attachment["name"])
            earlier.add(message["id"])
    assert quotes >= 20


def test_one_on_one_chats_have_two_members_and_no_topic(chats):
    kinds = {"oneOnOne": 0, "group": 0, "meeting": 0}
    for chat in unique_chats(chats):
        kind = chat.chat["chatType"]
        kinds[kind] += 1
        if kind == "oneOnOne":
            assert len(chat.members) == 2 and chat.chat["topic"] is None
            assert re.fullmatch(r"19:[0-9a-f-]{36}_[0-9a-f-]{36}@unq\.gbl\.spaces", chat.chat["id"])
        elif kind == "group":
            assert re.fullmatch(r"19:[0-9a-f]{32}@thread\.v2", chat.chat["id"])
        else:
            assert chat.chat["id"].startswith("19:meeting_") and chat.chat["onlineMeetingInfo"]["joinWebUrl"]
        senders = {m["from"]["user"]["id"] for m in chat.messages if m["from"]}
        assert senders <= {member["userId"] for member in chat.members}
        assert 10 <= len(chat.messages) <= 40
    assert min(kinds.values()) >= 1


def test_each_chat_is_listed_under_every_member(chats):
    assert set(chats) == {u["id"] for u in USERS}
    for chat in unique_chats(chats):
        for member in chat.members:
            assert any(listed is chat for listed in chats[member["userId"]])
    for user_id, listed in chats.items():
        assert all(user_id in {m["userId"] for m in chat.members} for chat in listed)
        types = {chat.chat["chatType"] for chat in listed}
        assert types == {"oneOnOne", "group", "meeting"}


def test_team_has_general_first_and_a_private_channel(team):
    names = [c.channel["displayName"] for c in team.channels]
    assert names[0] == "General" and 3 <= len(names) <= 4
    assert {c.channel["membershipType"] for c in team.channels} == {"standard", "private"}
    for channel in team.channels:
        assert re.fullmatch(r"19:[0-9a-f]{32}@thread\.tacv2", channel.channel["id"])
        assert channel.members
    private = next(c for c in team.channels if c.channel["membershipType"] == "private")
    posters = {m["from"]["user"]["id"] for m in all_channel_messages_of(private) if m["from"]}
    assert posters <= {m["userId"] for m in private.members} < {m["userId"] for m in team.members}
    assert [m["roles"] for m in team.members].count(["owner"]) == 2


def all_channel_messages_of(channel) -> list[dict]:
    return channel.messages + [r for replies in channel.replies.values() for r in replies]


# --------------------------------------------------------------------------------------------------------------
# The awkward cases are all there


def test_the_data_holds_every_awkward_form(chats, team):
    messages = every_message(chats, team)
    contents = " ".join(m["body"]["content"] for m in messages)
    assert any(len(m["mentions"]) >= 2 for m in messages)
    assert any(m["lastEditedDateTime"] for m in messages)
    deleted = [m for m in messages if m["deletedDateTime"]]
    assert deleted and all(m["body"]["content"] == "" and not m["mentions"] and not m["attachments"]
                           for m in deleted)
    reactions = {r["reactionType"] for m in messages for r in m["reactions"]}
    assert {"like", "heart", "laugh"} <= reactions and any(not t.isascii() for t in reactions)
    assert all(len(m["messageHistory"]) == len(m["reactions"]) for m in messages if not m["deletedDateTime"])
    for fragment in ('<span style="', '<a href="', "<codeblock", "<table", "<emoji ", "<ul>", "€", "👍", "日本語"):
        assert fragment in contents, fragment
    assert any(m["body"]["contentType"] == "text" for m in messages)
    assert any(m["subject"] for m in all_channel_messages(team))
    assert {m["importance"] for m in messages} >= {"normal", "high"}


def test_deleted_messages_leave_no_hosted_images(chats):
    for chat in unique_chats(chats):
        deleted = {m["id"] for m in chat.messages if m["deletedDateTime"]}
        assert not deleted & {message_id for message_id, _ in chat.hosted_contents}


# --------------------------------------------------------------------------------------------------------------
# Mutation helpers


def test_make_edit_and_delete_message_give_graph_shapes(chats):
    chat = next(c for c in unique_chats(chats) if c.chat["chatType"] == "group")
    sender = next(u for u in USERS if u["id"] == chat.members[0]["userId"])
    clash = datetime.fromtimestamp(int(chat.messages[-1]["id"]) / 1000, tz=UTC)
    message = make_chat_message(random.Random(1), chat, sender, when=clash)
    assert message["id"] not in {m["id"] for m in chat.messages}
    assert message["from"]["user"]["id"] == sender["id"] and message["chatId"] == chat.chat["id"]
    graph_parse(ChatMessage, message)

    later = clash + timedelta(minutes=5)
    edited = edit_message(message, "<p>Nieuwe tekst ✏️</p>", later)
    stamp = later.strftime("%Y-%m-%dT%H:%M:%S.") + f"{later.microsecond // 1000:03d}Z"
    assert edited["lastEditedDateTime"] == edited["lastModifiedDateTime"] == stamp
    assert edited["body"] == {"contentType": "html", "content": "<p>Nieuwe tekst ✏️</p>"}
    assert message["lastEditedDateTime"] is None  # the original is left alone
    graph_parse(ChatMessage, edited)

    gone = delete_message(edited, later + timedelta(minutes=1))
    assert gone["deletedDateTime"] and gone["body"]["content"] == "" and gone["id"] == message["id"]
    assert int(gone["etag"]) > int(edited["etag"])
    graph_parse(ChatMessage, gone)

    naive = make_chat_message(random.Random(2), chat, sender, when=datetime(2026, 1, 1, 9, 0), html="<p>hoi</p>")
    assert naive["createdDateTime"] == "2026-01-01T09:00:00.000Z" and naive["body"]["content"] == "<p>hoi</p>"


def test_edit_drops_mentions_whose_tags_are_gone(chats):
    message = next(m for _, m in all_chat_messages(chats) if len(m["mentions"]) >= 2 and not m["lastEditedDateTime"])
    kept = re.search(r'<at id="0">[^<]*</at>', message["body"]["content"]).group(0)
    edited = edit_message(message, f"<p>{kept} alleen jij</p>", datetime(2026, 2, 1, tzinfo=UTC))
    assert [m["id"] for m in edited["mentions"]] == [0]


# --------------------------------------------------------------------------------------------------------------
# Determinism, edge sizes, speed


def snapshot(by_user: dict[str, list[ChatData]], team: TeamData) -> str:
    chats = [(c.chat, c.members, c.messages, sorted((k, v.read_all().hex()) for k, v in c.hosted_contents.items()))
             for c in unique_chats(by_user)]
    channels = [(c.channel, c.messages, c.replies, c.members,
                 sorted((k, v.read_all().hex()) for k, v in c.hosted_contents.items())) for c in team.channels]
    return json.dumps([{u: [c.chat["id"] for c in cs] for u, cs in by_user.items()}, chats, team.team, team.members,
                       channels], sort_keys=True, ensure_ascii=False)


def test_same_seed_same_tenant_other_seed_other_tenant():
    users = make_users(8)
    first = snapshot(build_chats(random.Random(3), users), build_team(random.Random(4), "Communicatie", users))
    again = snapshot(build_chats(random.Random(3), users), build_team(random.Random(4), "Communicatie", users))
    other = snapshot(build_chats(random.Random(5), users), build_team(random.Random(4), "Communicatie", users))
    assert first == again != other


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5])
def test_small_user_lists_still_work(count):
    users = make_users(count, seed=count)
    by_user = build_chats(random.Random(count), users)
    assert set(by_user) == {u["id"] for u in users}
    for message in representatives([m for _, m in all_chat_messages(by_user)]):
        graph_parse(ChatMessage, message)
    if count:
        built = build_team(random.Random(count), "Personeel en Organisatie", users)
        assert built.channels[0].channel["displayName"] == "General"
        for message in representatives(all_channel_messages(built)):
            graph_parse(ChatMessage, message)
    else:
        with pytest.raises(ValueError):
            build_team(random.Random(0), "Leeg", users)


def test_a_twenty_person_department_builds_well_within_a_second():
    started = time.perf_counter()
    build_chats(random.Random(21), USERS)
    build_team(random.Random(22), "Informatievoorziening", USERS)
    assert time.perf_counter() - started < 1.0
