"""Synthetic Exchange mailboxes: mailFolder and message JSON as Graph v1.0 returns them, plus the RFC 5322
bytes `GET /users/{id}/messages/{id}/$value` serves.

The mailboxes deliberately carry what trips up a mail migration: Dutch well-known folder names, user
folders nested four deep, a folder name that needs IMAP modified UTF-7 ("Überleg & Co"), an empty
folder, RFC 2047 headers, every common MIME shape, a message without a Message-ID, a three-message
thread with In-Reply-To/References, a draft without recipients, and optionally one ~30 MB message.

Everything is drawn from the `rng` passed in, so one seed always yields byte-identical mailboxes.
"""

from __future__ import annotations

import base64
import email.policy
import email.utils
import hashlib
import html
import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import quote

from migrator.sandbox.content import BLOCK, Blob, BytesBlob, ConcatBlob, RandomBlob
from migrator.sandbox.names import TOPICS, local_part, person

# SMTP gives CRLF line endings and RFC 2047 / RFC 2231 encoded non-ASCII headers. refold_source
# "none" leaves headers set with set_raw alone: the package treats In-Reply-To and References as
# unstructured text and would turn a long msg-id into encoded words, which no threader understands.
MIME_POLICY = email.policy.SMTP.clone(refold_source="none")

ROOT_DISPLAY_NAME = "Bovenste map van gegevensarchief"
WELL_KNOWN_FOLDERS: tuple[tuple[str, str], ...] = (
    ("inbox", "Postvak IN"),
    ("drafts", "Concepten"),
    ("sentitems", "Verzonden items"),
    ("deleteditems", "Verwijderde items"),
    ("junkemail", "Ongewenste e-mail"),
    ("archive", "Archief"),
    ("outbox", "Postvak UIT"),
)
EXTERNAL_DOMAINS = ("example.org", "example.net")
CATEGORIES = ("Rood", "Project X", "Blauw", "Opvolgen")
LARGE_ATTACHMENT_BYTES = 22_000_000  # base64 in CRLF lines makes the message ~30 MB
LARGE_MESSAGE_BYTES = LARGE_ATTACHMENT_BYTES * 4 // 3 * 78 // 76  # what one such message weighs, near enough
_EPOCH = datetime(2025, 1, 6, 7, 0, tzinfo=UTC)
_SPAN_SECONDS = int((datetime(2026, 6, 26, 18, 0, tzinfo=UTC) - _EPOCH).total_seconds())
OWA = "https://outlook.office365.com/owa/"
_URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass
class MessageData:
    message: dict  # Graph v1.0 `message` resource JSON (camelCase, exactly as Graph returns it)
    mime: Blob  # the RFC 5322 bytes GET /users/{id}/messages/{id}/$value returns


@dataclass
class MailFolderData:
    folder: dict  # Graph v1.0 `mailFolder` JSON
    well_known_name: str | None  # "inbox", "sentitems", ..., "msgfolderroot", or None for a user folder
    messages: list[MessageData] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- blobs


class MimeBlob(Blob):
    """MIME rendered on first read and then kept. Rendering with the email package costs ~2 ms a
    message, which for 40 messages and 20 users would blow the tenant's generation budget, and most
    messages are never fetched as MIME at all. The spec holds every choice, so laziness keeps
    determinism."""

    def __init__(self, spec: MimeSpec) -> None:
        self.spec = spec
        self._data: bytes | None = None

    def _bytes(self) -> bytes:
        if self._data is None:
            self._data = render_mime(self.spec)
        return self._data

    @property
    def size(self) -> int:  # type: ignore[override]
        return len(self._bytes())

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = BLOCK) -> Iterator[bytes]:
        return BytesBlob(self._bytes()).chunks(start, end, chunk_size)


class Base64LinesBlob(Blob):
    """Base64 of another blob in 76-character CRLF lines (RFC 2045), encoded per requested range so a
    30 MB attachment is never held whole. Line n always encodes source bytes [57n, 57n + 57)."""

    RAW_PER_LINE = 57
    OUT_PER_LINE = 78  # 76 characters + CRLF
    LINES_PER_BATCH = 1150  # ~64 KiB of source per encode call

    def __init__(self, source: Blob) -> None:
        self.source = source
        full, rest = divmod(source.size, self.RAW_PER_LINE)
        self.size = full * self.OUT_PER_LINE + ((rest + 2) // 3 * 4 + 2 if rest else 0)

    def _encoded_lines(self, first: int, count: int) -> bytes:
        raw_start = first * self.RAW_PER_LINE
        raw_end = min((first + count) * self.RAW_PER_LINE, self.source.size)
        raw = b"".join(self.source.chunks(raw_start, raw_end))
        return base64.encodebytes(raw).replace(b"\n", b"\r\n")

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = BLOCK) -> Iterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        offset = start
        while offset < end:
            first = offset // self.OUT_PER_LINE
            encoded = self._encoded_lines(first, self.LINES_PER_BATCH)
            base = first * self.OUT_PER_LINE
            piece = encoded[offset - base : end - base]
            if not piece:
                break
            for at in range(0, len(piece), chunk_size):
                yield piece[at : at + chunk_size]
            offset += len(piece)


# ------------------------------------------------------------------------------------- binary bits


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def tiny_png(width: int = 16, height: int = 16) -> bytes:
    """A valid RGB PNG (a colour gradient) built without imaging libraries, for inline cid: images."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 160)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows, 9)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


INLINE_PNG = tiny_png()


def tiny_pdf(title: str) -> bytes:
    """A one-page PDF with a correct xref table, so a target that previews attachments can open it."""
    text = title.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    stream = b"BT /F1 14 Tf 72 770 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>"),
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


# ------------------------------------------------------------------------------------- ids, dates


def _urlsafe(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(_URLSAFE, k=length))


def exchange_id(rng: random.Random, prefix: str = "AAMkA") -> str:
    """Opaque like an Exchange REST id: URL-safe base64 that ends in "=" padding, so routes and
    clients must accept "-", "_" and "=" in a path segment."""
    return prefix + _urlsafe(rng, 40) + "AAA="


def change_key(rng: random.Random) -> str:
    # Real change keys are 30 bytes in standard base64 ("+" and "/" occur), starting "CQAAABYAAA".
    return base64.b64encode(b"\x09\x00\x00\x00\x16\x00\x00\x00" + rng.randbytes(22)).decode()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _flag_time(moment: datetime) -> dict:
    # followupFlag uses dateTimeTimeZone, which Graph writes with seven fractional digits.
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def _random_moment(rng: random.Random, start: datetime = _EPOCH, span: int = _SPAN_SECONDS) -> datetime:
    moment = start + timedelta(seconds=rng.randrange(span))
    # Office hours on weekdays, like most real mail; keeps dates plausible for a human reading them.
    moment = moment.replace(hour=7 + moment.hour % 11)
    return moment - timedelta(days=max(moment.weekday() - 4, 0))


# --------------------------------------------------------------------------------------- people


@dataclass(frozen=True)
class Person:
    name: str
    address: str

    def recipient(self) -> dict:
        return {"emailAddress": {"name": self.name, "address": self.address}}

    def header(self) -> Address:
        local, _, domain = self.address.partition("@")
        return Address(self.name, local, domain)


def _from_user(user: dict) -> Person:
    return Person(user["displayName"], user.get("mail") or user["userPrincipalName"])


def _external(rng: random.Random, given: str | None = None, family: str | None = None) -> Person:
    drawn_given, drawn_family = person(rng)
    given, family = given or drawn_given, family or drawn_family
    return Person(f"{given} {family}", f"{local_part(given, family)}@{rng.choice(EXTERNAL_DOMAINS)}")


# ---------------------------------------------------------------------------------------- content

_SENTENCES = (
    "Zoals besproken stuur ik je hierbij de stand van zaken rond {topic}.",
    "Kun je vóór vrijdag laten weten of je akkoord bent met de planning voor {topic}?",
    "In de bijlage vind je de laatste versie; de wijzigingen zijn geel gemarkeerd.",
    "Het overleg over {topic} is verplaatst naar donderdag 10.00 uur in zaal 2.14.",
    "Ik heb de opmerkingen van het team verwerkt, alleen paragraaf 3 staat nog open.",
    "Wil je dit ook even afstemmen met de collega's van {department}?",
    "De reactietermijn loopt af op de 15e, dus graag tijdig je inbreng.",
    "Dank voor je snelle reactie, daar kunnen we mee verder.",
    "Voor de volledigheid: het budget voor {topic} blijft ongewijzigd.",
    "Ik ben maandag afwezig; Noor neemt dan waar.",
)
_SUBJECTS = (
    "Stand van zaken {topic}",
    "Vraag over {topic}",
    "Agenda overleg {topic} week {week}",
    "Concept notitie {topic} — graag reactie",
    "Afspraken {topic}",
    "Overleg over {topic}: één vraag nog",
    "Terugkoppeling {topic}",
)


@dataclass(frozen=True)
class Attachment:
    filename: str
    maintype: str
    subtype: str
    data: bytes
    content_id: str | None = None  # set for inline (cid:) images

    @property
    def inline(self) -> bool:
        return self.content_id is not None


@dataclass(frozen=True)
class MimeSpec:
    """Every choice the $value bytes depend on, fixed when the message is made so the MIME can be
    rendered later (lazily) without touching the rng."""

    subject: str
    sender: Person
    author: Person  # From; differs from sender when sent on behalf of someone
    to: tuple[Person, ...]
    cc: tuple[Person, ...]
    bcc: tuple[Person, ...]
    reply_to: tuple[Person, ...]
    sent: datetime
    received: datetime | None  # None for drafts and sent items: no Received header
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    text: str | None  # "\n" line endings; rendered with CRLF
    html: str | None
    attachments: tuple[Attachment, ...]
    importance: str
    read_receipt: bool
    extra_headers: tuple[tuple[str, str], ...]
    boundary_token: str


def _paragraphs(rng: random.Random, recipient_given: str, topic: str, department: str, signer: str) -> list[str]:
    sentences = rng.sample(_SENTENCES, rng.randint(2, 4))
    body = " ".join(s.format(topic=topic, department=department) for s in sentences)
    return [f"Beste {recipient_given},", body, f"Met vriendelijke groet,\n{signer}"]


def _text_of(paragraphs: list[str]) -> str:
    return "\n\n".join(paragraphs) + "\n"


def _html_of(paragraphs: list[str], inline_cid: str | None = None) -> str:
    """HTML in the shape Exchange stores it, which is also what Graph returns as body.content."""
    blocks = "".join(f"<p>{html.escape(p, quote=False).replace(chr(10), '<br>')}</p>\n" for p in paragraphs)
    if inline_cid:
        blocks += f'<p><img src="cid:{inline_cid}" alt="logo" width="16" height="16"></p>\n'
    return (
        '<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n</head>\n'
        f'<body>\n<div style="font-family:Calibri,Arial,sans-serif;font-size:11pt">\n{blocks}</div>\n</body>\n</html>\n'
    )


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def render_mime(spec: MimeSpec) -> bytes:
    """The RFC 5322 bytes of a message, CRLF throughout, deterministic for a given spec."""
    return build_email(spec).as_bytes(policy=MIME_POLICY)


def build_email(spec: MimeSpec) -> EmailMessage:
    msg = EmailMessage(policy=MIME_POLICY)
    if spec.received is not None:
        stamp = email.utils.format_datetime(spec.received)
        msg["Received"] = (
            f"from mail.{spec.sender.address.partition('@')[2]} (192.0.2.{len(spec.subject) % 250 + 1}) by "
            f"AM0PR07MB{spec.boundary_token[:4].upper()}.eurprd07.prod.outlook.example "
            f"with Microsoft SMTP Server id 15.20.8722.0; {stamp}"
        )
    msg["From"] = spec.author.header()
    if spec.sender != spec.author:
        msg["Sender"] = spec.sender.header()
    for name, people in (("To", spec.to), ("Cc", spec.cc), ("Bcc", spec.bcc), ("Reply-To", spec.reply_to)):
        if people:
            msg[name] = [p.header() for p in people]
    msg["Subject"] = spec.subject
    msg["Date"] = email.utils.format_datetime(spec.sent)
    if spec.message_id is not None:
        msg["Message-ID"] = spec.message_id
    if spec.in_reply_to:
        msg.set_raw("In-Reply-To", spec.in_reply_to)
    if spec.references:
        # One msg-id a line, as Exchange folds them; a line may pass 78 characters, never 998.
        msg.set_raw("References", "\r\n ".join(spec.references))
    if spec.importance != "normal":
        msg["Importance"] = spec.importance
        msg["X-Priority"] = "1" if spec.importance == "high" else "5"
    if spec.read_receipt:
        msg["Disposition-Notification-To"] = str(spec.sender.header())
    for name, value in spec.extra_headers:
        msg[name] = value
    msg["MIME-Version"] = "1.0"
    _add_body(msg, spec)
    # After the body: set_content drops Content-* headers set before it.
    msg["Content-Language"] = "nl-NL"
    _fix_structure(msg, spec.boundary_token)
    return msg


def _add_body(msg: EmailMessage, spec: MimeSpec) -> None:
    # Quoted-printable like Exchange, and it keeps every line short and ASCII.
    if spec.text is not None:
        msg.set_content(spec.text, cte="quoted-printable")
        if spec.html is not None:
            msg.add_alternative(spec.html, subtype="html", cte="quoted-printable")
    else:
        msg.set_content(spec.html or "", subtype="html", cte="quoted-printable")
    inline = [a for a in spec.attachments if a.inline]
    if inline:
        # The HTML and its images form a multipart/related inside the alternative (how Apple Mail and
        # Thunderbird send it); the email package cannot wrap an existing alternative in a related.
        html_part = msg.get_payload()[-1] if msg.is_multipart() else msg
        for image in inline:
            html_part.add_related(image.data, image.maintype, image.subtype, cid=f"<{image.content_id}>",
                                  disposition="inline", filename=image.filename)
    for item in spec.attachments:
        if not item.inline:
            msg.add_attachment(item.data, item.maintype, item.subtype, filename=item.filename)


def _fix_structure(msg: EmailMessage, token: str) -> None:
    """Fixed boundaries (the email package would draw random ones) and no MIME-Version on sub-parts."""
    for index, part in enumerate(msg.walk()):
        if part is not msg:
            del part["MIME-Version"]
        if part.is_multipart():
            part.set_boundary(f"_{index:03d}_{token}_")


# -------------------------------------------------------------------------------- message assembly


@dataclass
class MessagePlan:
    """What a message will be; turned into JSON and a lazily rendered MIME blob by `finish`."""

    subject: str
    author: Person
    to: list[Person]
    sent: datetime
    paragraphs: list[str]
    kind: str = "alternative"  # plain | html | alternative (attachments may be added to any)
    sender: Person | None = None
    cc: list[Person] = field(default_factory=list)
    bcc: list[Person] = field(default_factory=list)
    reply_to: list[Person] = field(default_factory=list)
    received: datetime | None = None
    has_message_id: bool = True
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    importance: str = "normal"
    read_receipt: bool = False
    is_read: bool = True
    is_draft: bool = False
    categories: list[str] = field(default_factory=list)
    flag: dict = field(default_factory=lambda: {"flagStatus": "notFlagged"})
    inference: str = "focused"
    conversation_id: str | None = None
    extra_headers: list[tuple[str, str]] = field(default_factory=list)


def _message_id_for(rng: random.Random, author: Person, internal_domain: str) -> str:
    token = f"{rng.getrandbits(128):032X}"
    domain = author.address.partition("@")[2]
    if domain == internal_domain:
        host = f"AM0PR07MB{rng.randrange(1000, 9999)}.eurprd07.prod.outlook.example"
        return f"<AM0PR07MB{token}@{host}>"
    return f"<{token.lower()}@mail.{domain}>"


def finish(rng: random.Random, plan: MessagePlan, folder_id: str, internal_domain: str) -> MessageData:
    """Draws the ids, fixes the MIME spec and builds the Graph JSON that agrees with it."""
    message_id = plan.message_id
    if message_id is None and plan.has_message_id:
        message_id = _message_id_for(rng, plan.author, internal_domain)
    graph_id = exchange_id(rng)
    received = plan.received or plan.sent
    created = received if plan.received else plan.sent - timedelta(minutes=rng.randint(1, 30))
    modified = max(received, created) + timedelta(seconds=rng.randint(0, 7200) if plan.is_read else 0)
    html_body = _html_of(plan.paragraphs, next((a.content_id for a in plan.attachments if a.inline), None))
    text_body = _text_of(plan.paragraphs)
    with_text = plan.kind in ("plain", "alternative")
    with_html = plan.kind in ("html", "alternative")
    spec = MimeSpec(
        subject=plan.subject,
        sender=plan.sender or plan.author,
        author=plan.author,
        to=tuple(plan.to),
        cc=tuple(plan.cc),
        bcc=tuple(plan.bcc),
        reply_to=tuple(plan.reply_to),
        sent=plan.sent,
        received=plan.received,
        message_id=message_id,
        in_reply_to=plan.in_reply_to,
        references=tuple(plan.references),
        text=text_body if with_text else None,
        html=html_body if with_html else None,
        attachments=tuple(plan.attachments),
        importance=plan.importance,
        read_receipt=plan.read_receipt,
        extra_headers=tuple(plan.extra_headers),
        boundary_token=hashlib.sha1(graph_id.encode()).hexdigest()[:24],
    )
    key = change_key(rng)
    # Graph returns the body in its stored format unless the client sends Prefer: outlook.body-content-type.
    body = {"contentType": "html" if with_html else "text", "content": _crlf(html_body if with_html else text_body)}
    message = {
        "id": graph_id,
        "createdDateTime": iso(created),
        "lastModifiedDateTime": iso(modified),
        "changeKey": key,
        "categories": list(plan.categories),
        "receivedDateTime": iso(received),
        "sentDateTime": iso(plan.sent),
        # Graph counts only real attachments here; a message whose only attachment is an inline
        # cid: image reports false.
        "hasAttachments": any(not a.inline for a in plan.attachments),
        # Exchange emits a Message-ID in $value exactly when the item has one, so an item whose MIME
        # lacks it has no internetMessageId either; Graph then returns null.
        "internetMessageId": message_id,
        "subject": plan.subject,
        "bodyPreview": _crlf(text_body).strip()[:255],
        "importance": plan.importance,
        "parentFolderId": folder_id,
        "conversationId": plan.conversation_id or exchange_id(rng, "AAQkA"),
        "isDeliveryReceiptRequested": False,
        "isReadReceiptRequested": plan.read_receipt,
        "isRead": plan.is_read,
        "isDraft": plan.is_draft,
        "webLink": f"{OWA}?ItemID={quote(graph_id, safe='')}&exvsurl=1&viewmodel=ReadMessageItem",
        "inferenceClassification": plan.inference,
        "body": body,
        "sender": (plan.sender or plan.author).recipient(),
        "from": plan.author.recipient(),
        "toRecipients": [p.recipient() for p in plan.to],
        "ccRecipients": [p.recipient() for p in plan.cc],
        "bccRecipients": [p.recipient() for p in plan.bcc],
        "replyTo": [p.recipient() for p in plan.reply_to],
        "flag": plan.flag,
    }
    return MessageData(message=message, mime=MimeBlob(spec))


# ------------------------------------------------------------------------------------ the mailbox


class MailboxWriter:
    """Draws the content of one mailbox from `rng`: who writes, about what, when, and in which shape."""

    def __init__(self, rng: random.Random, user: dict, colleagues: list[dict]) -> None:
        self.rng = rng
        self.user = user
        self.me = _from_user(user)
        self.colleagues = [_from_user(c) for c in colleagues if c.get("id") != user.get("id")]
        self.departments = [c["department"] for c in colleagues if c.get("department")] or ["Bestuursondersteuning"]
        self.domain = self.me.address.partition("@")[2]

    # people and words

    def colleague(self) -> Person:
        return self.rng.choice(self.colleagues) if self.colleagues else _external(self.rng)

    def two_colleagues(self) -> tuple[Person, Person]:
        if len(self.colleagues) >= 2:
            first, second = self.rng.sample(self.colleagues, 2)
            return first, second
        return self.colleague(), self.external()

    def external(self) -> Person:
        return _external(self.rng)

    def given(self, who: Person) -> str:
        return who.name.split(" ")[0]

    def subject(self, topic: str) -> str:
        template = self.rng.choice(_SUBJECTS)
        return template.format(topic=topic, week=self.rng.randint(2, 51))

    def paragraphs(self, to: Person, author: Person, topic: str) -> list[str]:
        return _paragraphs(self.rng, self.given(to), topic, self.rng.choice(self.departments), author.name)

    def moment(self, *, before: datetime | None = None) -> datetime:
        if before is None:
            return _random_moment(self.rng)
        # A day of margin: _random_moment moves the hour within the drawn day.
        return _random_moment(self.rng, _EPOCH, max(int((before - _EPOCH).total_seconds()) - 86400, 3600))

    def decorate(self, plan: MessagePlan) -> MessagePlan:
        """Categories and flags on about a fifth of the messages each, as people actually use them."""
        rng = self.rng
        if rng.random() < 0.2:
            plan.categories = rng.sample(CATEGORIES, rng.randint(1, 2))
        roll = rng.random()
        if roll < 0.12:
            start = plan.sent.replace(hour=0, minute=0, second=0)
            plan.flag = {
                "flagStatus": "flagged",
                "startDateTime": _flag_time(start),
                "dueDateTime": _flag_time(start + timedelta(days=rng.randint(1, 14))),
            }
        elif roll < 0.18:
            start = plan.sent.replace(hour=0, minute=0, second=0)
            plan.flag = {
                "flagStatus": "complete",
                "startDateTime": _flag_time(start),
                "dueDateTime": _flag_time(start + timedelta(days=3)),
                "completedDateTime": _flag_time(plan.sent + timedelta(days=2)),
            }
        return plan

    # message shapes

    def received(self, *, author: Person | None = None, subject: str | None = None, kind: str | None = None,
                 when: datetime | None = None, topic: str | None = None, read: float = 0.6) -> MessagePlan:
        rng = self.rng
        author = author or (self.colleague() if rng.random() < 0.65 else self.external())
        topic = topic or rng.choice(TOPICS)
        sent = when - timedelta(seconds=rng.randint(2, 90)) if when else self.moment()
        cc = rng.sample(self.colleagues, min(len(self.colleagues), rng.randint(0, 2))) if rng.random() < 0.3 else []
        plan = MessagePlan(
            subject=subject or self.subject(topic),
            author=author,
            to=[self.me],
            cc=[p for p in cc if p != author],
            sent=sent,
            received=when or sent + timedelta(seconds=rng.randint(2, 90)),
            paragraphs=self.paragraphs(self.me, author, topic),
            kind=kind or rng.choice(("plain", "html", "alternative", "alternative")),
            is_read=rng.random() < read,
        )
        return self.decorate(plan)

    def sent(
        self, *, to: list[Person] | None = None, subject: str | None = None, when: datetime | None = None
    ) -> MessagePlan:
        rng = self.rng
        to = to or [self.colleague() if rng.random() < 0.7 else self.external()]
        topic = rng.choice(TOPICS)
        plan = MessagePlan(
            subject=subject or self.subject(topic),
            author=self.me,
            to=to,
            sent=when or self.moment(),
            paragraphs=self.paragraphs(to[0], self.me, topic),
            kind=rng.choice(("alternative", "alternative", "html")),
        )
        return self.decorate(plan)

    def pdf(self, title: str) -> Attachment:
        return Attachment(f"{title}.pdf", "application", "pdf", tiny_pdf(title))


def _folder_json(folder_id: str, name: str, parent_id: str) -> dict:
    return {
        "id": folder_id,
        "displayName": name,
        "parentFolderId": parent_id,
        "childFolderCount": 0,
        "unreadItemCount": 0,
        "totalItemCount": 0,
        "isHidden": False,
    }


class MailboxBuilder:
    """Folders first (so messages know their parentFolderId), then the messages of each folder."""

    def __init__(self, rng: random.Random, user: dict, colleagues: list[dict]) -> None:
        self.rng = rng
        self.writer = MailboxWriter(rng, user, colleagues)
        self.folders: list[MailFolderData] = []
        self.by_key: dict[str, MailFolderData] = {}

    def add_folder(self, key: str, name: str, parent: str | None, well_known: str | None = None) -> MailFolderData:
        # Well-known folders carry the "AQMkA" prefix Exchange gives distinguished folders.
        folder_id = exchange_id(self.rng, "AQMkA" if well_known else "AAMkA")
        parent_id = self.by_key[parent].folder["id"] if parent else exchange_id(self.rng, "AQMkA")
        data = MailFolderData(_folder_json(folder_id, name, parent_id), well_known, [])
        self.folders.append(data)
        self.by_key[key] = data
        if parent:
            self.by_key[parent].folder["childFolderCount"] += 1
        return data

    def add(self, key: str, plan: MessagePlan) -> MessageData:
        folder = self.by_key[key]
        data = finish(self.rng, plan, folder.folder["id"], self.writer.domain)
        folder.messages.append(data)
        return data

    def build_folders(self) -> None:
        self.add_folder("root", ROOT_DISPLAY_NAME, None, "msgfolderroot")
        for well_known, name in WELL_KNOWN_FOLDERS:
            self.add_folder(well_known, name, "root", well_known)
        self.add_folder("newsletters", "Nieuwsbrieven", "inbox")
        self.add_folder("projects", "Projecten", "root")
        self.add_folder("year", "2026", "projects")
        self.add_folder("tender", "Aanbesteding", "year")
        self.add_folder("quotes", "Offertes", "tender")
        self.add_folder("umlaut", "Überleg & Co", "root")
        self.add_folder("empty", "Nog te sorteren", "root")

    def finish_counts(self) -> list[MailFolderData]:
        for data in self.folders:
            data.folder["totalItemCount"] = len(data.messages)
            data.folder["unreadItemCount"] = sum(not m.message["isRead"] for m in data.messages)
        return self.folders


def _fill_inbox(b: MailboxBuilder) -> None:
    w, rng = b.writer, b.rng
    _thread(b)
    # Non-ASCII display names and subjects: RFC 2047 encoded words in From and Subject.
    b.add("inbox", w.received(author=_external(rng, "Jürgen", "Müller"), kind="alternative",
                              subject="Überleg über de aanbesteding — één opmerking"))
    b.add("inbox", w.received(author=_external(rng, "Chloë", "Yılmaz"), kind="plain",
                              subject="Çok teşekkürler: verslag ketenoverleg"))
    b.add("inbox", w.received(subject="🎉 Teamuitje in juni: stemmen maar!", kind="html"))
    # Inline image: multipart/related with a cid: reference from the HTML.
    related = w.received(kind="alternative", topic="persbericht")
    cid = f"image001.png@01DC{rng.randrange(16**4):04X}.{rng.randrange(16**8):08X}"
    related.attachments.append(Attachment("image001.png", "image", "png", INLINE_PNG, content_id=cid))
    b.add("inbox", related)
    urgent = w.received(kind="alternative", read=0.0)
    urgent.importance = "high"
    urgent.read_receipt = True
    b.add("inbox", urgent)
    low = w.received(kind="plain")
    low.importance = "low"
    b.add("inbox", low)
    # Sent on behalf of: Sender differs from From.
    manager, assistant = w.two_colleagues()
    delegated = w.received(author=manager, kind="alternative")
    delegated.sender = assistant
    b.add("inbox", delegated)
    for _ in range(rng.randint(3, 5)):
        b.add("inbox", w.received())


def _thread(b: MailboxBuilder) -> None:
    """Colleague writes, the user replies (Sent Items), the colleague answers: In-Reply-To/References."""
    w, rng = b.writer, b.rng
    other = w.colleague()
    conversation = exchange_id(rng, "AAQkA")
    first = w.received(author=other, kind="alternative", topic="begroting 2027")
    first.conversation_id = conversation
    first.is_read = True
    original = b.add("inbox", first)
    original_id = original.message["internetMessageId"]
    assert first.received is not None
    reply_at = first.received + timedelta(hours=rng.randint(1, 20))
    reply = w.sent(to=[other], subject="RE: " + first.subject, when=reply_at)
    reply.in_reply_to, reply.references, reply.conversation_id = original_id, [original_id], conversation
    answer_sent = b.add("sentitems", reply).message
    answer = w.received(author=other, subject=reply.subject, kind="alternative", when=reply.sent + timedelta(hours=2))
    answer.in_reply_to = answer_sent["internetMessageId"]
    answer.references = [original_id, answer_sent["internetMessageId"]]
    answer.conversation_id, answer.is_read = conversation, False
    b.add("inbox", answer)


def _fill_newsletters(b: MailboxBuilder) -> None:
    w, rng = b.writer, b.rng
    for _ in range(rng.randint(2, 4)):
        sender = Person("Nieuwsbrief Digitale Overheid", f"nieuwsbrief@{rng.choice(EXTERNAL_DOMAINS)}")
        subject = f"Nieuwsbrief {rng.choice(TOPICS)} nr. {rng.randint(1, 40)}"
        letter = w.received(author=sender, kind="html", subject=subject)
        letter.reply_to = [Person("Redactie", f"redactie@{sender.address.partition('@')[2]}")]
        letter.inference = "other"
        letter.extra_headers = [("List-Unsubscribe", f"<https://{sender.address.partition('@')[2]}/afmelden>")]
        b.add("newsletters", letter)


def _fill_drafts(b: MailboxBuilder) -> None:
    w, rng = b.writer, b.rng
    for index in range(rng.randint(2, 3)):
        plan = w.sent()
        plan.is_draft, plan.flag, plan.categories = True, {"flagStatus": "notFlagged"}, []
        if index == 0:
            plan.to = []  # a draft not yet addressed to anyone
        plan.received = None
        b.add("drafts", plan)


def _fill_sent(b: MailboxBuilder) -> None:
    w, rng = b.writer, b.rng
    with_bcc = w.sent()
    with_bcc.bcc = [w.colleague()]
    b.add("sentitems", with_bcc)
    with_pdf = w.sent()
    with_pdf.attachments.append(w.pdf("Notitie " + rng.choice(TOPICS)))
    b.add("sentitems", with_pdf)
    for _ in range(rng.randint(2, 4)):
        b.add("sentitems", w.sent())


def _fill_rest(b: MailboxBuilder) -> None:
    w, rng = b.writer, b.rng
    for _ in range(rng.randint(2, 3)):
        b.add("deleteditems", w.received(read=0.9))
    for _ in range(rng.randint(1, 2)):
        spam = w.received(author=w.external(), kind="html", subject="Gefeliciteerd! U heeft een prijs gewonnen",
                          read=0.0)
        spam.inference, spam.categories, spam.flag = "other", [], {"flagStatus": "notFlagged"}
        b.add("junkemail", spam)
    old_limit = datetime(2025, 12, 31, tzinfo=UTC)
    # Imported from an old archive: no Message-ID header at all.
    orphan = w.received(author=Person("Storingsmelding", f"noreply@{EXTERNAL_DOMAINS[1]}"), kind="plain",
                        subject="Automatische melding: back-up voltooid", when=w.moment(before=old_limit))
    orphan.has_message_id = False
    b.add("archive", orphan)
    for _ in range(rng.randint(2, 3)):
        b.add("archive", w.received(when=w.moment(before=old_limit), read=1.0))
    for key, low, high in (("projects", 1, 2), ("year", 1, 2)):
        for _ in range(rng.randint(low, high)):
            b.add(key, w.received(topic="aanbesteding"))
    for key in ("tender", "tender", "quotes"):
        tender = w.received(topic="aanbesteding", kind="alternative")
        tender.attachments.append(w.pdf(f"Offerte {rng.randint(100, 999)}"))
        b.add(key, tender)
    umlaut = w.received(kind="plain")
    # RFC 2231 encoded, non-ASCII attachment filename.
    minutes = b"Notulen\r\nAanwezig: allen\r\n"
    umlaut.attachments.append(Attachment("Notulen überleg.txt", "text", "plain", minutes))
    b.add("umlaut", umlaut)
    b.add("umlaut", w.received())


def _large_message(b: MailboxBuilder) -> None:
    """~30 MB: headers rendered with the email package around a placeholder, the base64 body streamed."""
    w, rng = b.writer, b.rng
    plan = w.received(author=w.colleague(), kind="plain", subject="Meetgegevens volledig archief 2025", read=0.0)
    payload = RandomBlob(LARGE_ATTACHMENT_BYTES, seed=rng.getrandbits(32))
    plan.attachments.append(Attachment("meetgegevens-2025.bin", "application", "octet-stream", b"\0"))
    data = b.add("inbox", plan)
    assert isinstance(data.mime, MimeBlob)
    head, tail = _split_around_placeholder(data.mime.spec)
    data.mime = ConcatBlob([BytesBlob(head), Base64LinesBlob(payload), BytesBlob(tail)])


_PLACEHOLDER = "LARGE-ATTACHMENT-PLACEHOLDER"


def _split_around_placeholder(spec: MimeSpec) -> tuple[bytes, bytes]:
    """Renders the message with a marker where the attachment's base64 goes; returns the bytes before and
    after it, so the real content can be streamed in between."""
    msg = build_email(spec)
    attachment = next(part for part in msg.walk() if part.get_filename() == spec.attachments[-1].filename)
    attachment.set_payload(_PLACEHOLDER + "\n")
    head, _, tail = msg.as_bytes(policy=MIME_POLICY).partition(_PLACEHOLDER.encode() + b"\r\n")
    return head, tail


def build_mailbox(
    rng: random.Random, user: dict, colleagues: list[dict], *, large_message: bool = False, archive_messages: int = 0
) -> list[MailFolderData]:
    """All folders of one mailbox, the root (well_known_name "msgfolderroot") first and every parent
    before its children. The root's parentFolderId names a folder outside the list, as in Exchange.
    `archive_messages` more messages of ~30 MB each make a mailbox of gigabytes (memory benchmarks)."""
    builder = MailboxBuilder(rng, user, colleagues)
    builder.build_folders()
    _fill_inbox(builder)
    _fill_newsletters(builder)
    _fill_drafts(builder)
    _fill_sent(builder)
    _fill_rest(builder)
    for _ in range(int(large_message) + archive_messages):
        _large_message(builder)
    return builder.finish_counts()


def make_message(
    rng: random.Random, user: dict, colleagues: list[dict], folder_id: str, *, when: datetime | None = None
) -> MessageData:
    """A newly arrived, unread message for `folder_id`, e.g. for tests that add mail between two runs.
    `when` is its receivedDateTime (naive means UTC)."""
    if when is not None:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        when = when.replace(microsecond=0)
    writer = MailboxWriter(rng, user, colleagues)
    plan = writer.received(when=when, read=0.0)
    if rng.random() < 0.3:
        plan.attachments.append(writer.pdf("Bijlage " + rng.choice(TOPICS)))
    return finish(rng, plan, folder_id, writer.domain)
