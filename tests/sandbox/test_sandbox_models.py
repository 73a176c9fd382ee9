"""Every JSON shape the sandbox serves, fetched over HTTPS and parsed with msgraph-sdk's own models;
any property a model does not know fails the test."""

from __future__ import annotations

import datetime as dt

from msgraph.generated.drives.item.items.item.delta.delta_get_response import (
    DeltaGetResponse as DriveDelta,
)
from msgraph.generated.models.calendar import Calendar
from msgraph.generated.models.calendar_collection_response import (
    CalendarCollectionResponse,
)
from msgraph.generated.models.channel_collection_response import (
    ChannelCollectionResponse,
)
from msgraph.generated.models.chat import Chat
from msgraph.generated.models.chat_collection_response import ChatCollectionResponse
from msgraph.generated.models.chat_message import ChatMessage
from msgraph.generated.models.chat_message_collection_response import (
    ChatMessageCollectionResponse,
)
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.contact_collection_response import (
    ContactCollectionResponse,
)
from msgraph.generated.models.contact_folder import ContactFolder
from msgraph.generated.models.contact_folder_collection_response import (
    ContactFolderCollectionResponse,
)
from msgraph.generated.models.conversation_member_collection_response import (
    ConversationMemberCollectionResponse,
)
from msgraph.generated.models.drive import Drive
from msgraph.generated.models.drive_collection_response import DriveCollectionResponse
from msgraph.generated.models.drive_item import DriveItem
from msgraph.generated.models.drive_item_collection_response import (
    DriveItemCollectionResponse,
)
from msgraph.generated.models.event import Event
from msgraph.generated.models.event_collection_response import EventCollectionResponse
from msgraph.generated.models.mail_folder import MailFolder
from msgraph.generated.models.mail_folder_collection_response import (
    MailFolderCollectionResponse,
)
from msgraph.generated.models.message import Message
from msgraph.generated.models.message_collection_response import (
    MessageCollectionResponse,
)
from msgraph.generated.models.permission_collection_response import (
    PermissionCollectionResponse,
)
from msgraph.generated.models.site import Site
from msgraph.generated.models.site_collection_response import SiteCollectionResponse
from msgraph.generated.models.team import Team
from msgraph.generated.models.team_collection_response import TeamCollectionResponse
from msgraph.generated.models.user import User
from msgraph.generated.models.user_collection_response import UserCollectionResponse
from msgraph.generated.teams.item.channels.item.messages.delta.delta_get_response import (
    DeltaGetResponse as ChannelMessagesDelta,
)
from msgraph.generated.users.item.calendar_view.delta.delta_get_response import (
    DeltaGetResponse as CalendarViewDelta,
)
from msgraph.generated.users.item.contact_folders.item.contacts.delta.delta_get_response import (
    DeltaGetResponse as ContactsDelta,
)
from msgraph.generated.users.item.mail_folders.delta.delta_get_response import (
    DeltaGetResponse as MailFoldersDelta,
)
from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_get_response import (
    DeltaGetResponse as MessagesDelta,
)

from tests.sandbox.graph_models import assert_parses

WINDOW = "startDateTime=2025-01-01T00:00:00Z&endDateTime=2027-12-31T00:00:00Z"


def walk(graph, model, url: str, params: dict | None = None, headers: dict | None = None) -> list[dict]:
    """Fetches every page of `url`, parses each with `model`, returns every item."""
    items = []
    while url:
        response = graph.get(url, params=params, headers=headers)
        assert response.status_code == 200, f"{url}: {response.text[:300]}"
        body = response.json()
        assert_parses(model, body)
        items += body.get("value", [])
        url, params = body.get("@odata.nextLink"), None
    return items


def one(graph, model, url: str) -> dict:
    response = graph.get(url)
    assert response.status_code == 200, f"{url}: {response.text[:300]}"
    assert_parses(model, response.json())
    return response.json()


def test_directory_and_mail(graph, sandbox):
    walk(graph, UserCollectionResponse, "users?$select=id,displayName,userPrincipalName,department,mail")
    user = sandbox.tenant.users[0]["id"]
    one(graph, User, f"users/{user}")
    folders = walk(graph, MailFolderCollectionResponse, f"users/{user}/mailFolders", {"includeHiddenFolders": "true"})
    for folder in folders:
        one(graph, MailFolder, f"users/{user}/mailFolders/{folder['id']}")
        walk(graph, MailFolderCollectionResponse, f"users/{user}/mailFolders/{folder['id']}/childFolders")
        messages = walk(graph, MessageCollectionResponse, f"users/{user}/mailFolders/{folder['id']}/messages")
        walk(graph, MessagesDelta, f"users/{user}/mailFolders/{folder['id']}/messages/delta")
        for message in messages[:3]:
            one(graph, Message, f"users/{user}/messages/{message['id']}")
    for name in ("inbox", "sentitems", "drafts", "deleteditems", "junkemail", "archive"):
        one(graph, MailFolder, f"users/{user}/mailFolders/{name}")
    walk(graph, MailFoldersDelta, f"users/{user}/mailFolders/delta")


def test_calendars_and_contacts(graph, sandbox):
    user = sandbox.tenant.users[0]["id"]
    calendars = walk(graph, CalendarCollectionResponse, f"users/{user}/calendars")
    one(graph, Calendar, f"users/{user}/calendar")
    for calendar in calendars:
        events = walk(graph, EventCollectionResponse, f"users/{user}/calendars/{calendar['id']}/events")
        for event in events:
            one(graph, Event, f"users/{user}/events/{event['id']}")
            if event.get("type") == "seriesMaster":
                walk(graph, EventCollectionResponse, f"users/{user}/events/{event['id']}/instances?{WINDOW}")
    walk(graph, EventCollectionResponse, f"users/{user}/calendarView?{WINDOW}")
    walk(graph, CalendarViewDelta, f"users/{user}/calendarView/delta?{WINDOW}")
    folders = walk(graph, ContactFolderCollectionResponse, f"users/{user}/contactFolders")
    assert folders, "the default Contacts folder holds a subfolder"
    contacts = walk(graph, ContactCollectionResponse, f"users/{user}/contacts")
    one(graph, ContactFolder, f"users/{user}/contactFolders/{folders[0]['parentFolderId']}")
    for folder in folders:
        walk(graph, ContactCollectionResponse, f"users/{user}/contactFolders/{folder['id']}/contacts")
        walk(graph, ContactsDelta, f"users/{user}/contactFolders/{folder['id']}/contacts/delta")
    for contact in contacts[:5]:
        one(graph, Contact, f"users/{user}/contacts/{contact['id']}")


def test_drives_and_sites(graph, sandbox):
    user = sandbox.tenant.users[0]["id"]
    drive = one(graph, Drive, f"users/{user}/drive")
    walk(graph, DriveCollectionResponse, f"users/{user}/drives")
    one(graph, DriveItem, f"drives/{drive['id']}/root")
    items = walk(graph, DriveDelta, f"drives/{drive['id']}/root/delta")
    for item in items:
        if "folder" in item:
            walk(graph, DriveItemCollectionResponse, f"drives/{drive['id']}/items/{item['id']}/children")
        walk(graph, PermissionCollectionResponse, f"drives/{drive['id']}/items/{item['id']}/permissions")
    for site in walk(graph, SiteCollectionResponse, "sites?search=*"):
        one(graph, Site, f"sites/{site['id']}")
        for library in walk(graph, DriveCollectionResponse, f"sites/{site['id']}/drives"):
            walk(graph, DriveDelta, f"drives/{library['id']}/root/delta")


def test_chats_and_teams(graph, sandbox):
    user = sandbox.tenant.users[0]["id"]
    chats = walk(graph, ChatCollectionResponse, f"users/{user}/chats", {"$expand": "members"})
    for chat in chats:
        one(graph, Chat, f"chats/{chat['id']}")
        walk(graph, ConversationMemberCollectionResponse, f"chats/{chat['id']}/members")
        messages = walk(graph, ChatMessageCollectionResponse, f"chats/{chat['id']}/messages", {"$top": "50"})
        one(graph, ChatMessage, f"chats/{chat['id']}/messages/{messages[0]['id']}")
    teams = walk(graph, TeamCollectionResponse, f"users/{user}/joinedTeams")
    for team in teams:
        one(graph, Team, f"teams/{team['id']}")
        walk(graph, ConversationMemberCollectionResponse, f"teams/{team['id']}/members")
        for channel in walk(graph, ChannelCollectionResponse, f"teams/{team['id']}/channels"):
            base = f"teams/{team['id']}/channels/{channel['id']}/messages"
            roots = walk(graph, ChatMessageCollectionResponse, base, {"$expand": "replies", "$top": "50"})
            walk(graph, ChannelMessagesDelta, f"{base}/delta")
            for root in roots[:3]:
                walk(graph, ChatMessageCollectionResponse, f"{base}/{root['id']}/replies")


def test_error_bodies_parse_as_odata_errors(graph):
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    response = graph.get("users/nobody@example.org")
    assert response.status_code == 404
    error = assert_parses(ODataError, response.json())
    assert error.error.code == "Request_ResourceNotFound" and error.error.inner_error is not None
    assert dt.datetime.fromisoformat(response.json()["error"]["innerError"]["date"])
