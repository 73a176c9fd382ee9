"""A real Radicale CalDAV/CardDAV server, configured from scratch in a directory of its own.

Radicale comes with the `demo` extra and runs as `python -m radicale` with the current interpreter, listening
on 127.0.0.1 only, with htpasswd (plain) accounts and `owner_only` rights: since 3.5 the default
authentication is `denyall`, so a server that forgot to configure it would answer nothing but 401s.
Nothing of a system or user Radicale configuration is read (`--config` names only ours).
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from migrator.sandbox.local.processes import HOST, GroupProcess, free_port


@dataclass
class RadicaleServer(GroupProcess):
    """A running Radicale; `url` is its base URL, with no trailing slash."""

    LOG = "radicale.log"
    NAME = "radicale"

    url: str
    root: Path
    users: dict[str, str]
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def collections(self) -> Path:
        return self.root / "collections"

    def answers(self) -> bool:
        return _answers(self.url)


def _config(root: Path, port: int, max_resource_size: int | None) -> str:
    server = f"[server]\nhosts = {HOST}:{port}\n"
    if max_resource_size is not None:
        # Radicale caps max_resource_size at 80 % of max_content_length (default 100 MB).
        server += f"max_resource_size = {max_resource_size}\n"
        server += f"max_content_length = {max(100_000_000, max_resource_size * 2)}\n"
    return (
        server
        + f"\n[auth]\ntype = htpasswd\nhtpasswd_filename = {root / 'users'}\nhtpasswd_encryption = plain\n"
        + "delay = 0\n"  # no 1 s pause after each 401/403: tests provoke some on purpose
        + f"\n[storage]\nfilesystem_folder = {root / 'collections'}\n"
        + "\n[rights]\ntype = owner_only\n"
        + "\n[web]\ntype = none\n"
        + "\n[logging]\nlevel = warning\n"
    )


def _write_users(path: Path, users: dict[str, str]) -> None:
    path.write_text("".join(f"{name}:{secret}\n" for name, secret in users.items()))
    path.chmod(0o600)


def _answers(url: str) -> bool:
    """True once Radicale answers HTTP at all (a 401 for an anonymous request is an answer)."""
    try:
        with urllib.request.urlopen(url + "/.well-known/caldav", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def running_radicale(tmp_dir: str | Path, users: dict[str, str], max_resource_size: int | None = None) -> RadicaleServer:
    """Starts Radicale for `users` (name -> password) and returns it once it answers HTTP.

    Use as `with running_radicale(...) as server:` or call `server.stop()`; the process is also
    ended at interpreter exit should neither happen.
    """
    root = Path(tmp_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    _write_users(root / "users", users)
    port = free_port()
    conf = root / "radicale.conf"
    conf.write_text(_config(root, port, max_resource_size))
    server = RadicaleServer(f"http://{HOST}:{port}", root, dict(users))
    server.start([sys.executable, "-m", "radicale", "--config", str(conf)])
    return server
