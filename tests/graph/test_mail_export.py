"""Mail from the sandbox into a Maildir++ tree through the whole engine: folders mapped to their
special-use names, bytes identical but for the source-id header, flags and dates kept, reruns idempotent."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os

from connectors.maildir import MaildirSink, info_flags, read_source_id
from mappings.mail import X_SOURCE_ID
from migrator.job import Job, Selection
from migrator.sandbox.api_mail import mailbox
from tests.graph.test_graph_job import write_config


def test_a_mailbox_exports_to_maildir_exactly_once(tmp_path, sandbox):
    config = write_config(tmp_path, sandbox, ("mail",))
    sink = MaildirSink(tmp_path / "maildir")
    job = Job(config, sinks={"mail": sink})
    try:
        first = asyncio.run(job.run("run", Selection.from_config(config)))
        second = asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.close()
    assert first.exit_code == 0 and second.copy.outcomes["copied"] == 0

    tenant = sandbox.tenant
    user = tenant.users[0]
    box = mailbox(tenant, user["id"])
    owner_dir = tmp_path / "maildir" / user["userPrincipalName"]
    files = {read_source_id(p): p for p in owner_dir.rglob("*") if p.is_file() and p.parent.name == "cur"}
    sources = {mid: folder for mid, folder in box.located.items()}
    outbox = box.well_known.get("outbox")
    expected = {mid for mid, folder in sources.items() if folder != outbox}
    assert set(files) == expected, "every message once, nothing extra"
    inbox_file = next(files[m] for m in expected if sources[m] == box.well_known["inbox"])
    assert inbox_file.parent.parent == owner_dir, "Postvak IN is the Maildir's INBOX"
    sent_file = next(files[m] for m in expected if sources[m] == box.well_known["sentitems"])
    assert sent_file.parent.parent.name == ".Sent"
    for message_id in list(expected)[:15]:
        stored = files[message_id].read_bytes()
        header = f"{X_SOURCE_ID}: {message_id}\r\n".encode()
        assert stored.startswith(header)
        assert hashlib.sha256(stored[len(header):]).digest() == hashlib.sha256(box.mime[message_id].read_all()).digest()
        message = box.message(message_id)
        assert ("S" in info_flags(files[message_id].name)) == bool(message["isRead"])
        received = message["receivedDateTime"]
        assert int(os.stat(files[message_id]).st_mtime) == int(dt.datetime.fromisoformat(received).timestamp())
