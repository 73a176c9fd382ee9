"""OneDrives from the sandbox into a real WsgiDAV through the whole engine: every file arrives with
identical bytes at its legal path, forbidden names legalised, a rerun uploads nothing, and a file
changed at the source is replaced."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from mappings.file_names import NameRules, legal_path
from migrator.config import load_config
from migrator.job import Job, Selection
from migrator.sandbox.api_drive import onedrive
from migrator.sandbox.app import Sandbox
from migrator.sandbox.tenant import Tenant
from tests.fixtures.wsgidav import running_wsgidav
from tests.graph.configs import sandbox_source

PASSWORD = "dav-secret"


@pytest.fixture
def tenant_sandbox(tls_files):
    with Sandbox(Tenant(seed=11, users=2), tls_files) as running:
        yield running


def members_of(sandbox) -> list[dict]:
    return [u for u in sandbox.tenant.users if u["department"] == sandbox.tenant.users[0]["department"]]


def local(user: dict) -> str:
    return user["userPrincipalName"].split("@")[0]


def files_config(tmp_path: Path, sandbox, server) -> object:
    (tmp_path / "dav-secret").write_text(PASSWORD)
    (tmp_path / "migrator.toml").write_text(f"""
{sandbox_source(tmp_path, sandbox)}
[workloads]
enabled = ["files"]

[targets.files]
kind = "webdav"
url = "{server.url}"
home = "/{{user}}"
password = {{ file = "dav-secret" }}

[run]
retry_base_seconds = 0.01
retry_max_seconds = 0.05
""")
    return load_config(tmp_path / "migrator.toml")


def run(config):
    job = Job(config)
    try:
        result = asyncio.run(job.run("run", Selection.from_config(config)))
        problems = [(p.workload, p[4], p.last_error) for p in job.ledger.problems() if p.state == "failed"]
    finally:
        job.close()
    return result, problems


def expected_files(sandbox, user: dict) -> dict[str, str]:
    """Legal path below the user's home -> sha256 of the source bytes, for every file."""
    drive = onedrive(sandbox.tenant, user["id"])
    expected = {}
    for item in drive.items.current():
        if "file" in item:
            legal, _ = legal_path(("OneDrive", *drive.data.path_of(item["id"]).split("/")), NameRules.nextcloud_defaults())
            expected["/".join(legal)] = hashlib.sha256(drive.content(item["id"]).read_all()).hexdigest()
    return expected


def stored_files(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() for p in home.rglob("*") if p.is_file()}


def test_onedrives_arrive_complete_and_a_rerun_uploads_nothing(tmp_path, tenant_sandbox):
    members = members_of(tenant_sandbox)
    with running_wsgidav(tmp_path / "dav", {local(u): PASSWORD for u in members}) as server:
        config = files_config(tmp_path, tenant_sandbox, server)
        first, problems = run(config)
        assert problems == [] and first.exit_code == 0, problems[:3]
        assert first.verify.outcomes["mismatch"] == 0 and first.verify.outcomes["verified"] > 0
        for user in members:
            home = server.root / local(user)
            assert stored_files(home) == expected_files(tenant_sandbox, user)
        owner = server.root / local(members[0]) / "OneDrive"
        awkward = {p.name for p in (owner / "Lastige namen").iterdir()}
        assert ".htaccess" not in awkward and any(n.startswith("_.htaccess~") for n in awkward)
        assert any(n.startswith("download_part~") for n in awkward)

        second, problems = run(config)
        assert problems == [] and sum(second.copy.outcomes.values()) == 0 and second.copy.bytes == 0

        drive = onedrive(tenant_sandbox.tenant, members[0]["id"])
        changed = next(i for i in drive.items.current() if "file" in i and i["name"].endswith(".txt"))
        drive.replace_content(changed["id"], b"nieuwe inhoud na de eerste migratie\n")
        third, problems = run(config)
        assert problems == [] and third.copy.outcomes["copied"] == 1
        assert stored_files(server.root / local(members[0])) == expected_files(tenant_sandbox, members[0])
