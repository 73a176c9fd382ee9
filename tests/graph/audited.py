"""A ledger produced by a real run over the sandbox tenant, with things an auditor must see: items
deleted at the source between plan and copy (they fail), a message removed from the target, one
altered there and one the ledger never wrote, then `migrator verify` and every report format.

Secrets are given by reference as a migration team would: the Graph client secret (an app
registered with a fresh random secret) in an environment variable, the CardDAV password in a file.
Every log record of the in-process run and the output of every command is kept for scanning."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from migrator.config import load_config
from migrator.job import Job, Selection
from migrator.sandbox.api_mail import mailbox
from migrator.sandbox.app import Sandbox
from migrator.sandbox.auth import App
from migrator.sandbox.tenant import Tenant
from tests.fixtures.radicale import running_radicale

SECRET_ENV = "REPORT_TEST_GRAPH_SECRET"
CLIENT_ID = "7d3c55a1-0c4e-4b8e-9a52-5f4f0d1e2a77"
WORKLOADS = ("mail", "calendar", "contacts")


@dataclass
class Audited:
    work: Path
    config: Path
    ledger: Path
    secrets: list[str]
    env: dict[str, str]
    departments: list[str]
    deleted_titles: list[str]  # subjects of the messages deleted at the source before the copy
    outputs: dict[str, str] = field(default_factory=dict)  # "verify", "report.json", ... -> what it wrote
    logs: list[str] = field(default_factory=list)

    def migrator(self, *args: str) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "migrator", *args, "-c", str(self.config)], cwd=self.work, capture_output=True,
                             text=True, check=False, timeout=180, env=self.env)
        self.logs.append(out.stdout + out.stderr)
        return out


class _Records(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


def _config(work: Path, sandbox: Sandbox, dav_url: str) -> str:
    return f"""
[source]
kind = "graph"
tenant_id = "{sandbox.tenant.identity.tenant_id}"
client_id = "{CLIENT_ID}"
client_secret = {{ env = "{SECRET_ENV}" }}
authority_url = "{sandbox.base}"
graph_url = "{sandbox.url}"
ca_bundle = "{sandbox.ca_file}"

[ledger]
url = "sqlite:///{work / 'migration.db'}"

[batch]
users_file = "users.txt"

[workloads]
enabled = {list(WORKLOADS)!r}

[targets.mail]
kind = "maildir"
path = "maildir"

[targets.calendar]
kind = "directory"
path = "calendars"

[targets.contacts]
kind = "carddav"
url = "{dav_url}"
home = "/{{user}}/"
password = {{ file = "dav-password" }}

[run]
retry_base_seconds = 0.01
retry_max_seconds = 0.05
""".replace("'", '"')


def produce(work: Path, tls_files) -> Audited:
    """Runs the whole story; the sandbox and Radicale are stopped before this returns."""
    graph_secret, dav_password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    logs: list[str] = []
    handler = _Records(logs)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with Sandbox(Tenant(seed=5, users=2), tls_files) as sandbox:
            tenant = sandbox.tenant
            tenant.identity.apps[CLIENT_ID] = App(CLIENT_ID, secret=graph_secret)
            main = tenant.users[0]["department"]
            others = [d for d in tenant.departments() if d != main][:2]
            chosen = [u for u in tenant.users if u["department"] == main] + [next(u for u in tenant.users if u["department"] == d) for d in others]
            (work / "users.txt").write_text("".join(u["userPrincipalName"] + "\n" for u in chosen))
            (work / "dav-password").write_text(dav_password + "\n")
            owners = {u["userPrincipalName"].split("@")[0]: dav_password for u in chosen}
            with running_radicale(work / "radicale", owners) as radicale:
                (work / "migrator.toml").write_text(_config(work, sandbox, radicale.url))
                env = {**os.environ, SECRET_ENV: graph_secret}
                audited = Audited(work, work / "migrator.toml", work / "migration.db", [graph_secret, dav_password], env,
                                  [main, *others], [], logs=logs)
                os.environ[SECRET_ENV] = graph_secret
                try:
                    _migrate(audited, tenant, chosen[0])
                finally:
                    os.environ.pop(SECRET_ENV, None)
                _tamper_with_the_target(work / "maildir" / chosen[1]["userPrincipalName"])
                audited.outputs["verify"] = _checked(audited.migrator("verify"), 1)
                for fmt in ("json", "csv", "html", "table"):
                    audited.outputs[f"report.{fmt}"] = _checked(audited.migrator("report", "--format", fmt), 0)
                audited.outputs["report.titles.json"] = _checked(audited.migrator("report", "--format", "json", "--include-titles"), 0)
                audited.outputs["status"] = _checked(audited.migrator("status"), 0)
                audited.outputs["audit"] = _checked(audited.migrator("audit"), 0)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return audited


def _checked(out: subprocess.CompletedProcess, code: int) -> str:
    assert out.returncode == code, f"exit {out.returncode}: {out.stdout[-2000:]}{out.stderr[-2000:]}"
    return out.stdout


def _migrate(audited: Audited, tenant: Tenant, victim: dict) -> None:
    """Plan, then delete two messages at the source, then copy: those two fail with Graph's answer."""
    config = load_config(audited.config)
    selection = Selection.from_config(config)
    job = Job(config)
    try:
        asyncio.run(job.run("plan", selection, ("plan",)))
        box = mailbox(tenant, victim["id"])
        inbox = box.well_known["inbox"]
        for message_id in [m for m, folder in box.located.items() if folder == inbox][:2]:
            audited.deleted_titles.append(box.message(message_id)["subject"])
            box.delete(message_id)
        asyncio.run(job.run("run", selection, ("copy",)))
    finally:
        job.close()


def _tamper_with_the_target(maildir: Path) -> None:
    """One message removed, one altered, one added that no run wrote."""
    files = sorted(p for p in maildir.rglob("*") if p.is_file() and p.parent.name == "cur")
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes() + b"\r\nappended at the target\r\n")
    stray = files[2].parent / "1700000000.M1P1.stray:2,S"
    stray.write_bytes(b"X-Migrator-Source-Id: not-from-any-run\r\nSubject: stray\r\n\r\nplaced by hand\r\n")
