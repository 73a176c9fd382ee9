"""The [source] section every end-to-end test (and the mail benchmark) writes for the sandbox,
with the client secret in a file beside the config, as a migration team would keep it."""

from __future__ import annotations

from pathlib import Path

from migrator.sandbox.app import Sandbox
from migrator.sandbox.serve import source_section
from migrator.sandbox.tenant import SANDBOX_CLIENT_SECRET
from tests.fixtures.dovecot import DEFAULT_MASTER


def sandbox_source(directory: Path, sandbox: Sandbox, upns: list[str] | None = None) -> str:
    """The first user's department is migrated, or only `upns` when given."""
    (directory / "graph-secret").write_text(SANDBOX_CLIENT_SECRET + "\n")
    if upns is not None:
        (directory / "users.txt").write_text("".join(upn + "\n" for upn in upns))
    batch = 'users_file = "users.txt"' if upns is not None else f'department = "{sandbox.tenant.users[0]["department"]}"'
    return source_section(sandbox, '{ file = "graph-secret" }') + f"""
[batch]
{batch}
"""


def dovecot_target(directory: Path, server) -> str:
    """[targets.mail] for a Dovecot started by tests.fixtures.dovecot, written as its master user."""
    (directory / "imap-master").write_text(DEFAULT_MASTER[1])
    return f"""
[targets.mail]
kind = "imap"
host = "{server.host}"
port = {server.port}
security = "tls"
ca_bundle = "{server.ca_file}"
master_user = "{DEFAULT_MASTER[0]}"
master_password = {{ file = "imap-master" }}
"""


def dav_targets(dav_url: str) -> str:
    """[targets.calendar] and [targets.contacts] on one CalDAV/CardDAV server, logging in with the
    password in the file "password" beside the config."""
    return f"""
[targets.calendar]
kind = "caldav"
url = "{dav_url}"
password = {{ file = "password" }}

[targets.contacts]
kind = "carddav"
url = "{dav_url}"
password = {{ file = "password" }}
"""


def nextcloud_target(cloud_url: str) -> str:
    """[targets.files] on Nextcloud, logging in with the password in the file "password" beside the config."""
    return f"""
[targets.files]
kind = "nextcloud"
url = "{cloud_url}"
password = {{ file = "password" }}
"""


def dav_and_files_targets(dav_url: str, cloud_url: str) -> str:
    return dav_targets(dav_url) + nextcloud_target(cloud_url)
