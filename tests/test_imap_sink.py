"""The IMAP sink against a real Dovecot. What the sink stored is checked with imaplib, a client that
shares no code with it."""

from __future__ import annotations

import asyncio
import hashlib
import imaplib
import logging
import re
import ssl
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from connectors import imap_client
from connectors.imap import ImapSink, parse_dest_id
from connectors.imap_client import decode_mailbox, encode_mailbox
from migrator.contracts import Sink
from migrator.errors import ItemError, TransientError
from migrator.model import Capabilities, DestRef, Payload, Target
from migrator.tls import UntrustedCertificate
from tests.fixtures import dovecot as dovecot_fixture
from tests.fixtures.dovecot import (
    DEFAULT_MASTER,
    DEFAULT_USERS,
    DovecotServer,
    running_dovecot,
)
from tests.sink_contract import SinkContract

dovecot = dovecot_fixture.dovecot  # the module-scoped server, as a fixture of this module

LIST_ROW = re.compile(rb'\((?P<flags>[^)]*)\) (?:"(?P<sep>[^"]*)"|NIL) (?P<name>.+)')
SPECIAL = {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}


def run(coro):
    return asyncio.run(coro)


def make_sink(server: DovecotServer, **options) -> ImapSink:
    options.setdefault("login", lambda owner: (owner, server.users[owner]))
    return ImapSink(server.host, server.port, ca_file=server.ca_file, **options)


def mail(key: str, body: str = "Hallo.\r\n", message_id: str | None = None, subject: str = "Test") -> bytes:
    header = f"X-Migrator-Source-Id: {key}\r\nFrom: ada@example.test\r\nSubject: {subject}\r\n"
    if message_id:
        header += f"Message-ID: {message_id}\r\n"
    return (header + "\r\n" + body).encode()


def mail_target(key: str, data: bytes | None = None, **metadata) -> Target:
    data = data if data is not None else mail(key, message_id=metadata.get("message_id"))
    return Target(key, Payload.from_bytes(data, chunk_size=13), {"source_id": key, **metadata})


# ---------------------------------------------------------------- an independent client


@contextmanager
def imap(server: DovecotServer, user: str) -> Iterator[imaplib.IMAP4_SSL]:
    conn = imaplib.IMAP4_SSL(server.host, server.port, ssl_context=ssl.create_default_context(cafile=server.ca_file))
    conn.login(user, server.users[user])
    try:
        yield conn
    finally:
        conn.logout()


def quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def folders(conn: imaplib.IMAP4_SSL) -> dict[str, set[str]]:
    """Server name -> lower-cased LIST attributes."""
    _, rows = conn.list()
    out = {}
    for row in rows:
        match = LIST_ROW.match(row)
        name = match.group("name").decode()
        out[name[1:-1] if name.startswith('"') else name] = set(match.group("flags").decode().lower().split())
    return out


def messages(conn: imaplib.IMAP4_SSL, mailbox: str) -> dict[int, bytes]:
    """UID -> full message of every message in a folder."""
    conn.select(quoted(mailbox), readonly=True)
    _, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[])")
    out = {}
    for part in data:
        if isinstance(part, tuple):
            out[int(re.search(rb"UID (\d+)", part[0]).group(1))] = part[1]
    return out


def wipe(server: DovecotServer, user: str) -> None:
    """Empties a mailbox: folders a test made are deleted, the standard ones emptied."""
    with imap(server, user) as conn:
        names = folders(conn)
        for name in sorted(names, key=lambda n: n.count("/"), reverse=True):
            if name not in SPECIAL:
                conn.delete(quoted(name))
        for name in SPECIAL:
            conn.select(quoted(name))
            conn.uid("STORE", "1:*", "+FLAGS.SILENT", r"(\Deleted)")
            conn.expunge()


# ---------------------------------------------------------------- the contract


class TestImapSink(SinkContract):
    @pytest.fixture
    def sink(self, dovecot):
        wipe(dovecot, "ada")
        self.server = dovecot
        return make_sink(dovecot)

    def remove(self, sink, ref):
        mailbox, _, uid = parse_dest_id(ref.dest_id)
        with imap(self.server, "ada") as conn:
            conn.select(quoted(mailbox))
            conn.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
            conn.expunge()

    def test_declares_what_it_can(self, sink):
        assert isinstance(sink, Sink)
        assert sink.caps == Capabilities(hashes=("sha256",), cheap_find=False, listing=True, delete=True)


@pytest.fixture
def server(dovecot):
    for user in DEFAULT_USERS:
        wipe(dovecot, user)
    return dovecot


# ---------------------------------------------------------------- messages, flags, dates


def test_append_keeps_flags_and_internal_date_and_reports_the_appenduid(server):
    sink = make_sink(server)
    flags = ["\\Seen", "\\Flagged", "\\Draft", "Project_X", "\\Recent", "not a keyword"]
    target = mail_target("m-1", flags=flags, internal_date="2024-03-05T07:08:09Z", message_id="<m1@example.test>")
    stored = run(sink.put("ada", ("INBOX",), target))
    mailbox, uidvalidity, uid = parse_dest_id(stored.dest_id)
    with imap(server, "ada") as conn:
        conn.select("INBOX", readonly=True)
        assert int(conn.response("UIDVALIDITY")[1][0]) == uidvalidity
        _, rows = conn.uid("FETCH", str(uid), "(FLAGS INTERNALDATE)")
    assert mailbox == "INBOX"
    assert set(re.search(rb"FLAGS \(([^)]*)\)", rows[0]).group(1).decode().split()) == {"\\Seen", "\\Flagged", "\\Draft", "Project_X"}
    assert b'INTERNALDATE "05-Mar-2024 07:08:09 +0000"' in rows[0]
    assert run(sink.flags_of("ada", ("INBOX",), uid)) == {"\\Seen", "\\Flagged", "\\Draft", "Project_X"}
    assert run(sink.internal_date_of("ada", ("INBOX",), uid)) == datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC)


def test_stored_bytes_are_exactly_the_payload(server):
    data = mail("exact", body="Regel een\r\nRegel twee \xe9\r\n".encode("latin-1").decode("latin-1"))
    stored = run(make_sink(server).put("ada", ("INBOX",), mail_target("exact", data)))
    with imap(server, "ada") as conn:
        assert messages(conn, "INBOX") == {parse_dest_id(stored.dest_id)[2]: data}
    assert (stored.size, stored.content_hash) == (len(data), hashlib.sha256(data).hexdigest())


def test_find_by_source_id_then_by_message_id(server):
    sink = make_sink(server)
    stored = run(sink.put("ada", ("INBOX",), mail_target("abcdef")))
    assert run(sink.find("ada", ("INBOX",), mail_target("abc"))) is None  # SEARCH matches substrings; find must not
    assert run(sink.find("ada", ("INBOX",), mail_target("abcdef"))).dest_id == stored.dest_id

    foreign = b"From: bob@example.test\r\nSubject: copied by hand\r\nMessage-ID: <hand@example.test>\r\n\r\nHoi\r\n"
    other = b"X-Migrator-Source-Id: someone-else\r\nMessage-ID: <taken@example.test>\r\n\r\nHoi\r\n"
    with imap(server, "ada") as conn:
        conn.append("INBOX", None, None, foreign)
        conn.append("INBOX", None, None, other)
    found = run(sink.find("ada", ("INBOX",), mail_target("k-hand", message_id="<hand@example.test>")))
    assert found is not None and found.size == len(foreign) and found.content_hash == hashlib.sha256(foreign).hexdigest()
    assert run(sink.find("ada", ("INBOX",), mail_target("k-taken", message_id="<taken@example.test>"))) is None


def test_a_message_without_message_id_is_stored_and_found(server):
    sink = make_sink(server)
    target = mail_target("no-mid", message_id=None)
    stored = run(sink.put("ada", ("INBOX",), target))
    assert b"Message-ID" not in mail("no-mid")
    assert run(sink.find("ada", ("INBOX",), target)).dest_id == stored.dest_id


def test_replace_leaves_exactly_one_message_with_the_new_content(server):
    sink = make_sink(server)
    old = run(sink.put("ada", ("INBOX",), mail_target("r", mail("r", body="eerste\r\n"))))
    new = run(sink.put("ada", ("INBOX",), mail_target("r", mail("r", body="tweede, langer\r\n")), replace=old))
    with imap(server, "ada") as conn:
        assert list(messages(conn, "INBOX").values()) == [mail("r", body="tweede, langer\r\n")]
    assert run(sink.stat("ada", old)) is None and run(sink.stat("ada", new)).size == len(mail("r", body="tweede, langer\r\n"))


def test_without_uidplus_the_appended_message_is_found_by_its_header(server, monkeypatch):
    monkeypatch.setattr("connectors.imap._appenduid", lambda response: None)
    sink = make_sink(server)
    stored = run(sink.put("ada", ("INBOX",), mail_target("no-uidplus")))
    with imap(server, "ada") as conn:
        assert list(messages(conn, "INBOX")) == [parse_dest_id(stored.dest_id)[2]]


def test_bytes_imap_would_rewrite_travel_as_a_carrier_and_read_back_exactly(server):
    sink = make_sink(server)
    raw = b"X-Migrator-Source-Id: bare\r\nSubject: bare LF\r\n\r\nline\nnul\x00\r\n"  # header first, so streamed first
    stored = run(sink.put("ada", ("INBOX",), mail_target("bare", raw)))
    unknown = Target("unknown-size", Payload(Payload.from_bytes(raw).chunks, size=None))
    spooled = run(sink.put("ada", ("INBOX",), unknown))
    for ref in (stored, spooled):
        assert run(sink.stat("ada", ref)) == DestRef(ref.dest_key, ref.dest_id, len(raw), hashlib.sha256(raw).hexdigest())
    with imap(server, "ada") as conn:
        kept = messages(conn, "INBOX")
    assert len(kept) == 2 and all(b"X-Migrator-Carrier: base64" in m for m in kept.values())
    assert run(sink.list_keys("ada", ("INBOX",))) == {"bare", "unknown-size"}


def test_an_item_of_unknown_size_is_spooled_then_stored_verbatim(server):
    data = mail("spooled", body="x" * 70 + "\r\n")
    stored = run(make_sink(server).put("ada", ("INBOX",), Target("spooled", Payload(Payload.from_bytes(data).chunks, size=None))))
    with imap(server, "ada") as conn:
        assert list(messages(conn, "INBOX").values()) == [data]
    assert stored.size == len(data)


# ---------------------------------------------------------------- folders


def test_unicode_and_ampersand_folder_names_round_trip(server):
    sink = make_sink(server)
    path = ("Projecten", "2026", "Überleg & Co")
    name = run(sink.ensure_container("ada", path))
    assert name == "Projecten/2026/&ANw-berleg &- Co" and decode_mailbox(name) == "Projecten/2026/Überleg & Co"
    stored = run(sink.put("ada", path, mail_target("u-1")))
    assert run(sink.find("ada", path, mail_target("u-1"))).dest_id == stored.dest_id
    assert run(sink.list_keys("ada", path)) == {"u-1"}
    assert run(sink.ensure_container("ada", ("INBOX", "Nieuwsbrieven"))) == "INBOX/Nieuwsbrieven"
    with imap(server, "ada") as conn:
        listed = folders(conn)
        _, subscribed = conn.lsub()
    assert {"Projecten", "Projecten/2026", name, "INBOX/Nieuwsbrieven"} <= set(listed)
    assert "\\noselect" not in listed["Projecten"]
    assert any(name.encode() in row for row in subscribed)


@pytest.mark.parametrize("name", ['Offerte "2026"', "Alles * en %", "Back\\slash", "(haakjes) {3}", "  spaties  "])
def test_folder_names_with_quotes_and_wildcards_are_quoted_not_interpreted(server, name):
    """Quotes, LIST wildcards and backslashes in a folder name travel quoted: the folder made is
    that one folder, a message lands in it, and no other folder is touched or listed by it."""
    sink = make_sink(server)
    path = ("Hostile", name)
    run(sink.ensure_container("ada", path))
    stored = run(sink.put("ada", path, mail_target("h-1")))
    assert run(sink.list_keys("ada", path)) == {"h-1"}
    assert run(sink.stat("ada", stored)) is not None
    with imap(server, "ada") as conn:
        listed = folders(conn)
    unquoted = {re.sub(r'\\(["\\])', r"\1", f) for f in listed}  # imaplib leaves LIST's quoted-string escapes in
    assert f"Hostile/{name}" in {decode_mailbox(f) for f in unquoted}


def test_a_name_the_server_refuses_is_an_item_error_with_its_words(server):
    sink = make_sink(server)
    with pytest.raises(ItemError, match="not allowed"):
        run(sink.ensure_container("ada", ("Versie 1.2",)))  # maildir++ keeps '.' for itself
    with pytest.raises(ItemError, match="separator"):
        run(sink.ensure_container("ada", ("A/B",)))


def test_special_use_folders_keep_their_flags(server, tmp_path, caplog):
    assert run(make_sink(server).ensure_container("ada", ("Sent",))) == "Sent"
    with imap(server, "ada") as conn:
        assert "\\sent" in folders(conn)["Sent"]
    # Dovecot 2.3 accepts CREATE ... (USE ...) once advertised (and stores no flag): the sink sends it.
    with running_dovecot(tmp_path / "use", {"ada": "pw"}, extra="imap_capability = +CREATE-SPECIAL-USE") as other:
        roles = {("Archief",): "\\Archive"}
        sink = make_sink(other, special_use=roles.get)
        with caplog.at_level(logging.DEBUG, logger="connectors.imap_client"):
            assert run(sink.ensure_container("ada", ("Archief", "2020"))) == "Archief/2020"
    sent = [r.getMessage() for r in caplog.records if "CREATE" in r.getMessage()]
    assert any('CREATE "Archief" (USE (\\Archive))' in line for line in sent)
    assert any(line.endswith('CREATE "Archief/2020"') for line in sent)


def test_mailbox_name_encoding():
    assert encode_mailbox("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert encode_mailbox("Überleg & Co") == "&ANw-berleg &- Co"
    for name in ("Überleg & Co", "Δοκιμή 😀", "&&", "plain"):
        assert decode_mailbox(encode_mailbox(name)) == name


# ---------------------------------------------------------------- size, quota, identities


def large_message(key: str, lines: int) -> tuple[Payload, str]:
    """A message of `lines` 78-byte lines, generated as it is read; also returns its sha256."""
    header = f"X-Migrator-Source-Id: {key}\r\nSubject: groot\r\n\r\n".encode()
    line = b"0123456789" * 7 + b"ABCDEF\r\n"
    per_block = 4096

    async def chunks() -> AsyncIterator[bytes]:
        yield header
        for start in range(0, lines, per_block):
            yield line * min(per_block, lines - start)

    async def digest() -> str:
        sha = hashlib.sha256()
        async for chunk in chunks():
            sha.update(chunk)
        return sha.hexdigest()

    return Payload(chunks, size=len(header) + lines * len(line)), run(digest())


def test_a_30_mb_message_streams_through_in_bounded_memory(server):
    payload, sha = large_message("groot", 30 * 2**20 // 78)
    sink = make_sink(server)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]

        async def put_then_stat():
            stored = await sink.put("ada", ("INBOX",), Target("groot", payload))
            return stored, await sink.stat("ada", stored)

        stored, again = run(put_then_stat())
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert payload.size > 30_000_000
    assert (stored.size, stored.content_hash) == (payload.size, sha)
    assert (again.size, again.content_hash) == (payload.size, sha)
    print(f"30 MB message: peak traced memory grew by {peak / 2**20:.2f} MiB")
    assert peak < 4 * 2**20, f"peak traced memory grew by {peak / 2**20:.1f} MiB"


def test_over_quota_is_an_item_error_with_the_servers_reason(tmp_path):
    users = {"ada": "pw-a", "bob": "pw-b"}
    with running_dovecot(tmp_path / "quota", users, quota_bytes=20_000) as server:
        sink = make_sink(server)
        big = mail("big", body="y" * 76 + "\r\n") * 1 + ("z" * 76 + "\r\n").encode() * 400
        with pytest.raises(ItemError, match=r"OVERQUOTA.*Quota exceeded"):
            run(sink.put("ada", ("INBOX",), mail_target("big", big)))
        assert run(sink.put("bob", ("INBOX",), mail_target("small"))).size == len(mail("small"))
        assert run(sink.put("ada", ("INBOX",), mail_target("small"))).size == len(mail("small"))


def test_a_master_user_writes_into_the_users_mailbox(server):
    master, secret = DEFAULT_MASTER
    sink = make_sink(server, login=lambda owner: (f"{owner}*{master}", secret))
    stored = run(sink.put("ada", ("INBOX",), mail_target("via-master")))
    with imap(server, "ada") as conn:
        assert messages(conn, "INBOX") == {parse_dest_id(stored.dest_id)[2]: mail("via-master")}
    with imap(server, "bob") as conn:
        assert messages(conn, "INBOX") == {}


@pytest.mark.parametrize("security", ["starttls", "plain"])
def test_starttls_and_plain_connections(server, security):
    sink = ImapSink(server.host, server.starttls_port, security=security, login=lambda o: (o, server.users[o]), ca_file=server.ca_file)
    stored = run(sink.put("ada", ("INBOX",), mail_target(f"via-{security}")))
    assert run(sink.stat("ada", stored)).content_hash == hashlib.sha256(mail(f"via-{security}")).hexdigest()


def test_a_server_certificate_nobody_trusts_stops_the_run_unless_checks_are_skipped(server):
    sink = ImapSink(server.host, server.port, login=lambda o: (o, server.users[o]))  # system CAs only
    with pytest.raises(UntrustedCertificate, match=rf"certificate of the IMAP server {server.host}:{server.port} is not trusted .*--ca-bundle"):
        run(sink.ensure_container("ada", ("INBOX",)))
    starttls = ImapSink(server.host, server.starttls_port, security="starttls", login=lambda o: (o, server.users[o]))
    with pytest.raises(UntrustedCertificate, match=rf"IMAP server {server.host} is not trusted"):
        run(starttls.ensure_container("ada", ("INBOX",)))
    for security, port in (("tls", server.port), ("starttls", server.starttls_port)):
        unchecked = ImapSink(server.host, port, security=security, login=lambda o: (o, server.users[o]), skip_tls_verify=True)
        stored = run(unchecked.put("ada", ("INBOX",), mail_target(f"unchecked-{security}")))
        assert run(unchecked.stat("ada", stored)).content_hash == hashlib.sha256(mail(f"unchecked-{security}")).hexdigest()


def test_logins_with_8_bit_passwords_and_a_wrong_password(tmp_path):
    # A server of its own: Dovecot slows every later login from the same address after a failure.
    with running_dovecot(tmp_path / "auth", {"ada": "pw", "eve": "geheim-é \"x\""}) as server:
        assert run(make_sink(server).put("eve", ("INBOX",), mail_target("e"))).size == len(mail("e"))  # sent as a literal
        with pytest.raises(ItemError, match=r"AUTHENTICATIONFAILED.*login as ada refused"):
            run(make_sink(server, login=lambda owner: (owner, "wrong")).put("ada", ("INBOX",), mail_target("x")))


def test_synchronising_literals_wait_for_the_continuation(server, monkeypatch):
    monkeypatch.setattr(imap_client.ImapConnection, "_nonsync", lambda self, size: False)
    sink = make_sink(server)
    data = mail("sync", body="s" * 76 + "\r\n")
    stored = run(sink.put("ada", ("INBOX",), mail_target("sync", data)))
    assert run(sink.stat("ada", stored)).content_hash == hashlib.sha256(data).hexdigest()


def test_a_server_that_does_not_answer_is_transient():
    async def scenario():
        silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        try:
            sink = ImapSink("127.0.0.1", port, security="plain", login=lambda o: (o, "pw"), timeout=0.3)
            with pytest.raises(TransientError, match="no greeting"):
                await sink.ensure_container("ada", ("INBOX",))
        finally:
            silent.close()

    run(scenario())


def test_a_put_that_fails_before_streaming_closes_the_payload_stream(server):
    closed = []

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield mail("nowhere")
        finally:
            closed.append(True)

    with pytest.raises(ItemError, match="nowhere"):
        run(make_sink(server).put("ada", ("Bestaat niet",), Target("nowhere", Payload(chunks, size=len(mail("nowhere"))))))
    assert closed == [True]


# ---------------------------------------------------------------- connections


def opened_connections(monkeypatch) -> list:
    opened = []
    original = imap_client.ImapConnection.open.__func__

    async def recording(cls, *args, **kwargs):
        conn = await original(cls, *args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(imap_client.ImapConnection, "open", classmethod(recording))
    return opened


def test_connections_are_pooled_per_owner_and_bounded(server, monkeypatch):
    opened = opened_connections(monkeypatch)
    sink = make_sink(server, connections_per_owner=2)

    async def many():
        await asyncio.gather(*(sink.put("ada", ("INBOX",), mail_target(f"p{n}")) for n in range(8)))
        await asyncio.gather(*(sink.put("bob", ("INBOX",), mail_target(f"p{n}")) for n in range(3)))
        keys = await sink.list_keys("ada", ("INBOX",))
        await sink.close()
        return keys

    assert run(many()) == {f"p{n}" for n in range(8)}
    assert len(opened) == 4  # two for ada, reused for all eight; two for bob
    assert all(not conn.usable for conn in opened)  # close() logged them out


def test_a_dropped_connection_is_transient_and_the_next_call_reconnects(server, monkeypatch):
    opened = opened_connections(monkeypatch)
    sink = make_sink(server)
    data = mail("dropped", body="r" * 76 + "\r\n" * 1)

    async def drops_midway() -> AsyncIterator[bytes]:
        yield data[:40]
        opened[-1]._writer.transport.abort()  # the server vanishes mid-APPEND
        await asyncio.sleep(0)
        yield data[40:]

    async def scenario():
        with pytest.raises(TransientError):
            await sink.put("ada", ("INBOX",), Target("dropped", Payload(drops_midway, size=len(data))))
        return await sink.put("ada", ("INBOX",), mail_target("dropped", data))

    stored = run(scenario())
    assert len(opened) == 2 and not opened[0].usable
    with imap(server, "ada") as conn:
        assert list(messages(conn, "INBOX")) == [parse_dest_id(stored.dest_id)[2]]


def test_a_source_failing_mid_append_raises_its_own_error_and_stores_nothing(server):
    sink = make_sink(server)
    data = mail("half")

    async def source_dies() -> AsyncIterator[bytes]:
        yield data[:50]
        raise TransientError("source went away")

    async def wrong_size() -> AsyncIterator[bytes]:
        yield data

    with pytest.raises(TransientError, match="source went away"):
        run(sink.put("ada", ("INBOX",), Target("half", Payload(source_dies, size=len(data)))))
    with pytest.raises(ItemError, match="declared"):
        run(sink.put("ada", ("INBOX",), Target("half", Payload(wrong_size, size=len(data) + 10))))
    assert run(sink.list_keys("ada", ("INBOX",))) == set()
    assert run(sink.put("ada", ("INBOX",), mail_target("half", data))).size == len(data)
