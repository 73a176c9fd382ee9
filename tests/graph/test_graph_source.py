"""The Graph source against the sandbox: sign-in errors, permissions, users, the mail reader, and
politeness under throttling and expiring tokens."""

from __future__ import annotations

import asyncio
import random

import pytest

from connectors.graph.auth import AuthError
from connectors.graph.mail import MailReader
from connectors.graph.session import PermissionMissing
from connectors.graph.source import GraphSource
from connectors.graph.transport import Politeness
from migrator.errors import CursorExpired
from migrator.model import Cursor, ItemRef, Removed, User
from migrator.sandbox.api_mail import mailbox
from migrator.sandbox.auth import App
from tests.graph.conftest import collect, credentials, run, session_for


def source_for(sandbox, **overrides) -> GraphSource:
    return GraphSource(credentials(sandbox, **overrides), sandbox.url, Politeness(backoff_base=0.01, backoff_cap=0.05))


async def opened(source: GraphSource, action):
    await source.open()
    try:
        return await action(source)
    finally:
        await source.aclose()


def test_a_wrong_secret_names_the_fix(sandbox):
    with pytest.raises(AuthError) as info:
        run(opened(source_for(sandbox, secret="wrong"), lambda s: s.users()))
    assert str(info.value) == "sign-in failed: the client secret was refused (AADSTS7000215)"
    assert "source.client_secret" in info.value.hint and info.value.exit_code == 2


def test_an_unknown_tenant_names_the_fix(sandbox):
    with pytest.raises(AuthError, match="tenant 'nosuch.example' was not found") as info:
        run(opened(source_for(sandbox, tenant_id="nosuch.example"), lambda s: s.users()))
    assert "source.tenant_id" in info.value.hint


def test_a_missing_permission_names_the_permission(sandbox):
    sandbox.tenant.identity.apps["reader"] = App("reader", secret="s", permissions=("User.Read.All",))
    source = source_for(sandbox, client_id="reader", secret="s")

    async def mail_folders(s):
        users = await s.users()
        return await collect(s.containers(users[0], "mail"))

    with pytest.raises(PermissionMissing) as info:
        run(opened(source, mail_folders))
    assert "refused to read mail" in str(info.value) and "Mail.Read" in info.value.hint


def test_users_by_department_and_by_upn(sandbox):
    tenant = sandbox.tenant
    department = tenant.users[0]["department"]
    by_department = run(opened(source_for(sandbox), lambda s: s.users(department=department)))
    assert sorted(u.source_id for u in by_department) == sorted(u["id"] for u in tenant.users if u["department"] == department)
    wanted = [tenant.users[1]["userPrincipalName"].upper(), "nobody@example.org"]
    by_upn = run(opened(source_for(sandbox), lambda s: s.users(upns=wanted)))
    assert [u.source_id for u in by_upn] == [tenant.users[1]["id"]]


def test_mail_enumeration_matches_the_mailbox_and_delta_reports_changes(sandbox):
    tenant = sandbox.tenant
    user_json = tenant.users[0]
    box = mailbox(tenant, user_json["id"])

    async def scenario(source: GraphSource):
        user = (await source.users(upns=[user_json["userPrincipalName"]]))[0]
        reader: MailReader = source.reader("mail")
        folders = await collect(reader.containers(user))
        inbox = next(f for f in folders if f.role == "inbox")
        first = await collect(reader.changes(user, inbox, None))
        cursor = first[-1]
        assert isinstance(cursor, Cursor)
        listed = [c.source_id for c in first if isinstance(c, ItemRef)]
        assert sorted(listed) == sorted(m["id"] for m in box.messages[inbox.source_id].current())
        box.add("inbox", random.Random(2), tenant.colleagues(user_json))
        box.update(listed[0], isRead=True)
        box.delete(listed[1])
        second = await collect(reader.changes(user, inbox, cursor.value))
        tenant.delta.expire_all()
        with pytest.raises(CursorExpired):
            await collect(reader.changes(user, inbox, second[-1].value))
        item = await reader.fetch(user, inbox, next(c for c in first if isinstance(c, ItemRef)))
        return folders, inbox, listed, second, item, await item.payload.read_all()

    folders, inbox, listed, second, item, mime = run(opened(source_for(sandbox), scenario))
    expected = [f for f in box.folders.current() if f["id"] != box.root_id]
    assert sorted(f.source_id for f in folders) == sorted(f["id"] for f in expected)
    assert {f.role for f in folders} >= {"inbox", "sentitems", "drafts", "deleteditems", "junkemail", "archive"}
    assert inbox.path == ("Postvak IN",)
    changed = {c.source_id for c in second if isinstance(c, ItemRef)}
    removed = {c.source_id for c in second if isinstance(c, Removed)}
    assert listed[0] in changed and len(changed) == 2 and removed == {listed[1]}
    assert mime == box.mime[item.ref.source_id].read_all()


def test_throttled_reads_complete_within_four_per_mailbox_and_wait_as_asked(sandbox):
    limits = sandbox.tenant.limiter
    limits.throttle.enabled, limits.throttle.mailbox_concurrency, limits.throttle.retry_after = True, 2, 1
    limits.latency = 0.02
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:  # records what the server asked, waits briefly
        slept.append(seconds)
        await asyncio.sleep(0.05)

    user_json = sandbox.tenant.users[0]
    session = session_for(sandbox, Politeness(per_mailbox=4, backoff_base=0.01, backoff_cap=0.05, sleep=fake_sleep))
    reader = MailReader(session)

    async def read_everything():
        user = User(user_json["userPrincipalName"], source_id=user_json["id"])
        folders = await collect(reader.containers(user))
        listings = await asyncio.gather(*(collect(reader.changes(user, f, None)) for f in folders))
        await session.close()
        return folders, listings

    folders, listings = run(read_everything())
    box = mailbox(sandbox.tenant, user_json["id"])
    assert sum(len([c for c in listing if isinstance(c, ItemRef)]) for listing in listings) == sum(len(box.messages[f.source_id]) for f in folders)
    assert session.transport.retries["throttled"] > 0 and 1.0 in slept
    assert max(limits.peak_in_flight.values()) <= 2


def test_never_more_than_four_in_flight_per_mailbox(sandbox):
    limits = sandbox.tenant.limiter
    limits.latency = 0.02
    user_json = sandbox.tenant.users[0]
    session = session_for(sandbox)

    async def hammer():
        await asyncio.gather(*(session.get_json(f"users/{user_json['id']}/mailFolders") for _ in range(20)))
        await session.close()

    run(hammer())
    assert max(limits.peak_in_flight.values()) == 4


def test_tokens_are_renewed_before_expiry_and_after_a_401(sandbox):
    sandbox.tenant.identity.token_lifetime = 1
    session = session_for(sandbox)

    async def reads():
        first = await session.get_json("users")
        await asyncio.sleep(1.2)  # the token msal holds has expired: it fetches a new one before sending
        second = await session.get_json("users")
        sandbox.tenant.identity.token_lifetime = 3600
        await session.tokens.atoken(True)
        sandbox.tenant.identity.expire_all_tokens()  # revoked at the server: msal still thinks it valid
        third = await session.get_json("users")
        await session.close()
        return first, second, third

    first, second, third = run(reads())
    assert first["value"] == second["value"] == third["value"]
    assert session.transport.retries["unauthorized"] == 1
