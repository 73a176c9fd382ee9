"""OneDrives from the sandbox through the whole engine into a real WsgiDAV and into the Nextcloud
stand-in: every file arrives with identical bytes at its legal path, forbidden names legalised and
recorded, modification times kept (Nextcloud), shares created, a rerun uploads nothing, and a
file changed at the source is replaced."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mappings.file_names import NameRules, legal_path
from migrator.config import load_config
from migrator.job import Job, Selection
from migrator.report import build_report
from migrator.report_html import to_html
from migrator.sandbox.api_drive import library as library_of
from migrator.sandbox.api_drive import onedrive
from migrator.sandbox.app import Sandbox
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.sandbox.tenant import Tenant
from state.ledger import Ledger
from state.models import Event
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


WEBDAV_TARGET = """
[targets.files]
kind = "webdav"
url = "{url}"
home = "/{{user}}"
password = {{ file = "dav-secret" }}
"""
NEXTCLOUD_TARGET = """
[targets.files]
kind = "nextcloud"
url = "{url}"
user_passwords = {{ file = "app-passwords.csv" }}
"""


def files_config(tmp_path: Path, sandbox, target: str) -> object:
    (tmp_path / "dav-secret").write_text(PASSWORD)
    (tmp_path / "app-passwords.csv").write_text("".join(f"{local(u)},{PASSWORD}-{local(u)}\n" for u in sandbox.tenant.users))
    (tmp_path / "migrator.toml").write_text(f"""
{sandbox_source(tmp_path, sandbox)}
[workloads]
enabled = ["files"]
{target}
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


def first_run(config):
    """A bulk pass that must end with every item copied, verified and reconciled."""
    first, problems = run(config)
    assert problems == [] and first.exit_code == 0, problems[:3]
    assert first.verify.outcomes["mismatch"] == 0 and first.verify.outcomes["verified"] > 0
    assert [(where, f.detail()) for where, f in first.verify.reconciled.disagreements()] == []
    return first


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
        config = files_config(tmp_path, tenant_sandbox, WEBDAV_TARGET.format(url=server.url))
        first_run(config)
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


def test_onedrives_into_nextcloud_keep_mtimes_and_shares(tmp_path, tenant_sandbox):
    tenant = tenant_sandbox.tenant
    members = members_of(tenant_sandbox)
    accounts = {local(u): f"{PASSWORD}-{local(u)}" for u in tenant.users}
    with NextcloudServer(tmp_path / "nc", users=accounts, public_links=False) as server:
        config = files_config(tmp_path, tenant_sandbox, NEXTCLOUD_TARGET.format(url=server.url))
        first_run(config)
        for user in members:
            home = tmp_path / "nc" / "files" / local(user)
            assert stored_files(home) == expected_files(tenant_sandbox, user)
            drive = onedrive(tenant, user["id"])
            for item in drive.items.current():
                if "file" in item:
                    legal, _ = legal_path(("OneDrive", *drive.data.path_of(item["id"]).split("/")), NameRules.nextcloud_defaults())
                    source = dt.datetime.fromisoformat(item["fileSystemInfo"]["lastModifiedDateTime"]).timestamp()
                    assert abs(home.joinpath(*legal).stat().st_mtime - source) <= 1, item["name"]

        owner = members[0]
        shared = [s for s in shares_seen(server, local(owner), accounts[local(owner)], "/OneDrive/Gedeeld met team")]
        expected = {local(c) for c in tenant.colleagues(owner)[:2]}
        assert {s["share_with"] for s in shared} == expected
        details = copied_event_details(config.ledger_url)
        renamed = [d["renamed"] for d in details if "renamed" in d]
        assert {r["from"] for r in renamed} >= {".htaccess", "download.part", "upload.filepart", "rapport\\2026.txt"}
        notes = [n for d in details for n in d.get("notes", [])]
        assert any("organization scope" in n for n in notes), "organisation links are reported, not dropped silently"

        second, problems = run(config)
        assert problems == [] and sum(second.copy.outcomes.values()) == 0 and second.copy.bytes == 0
        assert len(shares_seen(server, local(owner), accounts[local(owner)], "/OneDrive/Gedeeld met team")) == len(expected)


def copied_event_details(url: str) -> list[dict]:
    ledger = Ledger(url)
    try:
        with Session(ledger.engine) as session:
            return [json.loads(detail) for detail in session.scalars(select(Event.detail).where(Event.kind == "item.copied"))]
    finally:
        ledger.close()


def library_members(tenant, department: str) -> list[dict]:
    return tenant.department_members(department)


def shares_seen(server, user: str, password: str, path: str) -> list[dict]:
    answer = httpx.get(f"{server.url}/ocs/v2.php/apps/files_sharing/api/v1/shares", params={"path": path, "format": "json"},
                       headers={"OCS-APIRequest": "true"}, auth=(user, password))
    return answer.json()["ocs"]["data"]


def test_a_sharepoint_site_becomes_a_group_folder_its_members_see(tmp_path, tenant_sandbox):
    tenant = tenant_sandbox.tenant
    department = tenant.users[0]["department"]
    members = members_of(tenant_sandbox)
    accounts = {local(u): f"{PASSWORD}-{local(u)}" for u in tenant.users}
    admin = ("beheer", "beheer-app-password")
    groups = {"afdeling": [local(u) for u in members], "leden": [local(u) for u in members]}
    with NextcloudServer(tmp_path / "nc", users=accounts, admin=admin, groups=groups) as server:
        with (tmp_path / "app-passwords.csv").open("a") as extra:
            extra.write(f"{admin[0]},{admin[1]}\n")
        target = NEXTCLOUD_TARGET.format(url=server.url) + f"""
[files]
libraries_owner = "{admin[0]}"
[files.sites]
"{department}" = ["afdeling"]
[files.groups]
"Leden van {department}" = "leden"
"""
        config = files_config(tmp_path, tenant_sandbox, target)
        (tmp_path / "app-passwords.csv").write_text(
            "".join(f"{local(u)},{PASSWORD}-{local(u)}\n" for u in tenant.users) + f"{admin[0]},{admin[1]}\n")
        first, problems = run(config)
        assert problems == [] and first.exit_code == 0, problems[:3]
        _, library = library_of(tenant, department)
        expected = {}
        for item in library.items.current():
            if "file" in item:
                legal, _ = legal_path((department, "Documenten", *library.data.path_of(item["id"]).split("/")), NameRules.nextcloud_defaults())
                expected["/".join(legal)] = hashlib.sha256(library.content(item["id"]).read_all()).hexdigest()
        member = local(members[-1])
        with httpx.Client(base_url=server.url, auth=(member, accounts[member])) as client:
            seen = {key: hashlib.sha256(client.get(f"/remote.php/dav/files/{member}/{quote(key)}").content).hexdigest() for key in expected}
        assert seen == expected, "a member of the site's group reads every library file in the Group Folder"
        # The library root's grants are the Group Folder's groups; a folder with broken inheritance
        # keeps its own: a named member, and the owners' group (not mapped, so noted).
        shared = shares_seen(server, admin[0], admin[1], f"/{department}/Documenten/Vertrouwelijk")
        assert [(s["share_type"], s["share_with"]) for s in shared] == [(0, local(library_members(tenant, department)[0]))]
        notes = [n for d in copied_event_details(config.ledger_url) for n in d.get("notes", [])]
        assert any(f"Eigenaars van {department}" in n for n in notes)
        second, problems = run(config)
        assert problems == [] and sum(second.copy.outcomes.values()) == 0


def test_the_report_lists_legalised_names_and_what_was_not_carried_over(tmp_path, tenant_sandbox):
    tenant = tenant_sandbox.tenant
    accounts = {local(u): f"{PASSWORD}-{local(u)}" for u in tenant.users}
    with NextcloudServer(tmp_path / "nc", users=accounts, public_links=False) as server:
        config = files_config(tmp_path, tenant_sandbox, NEXTCLOUD_TARGET.format(url=server.url))
        run(config)
    ledger = Ledger(config.ledger_url)
    try:
        private, titled = build_report(ledger), build_report(ledger, include_titles=True)
    finally:
        ledger.close()
    causes = {c["reason"]: c["items"] for c in private["adjustment_causes"]}
    assert causes["renamed: the target refuses the name"] >= 4
    assert any("organisation-wide link" in reason for reason in causes)
    assert all("renamed_from" not in a for a in private["adjusted"]), "names are titles: only on request"
    renamed = {a["renamed_from"]: a["renamed_to"] for a in titled["adjusted"] if "renamed_from" in a}
    assert renamed[".htaccess"].startswith("_.htaccess~") and renamed["download.part"].startswith("download_part~")
    html = to_html(titled)
    assert "Moved, but not exactly as at the source" in html and "download_part~" in html
