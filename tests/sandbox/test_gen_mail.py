from __future__ import annotations

import base64
import email
import email.policy
import random
import re
import struct
import time
import zlib
from datetime import UTC, datetime
from email.parser import BytesHeaderParser

import pytest
from msgraph.generated.models.mail_folder import MailFolder
from msgraph.generated.models.message import Message

from migrator.sandbox.content import BytesBlob, ConcatBlob, RandomBlob
from migrator.sandbox.gen_mail import (
    Base64LinesBlob,
    MailFolderData,
    MessageData,
    build_mailbox,
    make_message,
    tiny_pdf,
)
from migrator.sandbox.names import DEPARTMENTS, DOMAIN, guid, local_part, person
from tests.sandbox.graph_models import assert_parses

WELL_KNOWN = {
    "msgfolderroot": None,
    "inbox": "Postvak IN",
    "sentitems": "Verzonden items",
    "deleteditems": "Verwijderde items",
    "drafts": "Concepten",
    "junkemail": "Ongewenste e-mail",
    "archive": "Archief",
    "outbox": "Postvak UIT",
}
ISO_Z = re.compile(r"^202[56]-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
EXCHANGE_ID = re.compile(r"^A[AQ]MkA[A-Za-z0-9_-]{40}AAA=$")


def make_users(count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    users = []
    for _ in range(count):
        given, family = person(rng)
        address = f"{local_part(given, family)}@{DOMAIN}"
        users.append({
            "id": guid(rng), "displayName": f"{given} {family}", "givenName": given, "surname": family,
            "userPrincipalName": address, "mail": address, "department": rng.choice(DEPARTMENTS),
        })
    return users


USERS = make_users(20)


@pytest.fixture(scope="module")
def mailbox() -> list[MailFolderData]:
    return build_mailbox(random.Random(42), USERS[0], USERS)


@pytest.fixture(scope="module")
def large_mailbox() -> list[MailFolderData]:
    return build_mailbox(random.Random(43), USERS[1], USERS, large_message=True)


def all_messages(folders: list[MailFolderData]) -> list[MessageData]:
    return [m for f in folders for m in f.messages]


def parsed(data: MessageData) -> email.message.EmailMessage:
    return email.message_from_bytes(data.mime.read_all(), policy=email.policy.default)


def by_name(folders: list[MailFolderData]) -> dict[str, MailFolderData]:
    return {f.folder["displayName"]: f for f in folders}


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


# ------------------------------------------------------------------------------------ Graph models


def test_every_folder_parses_as_a_graph_mail_folder(mailbox):
    for data in mailbox:
        folder = assert_parses(MailFolder, data.folder)
        assert folder.id and folder.display_name and folder.parent_folder_id
        assert folder.is_hidden is False


def test_every_message_parses_as_a_graph_message_with_known_enum_values(mailbox):
    for data in all_messages(mailbox):
        message = assert_parses(Message, data.message)
        # An unknown enum value parses to None rather than failing, so check them explicitly.
        assert message.importance is not None
        assert message.inference_classification is not None
        assert message.body.content_type is not None
        assert message.flag.flag_status is not None
        assert message.sent_date_time is not None and message.received_date_time is not None


# --------------------------------------------------------------------------------- folder structure


def test_each_well_known_folder_exists_once_with_its_dutch_name(mailbox):
    names = [f.well_known_name for f in mailbox if f.well_known_name]
    assert sorted(names) == sorted(WELL_KNOWN)
    for data in mailbox:
        if data.well_known_name and WELL_KNOWN[data.well_known_name]:
            assert data.folder["displayName"] == WELL_KNOWN[data.well_known_name]


def test_parents_point_at_real_folders_and_child_counts_match(mailbox):
    ids = {f.folder["id"] for f in mailbox}
    assert len(ids) == len(mailbox)
    root = next(f for f in mailbox if f.well_known_name == "msgfolderroot")
    assert mailbox[0] is root
    assert root.folder["parentFolderId"] not in ids  # as in Exchange: the root's parent is outside the IPM tree
    seen = set()
    for data in mailbox:
        if data is not root:
            assert data.folder["parentFolderId"] in seen, "every parent is listed before its children"
        seen.add(data.folder["id"])
        children = [f for f in mailbox if f.folder["parentFolderId"] == data.folder["id"]]
        assert data.folder["childFolderCount"] == len(children)
    for well_known in set(WELL_KNOWN) - {"msgfolderroot"}:
        folder = next(f for f in mailbox if f.well_known_name == well_known)
        assert folder.folder["parentFolderId"] == root.folder["id"]


def test_user_folders_nest_at_least_three_deep(mailbox):
    parents = {f.folder["id"]: f.folder["parentFolderId"] for f in mailbox}
    root_id = mailbox[0].folder["id"]

    def depth(folder_id: str) -> int:
        return 0 if folder_id == root_id else 1 + depth(parents[folder_id])

    deepest = max(mailbox, key=lambda f: depth(f.folder["id"]))
    assert depth(deepest.folder["id"]) >= 3
    chain, current = [], deepest.folder["id"]
    while current != root_id:
        chain.append(next(f.folder["displayName"] for f in mailbox if f.folder["id"] == current))
        current = parents[current]
    assert chain[::-1][:3] == ["Projecten", "2026", "Aanbesteding"]


def test_folder_names_needing_modified_utf7_and_an_empty_user_folder(mailbox):
    tricky = [f for f in mailbox if "&" in f.folder["displayName"] and not f.folder["displayName"].isascii()]
    assert tricky and tricky[0].messages
    assert all("/" not in f.folder["displayName"] for f in mailbox)
    empty = [f for f in mailbox if f.well_known_name is None and not f.messages and f.folder["childFolderCount"] == 0]
    assert empty


def test_folder_counts_match_their_messages(mailbox):
    for data in mailbox:
        assert data.folder["totalItemCount"] == len(data.messages)
        assert data.folder["unreadItemCount"] == sum(not m.message["isRead"] for m in data.messages)
        assert all(m.message["parentFolderId"] == data.folder["id"] for m in data.messages)
    total = len(all_messages(mailbox))
    assert 30 <= total <= 45
    unread = sum(f.folder["unreadItemCount"] for f in mailbox)
    assert 0 < unread < total


def test_drafts_and_sent_items(mailbox):
    folders = {f.well_known_name: f for f in mailbox}
    user_address = USERS[0]["mail"]
    drafts = folders["drafts"].messages
    assert drafts and all(m.message["isDraft"] for m in drafts)
    assert any(not m.message["toRecipients"] for m in drafts)
    assert not any(m.message["isDraft"] for f in mailbox if f.well_known_name != "drafts" for m in f.messages)
    sent = folders["sentitems"].messages
    assert sent and all(m.message["from"]["emailAddress"]["address"] == user_address for m in sent)
    assert any(m.message["bccRecipients"] for m in sent)
    received = folders["inbox"].messages
    assert all(
        user_address in [r["emailAddress"]["address"] for r in m.message["toRecipients"]] for m in received
    )


# ---------------------------------------------------------------------------------- message JSON


def test_ids_dates_and_links_look_like_exchange(mailbox):
    messages = all_messages(mailbox)
    ids = [m.message["id"] for m in messages] + [f.folder["id"] for f in mailbox]
    assert len(set(ids)) == len(ids)
    for item_id in ids:
        assert EXCHANGE_ID.match(item_id), item_id
    for data in messages:
        message = data.message
        assert re.fullmatch(r"[A-Za-z0-9+/]{40}", message["changeKey"])
        for key in ("createdDateTime", "lastModifiedDateTime", "receivedDateTime", "sentDateTime"):
            assert ISO_Z.match(message[key]), (key, message[key])
        assert when(message["createdDateTime"]) <= when(message["lastModifiedDateTime"])
        assert when(message["sentDateTime"]) <= when(message["receivedDateTime"])
        assert message["webLink"].startswith("https://outlook.office365.com/owa/?ItemID=AAMkA")
        assert len(message["bodyPreview"]) <= 255
        assert message["flag"]["flagStatus"] in ("notFlagged", "flagged", "complete")
        if message["flag"]["flagStatus"] == "flagged":
            assert {"startDateTime", "dueDateTime"} <= set(message["flag"])


def test_json_varies_like_a_real_mailbox(mailbox):
    messages = [m.message for m in all_messages(mailbox)]
    assert any(m["categories"] for m in messages)
    assert {m["importance"] for m in messages} == {"low", "normal", "high"}
    assert {m["inferenceClassification"] for m in messages} == {"focused", "other"}
    assert {m["body"]["contentType"] for m in messages} == {"text", "html"}
    assert any(m["isReadReceiptRequested"] for m in messages)
    assert any(m["replyTo"] for m in messages)
    assert any(m["sender"] != m["from"] for m in messages)
    assert any(m["ccRecipients"] for m in messages)


# ----------------------------------------------------------------------------------------- MIME


def test_mime_agrees_with_the_json(mailbox):
    for data in all_messages(mailbox):
        raw = data.mime.read_all()
        assert len(raw) == data.mime.size
        assert re.search(rb"(?<!\r)\n", raw) is None, "CRLF line endings only"
        assert raw.isascii(), "non-ASCII must be encoded (RFC 2047, quoted-printable, base64)"
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        message = data.message
        assert msg["Subject"] == message["subject"]
        assert msg["Message-ID"] == message["internetMessageId"]
        assert msg["Date"].datetime == when(message["sentDateTime"])
        assert msg["From"].addresses[0].addr_spec == message["from"]["emailAddress"]["address"]
        assert msg["From"].addresses[0].display_name == message["from"]["emailAddress"]["name"]
        to = [a.addr_spec for a in msg["To"].addresses] if msg["To"] else []
        assert to == [r["emailAddress"]["address"] for r in message["toRecipients"]]
        body = msg.get_body(("html",) if message["body"]["contentType"] == "html" else ("plain",))
        assert body.get_content().replace("\r\n", "\n") == message["body"]["content"].replace("\r\n", "\n")
        attachments = [p for p in msg.walk() if p.get_content_disposition() == "attachment"]
        assert bool(attachments) == message["hasAttachments"]


def test_mime_shapes_cover_what_a_migration_meets(mailbox):
    shapes = set()
    for data in all_messages(mailbox):
        msg = parsed(data)
        shapes |= {part.get_content_type() for part in msg.walk()}
        shapes.add("top:" + msg.get_content_type())
    assert {"top:text/plain", "top:text/html", "top:multipart/alternative", "top:multipart/mixed"} <= shapes
    assert {"multipart/related", "image/png", "application/pdf"} <= shapes


def test_non_ascii_headers_are_rfc2047_encoded_and_decode_back(mailbox):
    raw_all = b"".join(m.mime.read_all() for m in all_messages(mailbox))
    assert b"=?utf-8?" in raw_all
    names = {parsed(m)["From"].addresses[0].display_name for m in all_messages(mailbox)}
    assert {"Jürgen Müller", "Chloë Yılmaz"} <= names
    subjects = [m.message["subject"] for m in all_messages(mailbox)]
    assert any(not s.isascii() for s in subjects)
    filenames = [p.get_filename() for m in all_messages(mailbox) for p in parsed(m).walk() if p.get_filename()]
    assert "Notulen überleg.txt" in filenames


def test_inline_image_is_a_valid_png_referenced_by_cid(mailbox):
    found = 0
    for data in all_messages(mailbox):
        msg = parsed(data)
        for part in msg.walk():
            if part.get_content_type() != "image/png":
                continue
            found += 1
            assert part.get_content_disposition() == "inline"
            cid = part["Content-ID"].strip("<>")
            assert f'src="cid:{cid}"' in data.message["body"]["content"]
            assert data.message["hasAttachments"] is False  # Graph ignores inline-only attachments here
            check_png(part.get_content())
    assert found == 1


def check_png(png: bytes) -> None:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    offset, idat = 8, b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, data = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + data) & 0xFFFFFFFF == crc
        idat += data if kind == b"IDAT" else b""
        offset += 12 + length
    width, height = struct.unpack(">II", png[16:24])
    assert len(zlib.decompress(idat)) == height * (1 + 3 * width)


def test_pdf_attachment_has_a_consistent_xref():
    pdf = tiny_pdf("Offerte (concept) ü")
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    start = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[start:].startswith(b"xref")
    entries = pdf[start:].split(b"\n")[3:8]
    for number, entry in enumerate(entries, start=1):
        assert pdf[int(entry[:10]) :].startswith(b"%d 0 obj" % number)


def test_exactly_one_message_lacks_a_message_id(mailbox):
    missing = [m for m in all_messages(mailbox) if m.message["internetMessageId"] is None]
    assert len(missing) == 1
    assert "Message-ID" not in parsed(missing[0])
    assert b"\r\nMessage-ID:" not in missing[0].mime.read_all()
    for data in all_messages(mailbox):
        if data is not missing[0]:
            assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", data.message["internetMessageId"])


def test_replies_thread_by_in_reply_to_and_references(mailbox):
    by_message_id = {m.message["internetMessageId"]: m for m in all_messages(mailbox)}
    replies = [(m, parsed(m)) for m in all_messages(mailbox)]
    replies = [(m, msg) for m, msg in replies if msg["In-Reply-To"]]
    assert len(replies) >= 2
    for data, msg in replies:
        parent = by_message_id[str(msg["In-Reply-To"]).strip()]
        references = str(msg["References"]).split()
        assert references[-1] == parent.message["internetMessageId"]
        assert all(ref in by_message_id for ref in references)
        assert data.message["conversationId"] == parent.message["conversationId"]
        assert data.message["subject"] == "RE: " + parent.message["subject"].removeprefix("RE: ")
    assert any(len(str(msg["References"]).split()) >= 2 for _, msg in replies)


def test_mime_range_reads_equal_slices(mailbox):
    data = max(all_messages(mailbox), key=lambda m: m.mime.size)
    whole = data.mime.read_all()
    for start, end in ((0, 10), (5, data.mime.size), (100, 101), (data.mime.size - 7, None)):
        assert b"".join(data.mime.chunks(start, end, chunk_size=64)) == whole[start:end]


# -------------------------------------------------------------------------- determinism and speed


def test_same_seed_gives_byte_identical_mailboxes():
    first = build_mailbox(random.Random(99), USERS[3], USERS)
    second = build_mailbox(random.Random(99), USERS[3], USERS)
    assert [f.folder for f in first] == [f.folder for f in second]
    assert [f.well_known_name for f in first] == [f.well_known_name for f in second]
    assert [m.message for m in all_messages(first)] == [m.message for m in all_messages(second)]
    assert [m.mime.read_all() for m in all_messages(first)] == [m.mime.read_all() for m in all_messages(second)]
    other = build_mailbox(random.Random(100), USERS[3], USERS)
    assert [m.message for m in all_messages(other)] != [m.message for m in all_messages(first)]


def test_a_mailbox_builds_well_within_the_tenant_budget():
    started = time.perf_counter()
    for index, user in enumerate(USERS):
        build_mailbox(random.Random(index), user, USERS)
    per_mailbox = (time.perf_counter() - started) / len(USERS)
    assert per_mailbox < 0.2, f"{per_mailbox * 1000:.1f} ms per mailbox"


# ------------------------------------------------------------------------------- the large message


def large(folders: list[MailFolderData]) -> MessageData:
    [data] = [m for m in all_messages(folders) if m.mime.size > 1_000_000]
    return data


def test_large_message_is_about_30_mb_and_described_in_json(large_mailbox):
    data = large(large_mailbox)
    assert 28_000_000 <= data.mime.size <= 32_000_000
    assert data.message["hasAttachments"] is True
    assert isinstance(data.mime, ConcatBlob)
    assert_parses(Message, data.message)
    inbox = next(f for f in large_mailbox if f.well_known_name == "inbox")
    assert data in inbox.messages and inbox.folder["totalItemCount"] == len(inbox.messages)
    head = b"".join(data.mime.chunks(0, 4096))
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(head)
    assert headers["Subject"] == data.message["subject"]
    assert headers["Message-ID"] == data.message["internetMessageId"]
    assert headers.get_content_type() == "multipart/mixed"


def test_large_message_streams_to_its_size_and_serves_ranges(large_mailbox):
    blob = large(large_mailbox).mime
    head_size = blob.parts[0].size
    ranges = [(0, 300), (head_size - 50, head_size + 500), (15_000_000, 15_000_000 + 200_000), (blob.size - 400, blob.size)]
    captured = {r: bytearray() for r in ranges}
    total, tail = 0, b""
    for chunk in blob.chunks():
        for (start, end), buffer in captured.items():
            lo, hi = max(start, total), min(end, total + len(chunk))
            if lo < hi:
                buffer += chunk[lo - total : hi - total]
        total += len(chunk)
        tail = (tail + chunk)[-200:]
    assert total == blob.size
    assert tail.endswith(b"--\r\n")
    for (start, end), expected in captured.items():
        assert b"".join(blob.chunks(start, end)) == bytes(expected)


def test_large_attachment_base64_decodes_to_its_source(large_mailbox):
    blob = large(large_mailbox).mime
    encoded: Base64LinesBlob = blob.parts[1]
    line = 200_000  # any line n encodes source bytes [57n, 57n + 57)
    text = b"".join(encoded.chunks(line * 78, (line + 3) * 78))
    assert text.count(b"\r\n") == 3 and all(len(row) == 76 for row in text.split(b"\r\n")[:3])
    source = b"".join(encoded.source.chunks(line * 57, (line + 3) * 57))
    assert base64.b64decode(text.replace(b"\r\n", b"")) == source


@pytest.mark.parametrize("size", [0, 1, 2, 56, 57, 58, 57 * 1150, 57 * 1150 + 1, 57 * 2300 + 40, 200_003])
def test_base64_lines_blob_matches_the_stdlib_encoding(size):
    source = RandomBlob(size, seed=size)
    blob = Base64LinesBlob(source)
    expected = base64.encodebytes(source.read_all()).replace(b"\n", b"\r\n")
    assert blob.size == len(expected)
    assert blob.read_all() == expected
    rng = random.Random(size)
    for _ in range(5):
        start = rng.randrange(0, max(len(expected), 1))
        end = rng.randrange(start, len(expected) + 1)
        assert b"".join(blob.chunks(start, end, chunk_size=1000)) == expected[start:end]
    assert all(len(c) <= 1000 for c in blob.chunks(chunk_size=1000))


def test_base64_lines_blob_works_inside_concat():
    blob = ConcatBlob([BytesBlob(b"head\r\n\r\n"), Base64LinesBlob(BytesBlob(bytes(range(256)) * 3)), BytesBlob(b"--x--\r\n")])
    whole = blob.read_all()
    assert len(whole) == blob.size
    assert b"".join(blob.chunks(3, blob.size - 2)) == whole[3:-2]


# ----------------------------------------------------------------------------------- make_message


def test_make_message_is_a_fresh_unread_message_for_the_folder(mailbox):
    inbox = next(f for f in mailbox if f.well_known_name == "inbox")
    moment = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
    data = make_message(random.Random(5), USERS[0], USERS, inbox.folder["id"], when=moment)
    assert_parses(Message, data.message)
    assert data.message["parentFolderId"] == inbox.folder["id"]
    assert data.message["receivedDateTime"] == "2026-07-01T09:30:00Z"
    assert data.message["isRead"] is False and data.message["isDraft"] is False
    assert data.message["id"] not in {m.message["id"] for m in inbox.messages}
    msg = parsed(data)
    assert msg["Subject"] == data.message["subject"]
    assert msg["Message-ID"] == data.message["internetMessageId"]
    again = make_message(random.Random(5), USERS[0], USERS, inbox.folder["id"], when=moment)
    assert again.message == data.message and again.mime.read_all() == data.mime.read_all()
    undated = make_message(random.Random(6), USERS[0], USERS, inbox.folder["id"])
    assert ISO_Z.match(undated.message["receivedDateTime"])


def test_mailbox_without_colleagues_still_builds():
    folders = build_mailbox(random.Random(1), USERS[0], [])
    assert 30 <= len(all_messages(folders)) <= 45
    for data in all_messages(folders):
        assert parsed(data)["Subject"] == data.message["subject"]
