"""`migrator preflight` against the sandbox and real local targets: everything passes for a good
configuration, and each deliberately broken setting is named with its fix."""

from __future__ import annotations

import asyncio

import pytest

from migrator.cli import main
from migrator.config import load_config
from migrator.job import Selection
from migrator.preflight import FAIL, Check, run_preflight
from migrator.sandbox.auth import App
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.wiring import build_sink, build_source
from tests.fixtures.radicale import running_radicale
from tests.graph.configs import sandbox_source

PASSWORD = "app-password"


def local(user: dict) -> str:
    return user["userPrincipalName"].split("@")[0]


@pytest.fixture
def targets(tmp_path, sandbox):
    accounts = {local(u): PASSWORD for u in sandbox.tenant.users}
    with running_radicale(tmp_path / "radicale", accounts) as radicale, \
            NextcloudServer(tmp_path / "nc", users=accounts, admin=("beheer", "beheer-pw"), public_links=False) as nextcloud:
        yield radicale, nextcloud


def write_config(tmp_path, sandbox, radicale, nextcloud, *, maildir: str = "mail", files: str = "", source: str = "") -> None:
    (tmp_path / "dav-password").write_text(PASSWORD)
    (tmp_path / "nc-passwords.csv").write_text("".join(f"{local(u)},{PASSWORD}\n" for u in sandbox.tenant.users) + "beheer,beheer-pw\n")
    (tmp_path / "migrator.toml").write_text(f"""
{source or sandbox_source(tmp_path, sandbox)}
[workloads]
enabled = ["mail", "calendar", "files"]

[targets.mail]
kind = "maildir"
path = "{maildir}"

[targets.calendar]
kind = "caldav"
url = "{radicale.url}"
password = {{ file = "dav-password" }}

[targets.files]
kind = "nextcloud"
url = "{nextcloud.url}"
user_passwords = {{ file = "nc-passwords.csv" }}
{files}
""")


def preflight(tmp_path, capsys) -> tuple[int, str]:
    code = main(["preflight", "--config", str(tmp_path / "migrator.toml")])
    return code, " ".join(capsys.readouterr().out.split())


def checks_of(tmp_path) -> dict[str, list[Check]]:
    """subject -> its checks, run the way the command runs them."""
    config = load_config(tmp_path / "migrator.toml")
    selection = Selection.from_config(config)
    sinks = {w: build_sink(w, config.targets[w], config) for w in selection.workloads}
    found: dict[str, list[Check]] = {}
    for check in asyncio.run(run_preflight(config, build_source(config), sinks, selection)):
        found.setdefault(check.subject, []).append(check)
    return found


def test_a_good_configuration_passes(tmp_path, sandbox, targets, capsys):
    write_config(tmp_path, sandbox, *targets, files='[files]\nlibraries_owner = "beheer"\n[files.sites]\n"x" = []\n'.replace('"x"', f'"{sandbox.tenant.users[0]["department"]}"'))
    code, out = preflight(tmp_path, capsys)
    assert code == 0, out
    for subject in ("sign-in", "users", "mail permission", "calendar permission", "files permission",
                    "mail target (maildir)", "calendar target (caldav)", "files target (nextcloud)", "group folders", "files quota"):
        assert subject in out, subject
    assert "fail" not in out.replace("0 checks failed", "")
    assert "public links are off" in out, "what the target will not take is a warning up front"


def test_broken_settings_are_each_named_with_the_fix(tmp_path, sandbox, targets, capsys):
    radicale, nextcloud = targets
    (tmp_path / "blocked").write_text("a file where a folder should be")
    sandbox.tenant.identity.apps["narrow"] = App("narrow", secret="narrow-secret", permissions=("User.Read.All", "Files.Read.All"))
    (tmp_path / "narrow-secret").write_text("narrow-secret")
    source = sandbox_source(tmp_path, sandbox).replace('client_secret = { file = "graph-secret" }', 'client_secret = { file = "narrow-secret" }')
    source = source.replace(f'client_id = "{sandbox_client_id(source)}"', 'client_id = "narrow"')
    write_config(tmp_path, sandbox, radicale, nextcloud, maildir="blocked/mail", source=source)
    (tmp_path / "nc-passwords.csv").write_text("".join(f"{local(u)},wrong\n" for u in sandbox.tenant.users))
    checks = checks_of(tmp_path)
    failed = {subject: c for subject, cs in checks.items() for c in cs if c.status == FAIL}
    assert set(failed) == {"mail permission", "calendar permission", "mail target (maildir)", "files target (nextcloud)"}
    assert "Mail.Read" in failed["mail permission"].fix and "Calendars.Read" in failed["calendar permission"].fix
    assert "cannot create" in failed["mail target (maildir)"].detail
    assert "Nextcloud refused" in failed["files target (nextcloud)"].detail and "app password" in failed["files target (nextcloud)"].fix
    code, out = preflight(tmp_path, capsys)
    assert code == 1 and "4 checks failed" in out


def test_a_wrong_client_secret_stops_at_sign_in(tmp_path, sandbox, targets, capsys):
    write_config(tmp_path, sandbox, *targets)
    (tmp_path / "graph-secret").write_text("not the secret")
    code, out = preflight(tmp_path, capsys)
    assert code == 1 and "source: sign-in" in out and "client_secret" in out


def sandbox_client_id(source: str) -> str:
    return source.split('client_id = "', 1)[1].split('"', 1)[0]
