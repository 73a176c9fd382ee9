"""Mail from the sandbox tenant into a real Dovecot through the whole engine, as a migration team
runs it: master-user login, special-use folders, byte-exact messages, flags and INTERNALDATE,
idempotent reruns, a kill mid-mailbox, a 30 MB message and an over-quota rejection."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

import pytest

from connectors.imap import ImapSink
from mappings.mail import X_SOURCE_ID
from migrator.config import load_config
from migrator.job import Job, Selection
from migrator.model import Payload, Target
from migrator.sandbox.api_mail import mailbox
from migrator.sandbox.app import Sandbox
from migrator.sandbox.tenant import Tenant
from state.ledger import Ledger
from tests.fixtures.dovecot import DEFAULT_MASTER, running_dovecot
from tests.graph.configs import dovecot_target, sandbox_source
from tests.helpers import CrashAfter, is_crash


@pytest.fixture
def tenant_sandbox(tls_files):
    with Sandbox(Tenant(seed=9, users=2, large_items=True), tls_files) as running:
        yield running


def master_sink(server) -> ImapSink:
    """Reads any mailbox back the way the migration wrote it: as Dovecot's master user."""
    return ImapSink(server.host, server.port, "tls", login=lambda o: (f"{o}*{DEFAULT_MASTER[0]}", DEFAULT_MASTER[1]), ca_file=server.ca_file)


def department_members(sandbox: Sandbox) -> list[dict]:
    return [u for u in sandbox.tenant.users if u["department"] == sandbox.tenant.users[0]["department"]]


def mail_config(tmp_path, sandbox: Sandbox, server) -> object:
    (tmp_path / "migrator.toml").write_text(f"""
{sandbox_source(tmp_path, sandbox)}
[workloads]
enabled = ["mail"]
{dovecot_target(tmp_path, server)}
[run]
retry_base_seconds = 0.01
retry_max_seconds = 0.05
""")
    return load_config(tmp_path / "migrator.toml")


def run_job(config, **kwargs):
    job = Job(config, **kwargs)
    if "fault_hook" in kwargs:
        job.ledger.fault_hook = kwargs["fault_hook"]
    try:
        return asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.ledger.fault_hook = None
        job.close()


def imap_contents(server, owner: str, paths) -> dict[tuple[str, ...], list[str]]:
    """Per IMAP folder, the source ids stored (with repeats, so duplicates show)."""
    sink = master_sink(server)

    async def read():
        try:
            found = {}
            for path in paths:
                found[path] = await sink.source_ids(owner, path)
            return found
        finally:
            await sink.close()

    return asyncio.run(read())


def expected_folders(box) -> dict[str, tuple[str, ...]]:
    names = {"inbox": ("INBOX",), "sentitems": ("Sent",), "drafts": ("Drafts",), "deleteditems": ("Trash",), "junkemail": ("Junk",), "archive": ("Archive",)}
    return {box.well_known[role]: path for role, path in names.items()}


def test_a_department_moves_into_dovecot_exactly_once(tmp_path, tenant_sandbox):
    members = department_members(tenant_sandbox)
    users = {u["userPrincipalName"]: "unused" for u in members}
    with running_dovecot(tmp_path / "dovecot", users) as server:
        config = mail_config(tmp_path, tenant_sandbox, server)
        first = run_job(config)
        ledger = Ledger(config.ledger_url)
        problems = [(p[4], p.last_error) for p in ledger.problems()]
        ledger.close()
        assert problems == [] and first.exit_code == 0
        assert first.verify.outcomes["verified"] == first.copy.outcomes["copied"] and first.verify.outcomes["mismatch"] == 0
        assert [(where, f.detail()) for where, f in first.verify.reconciled.disagreements()] == []
        second = run_job(config)
        assert second.copy.outcomes["copied"] == 0

        owner = members[0]["userPrincipalName"]
        box = mailbox(tenant_sandbox.tenant, members[0]["id"])
        folders = expected_folders(box)
        stored = imap_contents(server, owner, folders.values())
        for folder_id, path in folders.items():
            source_ids = sorted(m["id"] for m in box.messages[folder_id].current())
            assert sorted(stored[path]) == source_ids, f"{path}: exactly the source's messages, once each"
        assert max(box.mime[m].size for m in box.located) > 30_000_000, "the 30 MB message is in this mailbox"
        assert any(box.message(m).get("internetMessageId") is None for m in box.located), "so is one without Message-ID"
        check_bytes_flags_and_dates(server, owner, box, folders)


def check_bytes_flags_and_dates(server, owner, box, folders) -> None:
    sink = master_sink(server)

    async def check():
        try:
            inbox = folders[box.well_known["inbox"]]
            for message in box.messages[box.well_known["inbox"]].current()[:8]:
                found = await sink.find(owner, inbox, Target(message["id"], Payload.from_bytes(b""), {}))
                header = f"{X_SOURCE_ID}: {message['id']}\r\n".encode()
                expected = hashlib.sha256(header + box.mime[message["id"]].read_all()).hexdigest()
                assert found.content_hash == expected
                uid = int(found.dest_id.rsplit("/", 1)[-1])
                flags = await sink.flags_of(owner, inbox, uid)
                assert ("\\Seen" in flags) == bool(message["isRead"])
                assert ("\\Flagged" in flags) == (message["flag"]["flagStatus"] == "flagged")
                when = await sink.internal_date_of(owner, inbox, uid)
                assert when == dt.datetime.fromisoformat(message["receivedDateTime"])
        finally:
            await sink.close()

    asyncio.run(check())


def test_a_run_killed_mid_mailbox_reruns_without_duplicates_or_gaps(tmp_path, tenant_sandbox):
    members = department_members(tenant_sandbox)
    with running_dovecot(tmp_path / "dovecot", {u["userPrincipalName"]: "unused" for u in members}) as server:
        config = mail_config(tmp_path, tenant_sandbox, server)
        for kind, n in (("after_put", 7), ("mid_put", 30), ("commit", 25)):
            try:
                run_job(config, fault_hook=CrashAfter(n, kind))
            except BaseException as exc:  # noqa: BLE001 - the simulated kill
                assert is_crash(exc)
        final = run_job(config)
        assert final.exit_code == 0
        owner = members[0]["userPrincipalName"]
        box = mailbox(tenant_sandbox.tenant, members[0]["id"])
        folders = expected_folders(box)
        stored = imap_contents(server, owner, folders.values())
        for folder_id, path in folders.items():
            assert sorted(stored[path]) == sorted(m["id"] for m in box.messages[folder_id].current()), path


def test_an_over_quota_message_fails_alone_with_the_servers_reason(tmp_path, tenant_sandbox):
    members = department_members(tenant_sandbox)
    with running_dovecot(tmp_path / "dovecot", {u["userPrincipalName"]: "unused" for u in members}, quota_bytes=20_000_000) as server:
        config = mail_config(tmp_path, tenant_sandbox, server)
        result = run_job(config)
        ledger = Ledger(config.ledger_url)
        problems = [(p.upn, p.state, p.last_error) for p in ledger.problems()]
        ledger.close()
    assert result.exit_code == 1 and result.copy.outcomes["copied"] > 50
    assert len(problems) == 1
    upn, state, reason = problems[0]
    assert upn == members[0]["userPrincipalName"] and state == "failed" and "quota" in reason.lower()
