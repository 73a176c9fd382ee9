"""Mail: a Graph message becomes one IMAP APPEND of its own MIME, with flags, keywords and date.

The MIME bytes Graph serves from `$value` go to the server unchanged. The only addition is an
`X-Migrator-Source-Id` header in front of the first header line, so the sink can find a message it
already appended (IMAP has no client-chosen keys; SEARCH HEADER is what there is) and anyone can
trace a message back to its source. A header prepended this way is valid RFC 5322 and leaves every
other byte, and so any DKIM signature, as it was.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mappings.mail_folders import (
    NOT_MIGRATED_ROLES,
    FolderRules,
    format_path,
    source_path,
    target_path,
)
from migrator.contracts import WorkloadMapping
from migrator.errors import ItemError
from migrator.model import Container, Item, Payload, Skip, Target

X_SOURCE_ID = "X-Migrator-Source-Id"
# RFC 5322 allows 998 characters a line; the id must fit on one line next to the field name.
_MAX_ID_LENGTH = 998 - len(X_SOURCE_ID) - 2
_HEADER_SAFE_ID = re.compile(r"[\x21-\x7e]+")
_NOT_ATOM_CHAR = re.compile(r"[^A-Za-z0-9_.-]")
_MEANINGFUL = re.compile(r"[A-Za-z0-9]")
_DATED_BY_SENDING = ("sentitems", "drafts")


@dataclass(frozen=True)
class MailOptions:
    add_source_header: bool = True


def mail_mapping(rules: FolderRules, options: MailOptions = MailOptions()) -> WorkloadMapping:
    return WorkloadMapping(
        container_path=lambda container: target_path(container, rules) or (),
        item=lambda item, container: map_message(item, container, options, rules),
    )


def map_message(item: Item, container: Container, options: MailOptions = MailOptions(), rules: FolderRules | None = None) -> Target | Skip:
    """The IMAP target of one message; dest_key is the Graph id, which the header carries."""
    if target_path(container, rules or FolderRules()) is None:
        return Skip(_not_migrated_reason(container))
    message: dict[str, Any] = item.metadata.get("message") or {}
    graph_id = message.get("id") or item.ref.source_id
    payload = with_source_header(item.payload, graph_id) if options.add_source_header else item.payload
    role = item.metadata.get("folder_role", container.role)
    metadata = {
        "flags": flags(message),
        "internal_date": internal_date(message, role),
        "message_id": message.get("internetMessageId") or None,
        "source_id": graph_id,
        "subject": message.get("subject") or "",
    }
    return Target(dest_key=graph_id, payload=payload, metadata=metadata)


def _not_migrated_reason(container: Container) -> str:
    where = format_path(source_path(container))
    if container.role in NOT_MIGRATED_ROLES:
        return f"folder {where!r} is the {container.role}, whose messages were never sent and are not migrated"
    return f"folder {where!r} is excluded by [mail.folders] exclude"


def source_header(graph_id: str) -> bytes:
    """The header line prepended to a message. An id that could not stand on one header line
    fails the item rather than produce a message the sink could never find again."""
    if not _HEADER_SAFE_ID.fullmatch(graph_id) or len(graph_id) > _MAX_ID_LENGTH:
        raise ItemError(f"message id {graph_id!r} cannot be written as an {X_SOURCE_ID} header")
    return f"{X_SOURCE_ID}: {graph_id}\r\n".encode("ascii")


def with_source_header(source: Payload, graph_id: str) -> Payload:
    """The source stream behind the header line, still a stream and restartable like the source."""
    header = source_header(graph_id)

    async def chunks() -> AsyncIterator[bytes]:
        yield header
        async for chunk in source.chunks():
            yield chunk

    return Payload(chunks, None if source.size is None else source.size + len(header))


def flags(message: dict[str, Any]) -> list[str]:
    """System flags Graph has an equivalent for, then the categories as keywords. Replied/forwarded
    state is not in the message resource, so $Answered/$Forwarded are not guessed."""
    out: list[str] = []
    if message.get("isRead"):
        out.append("\\Seen")
    if (message.get("flag") or {}).get("flagStatus") == "flagged":
        out.append("\\Flagged")
    if message.get("isDraft"):
        out.append("\\Draft")
    return out + keywords(message.get("categories") or [])


def keywords(categories: Iterable[Any]) -> list[str]:
    """Outlook categories as IMAP keywords: only ASCII letters, digits and _-. survive (a safe
    subset of atom characters, which also rules out a leading backslash or $ faking a system or
    well-known flag). A result without any letter or digit carries nothing of the category and is
    dropped; duplicates are dropped case-insensitively, as IMAP compares keywords that way."""
    out: list[str] = []
    seen: set[str] = set()
    for category in categories:
        if not isinstance(category, str):
            continue
        keyword = _NOT_ATOM_CHAR.sub("_", category)
        if not _MEANINGFUL.search(keyword) or keyword.lower() in seen:
            continue
        seen.add(keyword.lower())
        out.append(keyword)
    return out


def internal_date(message: dict[str, Any], folder_role: str = "") -> str | None:
    """When the message arrived, as IMAP's INTERNALDATE. Drafts and sent mail never arrived, so
    Graph may give them only a sending time."""
    received = utc_iso(message.get("receivedDateTime"))
    if received is None and (message.get("isDraft") or folder_role in _DATED_BY_SENDING):
        return utc_iso(message.get("sentDateTime"))
    return received


def utc_iso(value: Any) -> str | None:
    """'...Z' to the second (INTERNALDATE has no fractions); a time without zone is UTC, as in Graph."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
