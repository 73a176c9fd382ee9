"""Delta passes end to end: a bulk run from the sandbox into Dovecot, Radicale and the Nextcloud
stand-in; then changes of every kind at the source (new, changed, moved, flagged, deleted) in mail,
calendar, contacts and files; `sync` brings the targets to the changed source, keeping deleted
items until `--propagate-deletes`; and a pass with nothing changed writes nothing anywhere."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.imap import ImapSink, parse_dest_id
from mappings.file_names import NameRules, legal_path
from migrator.config import load_config
from migrator.job import STAGES, SYNC_STAGES, Job, Selection
from migrator.sandbox.api_calendar import calendars
from migrator.sandbox.api_contacts import address_book
from migrator.sandbox.api_drive import onedrive
from migrator.sandbox.api_mail import mailbox
from migrator.sandbox.app import Sandbox
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.sandbox.tenant import Tenant
from state.ledger import Ledger
from state.models import Container, Event, Item, Scope
from state.queries import decode_path
from tests.fixtures.dovecot import DEFAULT_MASTER, running_dovecot
from tests.fixtures.radicale import running_radicale
from tests.graph.configs import dav_and_files_targets, dovecot_target, sandbox_source

PASSWORD = "app-password"


@pytest.fixture
def world(tmp_path, tls_files):
    """The sandbox with one user migrated, and the three target servers, configured."""
    with Sandbox(Tenant(seed=21, users=2), tls_files) as sandbox:
        user = sandbox.tenant.users[0]
        login = user["userPrincipalName"].split("@")[0]
        with running_dovecot(tmp_path / "dovecot", {user["userPrincipalName"]: "unused"}) as imap, \
                running_radicale(tmp_path / "radicale", {login: PASSWORD}) as dav, \
                NextcloudServer(tmp_path / "nc", users={login: PASSWORD}) as cloud:
            (tmp_path / "password").write_text(PASSWORD)
            (tmp_path / "migrator.toml").write_text(f"""
{sandbox_source(tmp_path, sandbox, [user["userPrincipalName"]])}
[workloads]
enabled = ["mail", "calendar", "contacts", "files"]
{dovecot_target(tmp_path, imap)}
{dav_and_files_targets(dav.url, cloud.url)}
[run]
retry_base_seconds = 0.01
retry_max_seconds = 0.05
""")
            yield sandbox, user, imap, dav, cloud, load_config(tmp_path / "migrator.toml"), tmp_path


def run(config, command: str, stages=STAGES, force: bool = False):
    job = Job(config)
    try:
        result = asyncio.run(job.run(command, Selection.from_config(config), stages, force=force))
    finally:
        job.close()
    return result


def ledger_rows(config, workload: str) -> list[tuple[str, tuple[str, ...], str, str | None, str]]:
    """(container source id, target path, item source id, dest key, state) of one workload."""
    ledger = Ledger(config.ledger_url)
    try:
        with Session(ledger.engine) as s:
            rows = s.execute(select(Container.source_id, Container.target_path, Item.source_id, Item.dest_key, Item.state)
                             .join(Item, Item.container_id == Container.id).join(Scope, Container.scope_id == Scope.id)
                             .where(Scope.workload == workload)).all()
            return [(c, tuple(decode_path(p)), i, k, st) for c, p, i, k, st in rows]
    finally:
        ledger.close()


def events_of_run(config, kinds: tuple[str, ...]) -> list[str]:
    ledger = Ledger(config.ledger_url)
    try:
        with Session(ledger.engine) as s:
            last = s.scalar(select(Event.run_id).order_by(Event.id.desc()).limit(1))
            return list(s.scalars(select(Event.kind).where(Event.run_id == last, Event.kind.in_(kinds))))
    finally:
        ledger.close()


def imap_folders(imap, owner: str, config) -> dict[tuple[str, ...], list[str]]:
    sink = ImapSink(imap.host, imap.port, "tls", login=lambda o: (f"{o}*{DEFAULT_MASTER[0]}", DEFAULT_MASTER[1]), ca_file=imap.ca_file)
    paths = {path for _, path, _, _, _ in ledger_rows(config, "mail")}

    async def read():
        try:
            return {path: await sink.source_ids(owner, path) for path in paths}
        finally:
            await sink.close()

    return asyncio.run(read())


def source_mail(sandbox, user, config) -> dict[tuple[str, ...], list[str]]:
    box = mailbox(sandbox.tenant, user["id"])
    target_of = {c: path for c, path, _, _, _ in ledger_rows(config, "mail")}
    found: dict[tuple[str, ...], list[str]] = {path: [] for path in target_of.values()}
    for message_id, folder_id in box.located.items():
        if folder_id in target_of:
            found[target_of[folder_id]].append(message_id)
    return found


def sources_at(config, workload: str, dest_keys: set[str]) -> set[str]:
    return {i for _, _, i, k, _ in ledger_rows(config, workload) if k in dest_keys}


def dav_keys(dav, login: str) -> set[str]:
    root = dav.collections / "collection-root" / login
    return {p.name for p in root.rglob("*") if p.suffix in (".ics", ".vcf") and not any(part.startswith(".Radicale") for part in p.parts)}


def dav_sources(config, dav, login: str) -> set[str]:
    """The source ids of the events and contacts whose copies are stored in Radicale."""
    keys = dav_keys(dav, login)
    return sources_at(config, "calendar", keys) | sources_at(config, "contacts", keys)


def live_events_and_contacts(sandbox, user) -> set[str]:
    """The user's events (a series once, as its master) and contacts that exist at the source."""
    events = {e["id"] for cal in calendars(sandbox.tenant, user["id"]).data for e in cal.events
              if e.get("type") in ("singleInstance", "seriesMaster")}
    book = address_book(sandbox.tenant, user["id"])
    return events | {c["id"] for folder in book.contacts.values() for c in folder.current()}


def cloud_files(cloud_root: Path, login: str) -> dict[str, str]:
    home = cloud_root / "files" / login
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() for p in home.rglob("*") if p.is_file()}


def drive_files(sandbox, user) -> dict[str, str]:
    drive = onedrive(sandbox.tenant, user["id"])
    return {"/".join(legal_path(("OneDrive", *drive.data.path_of(i["id"]).split("/")), NameRules.nextcloud_defaults())[0]):
            hashlib.sha256(drive.content(i["id"]).read_all()).hexdigest() for i in drive.items.current() if "file" in i}


def disk_state(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under the targets' storage with its size and mtime: any write shows here."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(("dovecot.index", "dovecot-uidlist", "dovecot.list"))
            and not any(part.startswith(".Radicale") for part in p.parts)}


def test_sync_brings_every_target_to_the_changed_source(world):
    sandbox, user, imap, dav, _cloud, config, tmp_path = world
    login, upn, rng = user["userPrincipalName"].split("@")[0], user["userPrincipalName"], random.Random(5)
    bulk = run(config, "run")
    assert bulk.exit_code == 0 and bulk.copy.outcomes["failed"] == 0

    # -- changes of every kind at the source
    box = mailbox(sandbox.tenant, user["id"])
    inbox = box.folder("inbox")["id"]
    in_inbox = [m for m, f in box.located.items() if f == inbox]
    new_mail = box.add("inbox", rng, sandbox.tenant.colleagues(user))
    flagged = box.update(in_inbox[0], isRead=not box.message(in_inbox[0]).get("isRead"), flag={"flagStatus": "flagged"})
    moved_from, moved = in_inbox[1], box.move(in_inbox[1], "archive")
    deleted_mail = in_inbox[2]
    box.delete(deleted_mail)

    cals = calendars(sandbox.tenant, user["id"])
    singles = [e for e in cals.default.events if e.get("type") == "singleInstance"]
    new_event = cals.add(rng, user, sandbox.tenant.colleagues(user), dt.datetime(2026, 12, 14, 10, 0, tzinfo=dt.UTC))
    cals.update(singles[0]["id"], subject="Verplaatst: begrotingsoverleg")
    cals.delete(singles[1]["id"])

    book = address_book(sandbox.tenant, user["id"])
    contacts = book.contacts[book.default_folder].current()
    new_contact = book.add(rng)
    book.update(contacts[0]["id"], jobTitle="Directeur bedrijfsvoering")
    book.delete(contacts[1]["id"])

    drive = onedrive(sandbox.tenant, user["id"])
    files = [i for i in drive.items.current() if "file" in i and i["size"] < 100_000]
    drive.add_file(rng, "root", "Na de migratie.txt", b"nieuw na de bulk\n")
    drive.replace_content(files[0]["id"], b"vervangen inhoud\n")
    drive.delete(files[1]["id"])
    drive.rename(files[2]["id"], "Hernoemd na de migratie.txt")  # same id, new name: the old copy must not linger

    # -- a delta pass without deletions: new and changed arrive, deleted ones stay
    first = run(config, "sync")
    assert first.exit_code == 0, first
    found = first.plan.by_workload()
    assert all(found[w]["new"] >= 1 and found[w]["changed"] >= 1 and found[w]["removed"] >= 1 for w in ("mail", "calendar", "contacts", "files")), found
    at_target, at_source = imap_folders(imap, upn, config), source_mail(sandbox, user, config)
    for path, ids in at_source.items():
        assert set(ids) <= set(at_target[path]) and len(at_target[path]) == len(set(at_target[path])), path
    inbox_path = next(p for c, p, _, _, _ in ledger_rows(config, "mail") if c == inbox)
    assert {moved_from, deleted_mail} <= set(at_target[inbox_path]), "kept until deletions are propagated"
    assert new_mail["id"] in at_target[inbox_path] and moved["id"] in {i for ids in at_target.values() for i in ids}
    assert_flags_follow(imap, upn, inbox_path, flagged, config)
    assert set(drive_files(sandbox, user).items()) <= set(cloud_files(tmp_path / "nc", login).items())

    # -- the same with --propagate-deletes: the targets now equal the source exactly
    second = run(config, "sync", SYNC_STAGES)
    assert second.exit_code == 0 and second.deleted.outcomes == {"deleted": 5}, second.deleted  # two mails, an event, a contact, a file
    assert {p: sorted(v) for p, v in imap_folders(imap, upn, config).items()} == {p: sorted(v) for p, v in at_source.items()}
    assert cloud_files(tmp_path / "nc", login) == drive_files(sandbox, user)
    at_dav = dav_sources(config, dav, login)
    assert at_dav == live_events_and_contacts(sandbox, user)
    assert new_event["id"] in at_dav and new_contact["id"] in at_dav

    # -- nothing changed: nothing written anywhere
    before = disk_state(imap.mail_dir, dav.collections, tmp_path / "nc" / "files")
    quiet = run(config, "sync", SYNC_STAGES)
    assert quiet.exit_code == 0 and sum(quiet.copy.outcomes.values()) == 0 and sum(quiet.deleted.outcomes.values()) == 0
    assert events_of_run(config, ("item.copied", "item.deleted_at_target")) == []
    assert disk_state(imap.mail_dir, dav.collections, tmp_path / "nc" / "files") == before


def dest_id_of(config, source_id: str) -> str:
    ledger = Ledger(config.ledger_url)
    try:
        with Session(ledger.engine) as s:
            return s.scalar(select(Item.dest_id).where(Item.source_id == source_id))
    finally:
        ledger.close()


def assert_flags_follow(imap, upn: str, path: tuple[str, ...], message: dict, config) -> None:
    """The copy of a message read or flagged in Outlook after the bulk pass carries the new flags."""
    sink = ImapSink(imap.host, imap.port, "tls", login=lambda o: (f"{o}*{DEFAULT_MASTER[0]}", DEFAULT_MASTER[1]), ca_file=imap.ca_file)
    _, _, uid = parse_dest_id(dest_id_of(config, message["id"]))

    async def flags():
        try:
            return await sink.flags_of(upn, path, uid)
        finally:
            await sink.close()

    found = asyncio.run(flags())
    assert "\\Flagged" in found and ("\\Seen" in found) == bool(message.get("isRead"))
