"""What `make demo` starts and configures: the sandbox tenant and real local targets, each on a loopback
port, and a configuration for them written as a migration team would keep it (secrets in 0600 files,
referenced). Everything started is registered on an ExitStack, so one close stops it all, also after
Ctrl-C or an error."""

from __future__ import annotations

import os
import secrets
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from connectors.matrix.registration import token_file
from migrator.sandbox.app import Sandbox
from migrator.sandbox.local.dovecot import (
    DovecotServer,
    dovecot_binary,
    running_dovecot,
)
from migrator.sandbox.local.radicale import RadicaleServer, running_radicale
from migrator.sandbox.local.synapse import SERVER_NAME, SynapseServer, running_synapse
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.sandbox.serve import source_section
from migrator.sandbox.tenant import SANDBOX_CLIENT_SECRET, Tenant
from migrator.sandbox.tls import ensure_tls

SEED = 7
# People in the sandbox's first department, the one moved. Each brings ~40 messages, ~25 events, ~25 contacts,
# ~55 files and ~380 chat messages (fixed by the generators): two keep `make demo` well under 3 minutes on 2 cores.
DEPARTMENT_SIZE = 2
IMAP_MASTER = "migrator"
NEXTCLOUD_ADMIN = "beheer"
GROUP = "afdeling"  # the Nextcloud group that sees the department's SharePoint library
WORKLOADS = ("mail", "calendar", "contacts", "files", "chat")


@dataclass
class DemoTargets:
    """The running servers and where their configuration and secrets are."""

    workdir: Path
    config: Path
    department: str
    members: list[dict]
    sandbox: Sandbox
    radicale: RadicaleServer
    nextcloud: NextcloudServer
    synapse: SynapseServer | None = None
    dovecot: DovecotServer | None = None
    passwords: dict[str, str] = field(default_factory=dict)  # account (UPN local part) -> its app password

    @property
    def secrets(self) -> Path:
        return self.workdir / "secrets"

    @property
    def maildir(self) -> Path:
        return self.workdir / "maildir"

    def local(self, user: dict) -> str:
        return user["userPrincipalName"].split("@")[0]


def write_secret(path: Path, value: str) -> Path:
    """A file only its owner may read, created with that mode (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return path


def start_source(workdir: Path, stack: ExitStack) -> Sandbox:
    sandbox = Sandbox(Tenant(seed=SEED, users=DEPARTMENT_SIZE), ensure_tls(workdir / "sandbox")).start()
    stack.callback(sandbox.stop)
    return sandbox


def start_targets(workdir: Path, sandbox: Sandbox, stack: ExitStack) -> DemoTargets:
    """Radicale, the Nextcloud stand-in, and Dovecot when installed; Synapse comes after the registration."""
    department = sandbox.tenant.users[0]["department"]
    members = sandbox.tenant.department_members(department)
    locals_ = [m["userPrincipalName"].split("@")[0] for m in members]
    passwords = {name: secrets.token_urlsafe(16) for name in locals_}
    radicale = running_radicale(workdir / "radicale", passwords)
    stack.callback(radicale.stop)
    admin = (NEXTCLOUD_ADMIN, secrets.token_urlsafe(16))
    nextcloud = NextcloudServer(workdir / "nextcloud", users=passwords, admin=admin, groups={GROUP: locals_}).start()
    stack.callback(nextcloud.stop)
    targets = DemoTargets(workdir, workdir / "migrator.toml", department, members, sandbox, radicale, nextcloud, passwords=passwords)
    write_secret(targets.secrets / "graph-client-secret", SANDBOX_CLIENT_SECRET)
    write_secret(targets.secrets / "app-passwords.csv", "\n".join(f"{n},{p}" for n, p in {**passwords, admin[0]: admin[1]}.items()))
    if dovecot_binary() is not None:
        master = (IMAP_MASTER, secrets.token_urlsafe(16))
        mail_passwords = {m["userPrincipalName"]: passwords[targets.local(m)] for m in members}
        targets.dovecot = running_dovecot(workdir / "dovecot", mail_passwords, master)
        stack.callback(targets.dovecot.stop)
        write_secret(targets.secrets / "imap-master-password", master[1])
    return targets


def start_synapse(targets: DemoTargets, registration: Path, port: int, stack: ExitStack) -> SynapseServer:
    """Synapse with the migrator's application service, and a Matrix account for each member (imported
    messages go to rooms its real account is invited to), with the member's app password."""
    targets.synapse = running_synapse(targets.workdir / "synapse", registration_file=registration, port=port)
    stack.callback(targets.synapse.stop)
    for member in targets.members:
        name = targets.local(member)
        targets.synapse.register_user(name, targets.passwords[name])
    return targets.synapse


def write_config(targets: DemoTargets, synapse_url: str) -> Path:
    """The configuration for the running servers; Synapse's URL is known before it starts (its port is chosen here)."""
    sandbox, s = targets.sandbox, targets.secrets
    token_file(s / "matrix-as-token")
    token_file(s / "matrix-hs-token")
    if targets.dovecot is not None:
        d = targets.dovecot
        mail = (f'kind = "imap"\nhost = "{d.host}"\nport = {d.port}\nsecurity = "tls"\nca_bundle = "{d.ca_file}"\n'
                f'master_user = "{IMAP_MASTER}"\nmaster_password = {{ file = "secrets/imap-master-password" }}')
    else:
        mail = f'kind = "maildir"\npath = "{targets.maildir.name}"'
    targets.config.write_text("# Written by `migrator demo`: the sandbox tenant and the local servers it started.\n"
                              + source_section(sandbox, '{ file = "secrets/graph-client-secret" }') + f"""
[ledger]
url = "sqlite:///migration.db"

[batch]
department = "{targets.department}"

[workloads]
enabled = {list(WORKLOADS)!r}

[identity]
matrix_id = "@{{local}}:{SERVER_NAME}"

[files]
libraries_owner = "{NEXTCLOUD_ADMIN}"

[files.sites]
"{targets.department}" = ["{GROUP}"]

[files.groups]
"Eigenaars van {targets.department}" = "{GROUP}"
"Leden van {targets.department}" = "{GROUP}"
"Bezoekers van {targets.department}" = "{GROUP}"

[targets.mail]
{mail}

[targets.calendar]
kind = "caldav"
url = "{targets.radicale.url}"
user_passwords = {{ file = "secrets/app-passwords.csv" }}

[targets.contacts]
kind = "carddav"
url = "{targets.radicale.url}"
user_passwords = {{ file = "secrets/app-passwords.csv" }}

[targets.files]
kind = "nextcloud"
url = "{targets.nextcloud.url}"
user_passwords = {{ file = "secrets/app-passwords.csv" }}

[targets.chat]
kind = "matrix"
url = "{synapse_url}"
server_name = "{SERVER_NAME}"
as_token = {{ file = "secrets/matrix-as-token" }}
hs_token = {{ file = "secrets/matrix-hs-token" }}
""")
    return targets.config
