"""A real Dovecot IMAP server, configured from scratch in a directory of its own.

Every listener is on 127.0.0.1 and nothing of the system's Dovecot configuration is read, so tests
run beside a system Dovecot. The server runs in the foreground (`dovecot -c CONF -F`) in its own
process group, which `stop()` ends as a whole.

Run unprivileged, one account does everything and all files stay under the test's directory. Run as
root, Dovecot insists on unprivileged accounts for two things: imap-login (given dovenull, chrooted
as Dovecot does by default) and mail (userdb may not return uid 0; given nobody). Those accounts
cannot traverse private directories (pytest's temporary ones, a home directory), so the runtime
sockets and the mail then live in a world-traversable scratch directory under the system temp dir, removed by `stop()`.
Unix socket paths are limited to 108 bytes, which is the other reason the runtime directory may
move there.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from migrator.sandbox.local.processes import HOST, GroupProcess, free_port
from migrator.sandbox.tls import TlsFiles, ensure_tls

# Mailboxes every test user gets, with the special-use flag a client would look for.
SPECIAL_USE = {"Drafts": "\\Drafts", "Sent": "\\Sent", "Trash": "\\Trash", "Junk": "\\Junk", "Archive": "\\Archive"}
MAX_BASE_DIR = 60
NOT_INSTALLED = "the dovecot binary is not installed (Debian: apt-get install dovecot-imapd)"


@dataclass(frozen=True)
class _Accounts:
    """Who runs what: internal services (auth reads the passwd files), login, and mail owner."""

    internal: str
    internal_group: str
    login: str
    login_chroot: str
    mail_uid: int
    mail_gid: int


@dataclass(frozen=True)
class _Layout:
    root: Path
    run_dir: Path
    mail_dir: Path
    home_dir: Path
    scratch: Path | None


@dataclass
class DovecotServer(GroupProcess):
    """A running Dovecot: `port` speaks IMAP over TLS, `starttls_port` plain IMAP with STARTTLS."""

    LOG = "dovecot.log"
    NAME = "dovecot"

    host: str
    port: int
    starttls_port: int
    ca_file: str
    root: Path
    mail_dir: Path
    users: dict[str, str]
    master: tuple[str, str]
    process: subprocess.Popen | None = None
    _scratch: Path | None = field(default=None, repr=False)

    def maildir(self, user: str) -> Path:
        return self.mail_dir / user

    def answers(self) -> bool:
        """Not merely once the master has bound the ports: once a login process greets."""
        return _accepts(self.port) and _greets(self.starttls_port)

    def stop(self) -> None:
        """Ends Dovecot and all its children, and removes its scratch directory (the mail with it, when run as root); safe to call twice."""
        super().stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next((p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)), None)


def _first_account(*names: str) -> pwd.struct_passwd:
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(f"running as root, Dovecot needs one of the unprivileged accounts {', '.join(names)}")


def _accounts() -> _Accounts:
    uid, gid = os.getuid(), os.getgid()
    me, my_group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
    if uid != 0:
        return _Accounts(me, my_group, me, "", uid, gid)
    login = _first_account("dovenull", "nobody")
    mail = _first_account("nobody", "dovecot")
    return _Accounts(me, my_group, login.pw_name, "login", mail.pw_uid, mail.pw_gid)


def _layout(root: Path, accounts: _Accounts) -> _Layout:
    shared = os.getuid() == 0
    scratch = None
    if shared or len(str(root / "run")) > MAX_BASE_DIR:
        scratch = Path(tempfile.mkdtemp(prefix="dovecot-"))
        scratch.chmod(0o755)
    run_dir = scratch / "run" if scratch else root / "run"
    data = scratch if shared and scratch else root
    layout = _Layout(root, run_dir, data / "mail", data / "home", scratch)
    for directory in (root / "state", layout.run_dir, layout.mail_dir, layout.home_dir):
        directory.mkdir(parents=True, exist_ok=True)
    if shared:
        for directory in (layout.mail_dir, layout.home_dir):
            os.chown(directory, accounts.mail_uid, accounts.mail_gid)
    return layout


def _quota_section(quota_bytes: int | None) -> str:
    if quota_bytes is None:
        return ""
    return f"""
mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage={quota_bytes}B
}}
"""


def _config(layout: _Layout, accounts: _Accounts, ports: tuple[int, int], tls: TlsFiles, quota_bytes: int | None, extra: str) -> str:
    root, uid, gid = layout.root, accounts.mail_uid, accounts.mail_gid
    mailboxes = "\n".join(f"  mailbox {name} {{\n    special_use = {flag}\n    auto = create\n  }}" for name, flag in SPECIAL_USE.items())
    anvil_chroot = "empty" if accounts.login_chroot else ""
    return f"""# One local server; nothing outside {root} and {layout.run_dir.parent} is used.
base_dir = {layout.run_dir}
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
instance_name = migrator-test-{ports[0]}
listen = {HOST}
protocols = imap
default_internal_user = {accounts.internal}
default_internal_group = {accounts.internal_group}
default_login_user = {accounts.login}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:{layout.mail_dir}/%u
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = *
# Tests try wrong passwords on purpose: answer at once. (Later logins from 127.0.0.1 still wait
# out anvil's auth penalty, so such tests are best given a server of their own.)
auth_failure_delay = 0
ssl = yes
ssl_cert = <{tls.server_cert}
ssl_key = <{tls.server_key}
ssl_min_protocol = TLSv1.2

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/master.passwd
  master = yes
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users.passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={layout.home_dir}/%u
}}

namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}
}}

service imap-login {{
  chroot = {accounts.login_chroot}
  inet_listener imap {{
    address = {HOST}
    port = {ports[1]}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {ports[0]}
    ssl = yes
  }}
}}
service anvil {{
  chroot = {anvil_chroot}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
{_quota_section(quota_bytes)}
{extra}
"""


def _write_passwd(path: Path, accounts: dict[str, str]) -> None:
    path.write_text("".join(f"{name}:{{PLAIN}}{secret}\n" for name, secret in accounts.items()))
    path.chmod(0o600)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _greets(port: int) -> bool:
    """True once a login process answers, not merely once the master has bound the port."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as conn:
            return conn.recv(4) == b"* OK"
    except OSError:
        return False


def running_dovecot(
    tmp_dir: str | Path, users: dict[str, str], master: tuple[str, str], quota_bytes: int | None = None, extra: str = ""
) -> DovecotServer:
    """Starts a Dovecot for `users` (name -> password) and returns it once it accepts connections.

    `quota_bytes` gives every user a storage quota; `extra` is appended to the configuration
    (e.g. "imap_capability = +CREATE-SPECIAL-USE").

    Use as `with running_dovecot(...) as server:` or call `server.stop()`; the process is also
    ended at interpreter exit should neither happen.
    """
    binary = dovecot_binary()
    if binary is None:
        raise RuntimeError(NOT_INSTALLED)
    root = Path(tmp_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    accounts = _accounts()
    layout = _layout(root, accounts)
    tls = ensure_tls(root / "tls")
    _write_passwd(root / "users.passwd", users)
    _write_passwd(root / "master.passwd", dict([master]))
    ports = (free_port(), free_port())
    conf = root / "dovecot.conf"
    conf.write_text(_config(layout, accounts, ports, tls, quota_bytes, extra))
    server = DovecotServer(HOST, ports[0], ports[1], str(tls.ca_cert), root, layout.mail_dir, dict(users), master, _scratch=layout.scratch)
    server.start([binary, "-c", str(conf), "-F"], output=root / "dovecot.stdout")
    return server
