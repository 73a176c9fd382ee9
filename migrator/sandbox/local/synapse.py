"""A real Synapse homeserver: SQLite, one loopback HTTP listener, no TLS, no federation, and the
migrator's application service registered (the same registration `migrator matrix registration` writes).

Started as `python -m synapse.app.homeserver -c homeserver.yaml` with the current interpreter (Synapse comes
with the `demo` extra); the signing key is
generated here (signedjson, a Synapse dependency) so no separate key-generation start is needed. Rate limits of
ordinary users are raised too, for a client's own reads and the admin user a test creates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from signedjson.key import generate_signing_key, write_signing_keys

from connectors.matrix.registration import Registration, new_token, write_registration
from migrator.sandbox.local.processes import HOST, GroupProcess, free_port

SERVER_NAME = "localhost"
GENEROUS = {"per_second": 10000, "burst_count": 10000}


@dataclass
class SynapseServer(GroupProcess):
    LOG = "synapse.log"
    NAME = "synapse"
    START_TIMEOUT = 60.0

    url: str
    root: Path
    registration: Registration
    shared_secret: str
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def server_name(self) -> str:
        return self.registration.server_name

    def answers(self) -> bool:
        return _answers(self.url)

    def register_user(self, localpart: str, password: str = "unused-password", admin: bool = False) -> str:
        """A real (non-imported) account, through the shared-secret admin registration."""
        nonce = self._request("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"admin" if admin else b"notadmin"]))
        body = {"nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac.hexdigest()}
        return self._request("POST", "/_synapse/admin/v1/register", body)["user_id"]

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def _config(root: Path, port: int, shared_secret: str, registration_file: Path) -> str:
    limits = {name: GENEROUS for name in ("rc_message", "rc_registration", "rc_login", "rc_admin_redaction",
                                           "rc_3pid_validation", "rc_media_create")}
    limits["rc_joins"] = {"local": GENEROUS, "remote": GENEROUS}
    limits["rc_invites"] = {"per_room": GENEROUS, "per_user": GENEROUS, "per_issuer": GENEROUS}
    config = {
        "server_name": SERVER_NAME,
        "pid_file": str(root / "homeserver.pid"),
        "listeners": [{"port": port, "bind_addresses": [HOST], "type": "http", "tls": False, "x_forwarded": False,
                       "resources": [{"names": ["client", "media"], "compress": False}]}],
        "database": {"name": "sqlite3", "args": {"database": str(root / "homeserver.db")}},
        "media_store_path": str(root / "media"),
        "signing_key_path": str(root / "signing.key"),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "report_stats": False,
        "enable_metrics": False,
        "federation_domain_whitelist": [],
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": new_token(),
        "form_secret": new_token(),
        "app_service_config_files": [str(registration_file)],
        "enable_authenticated_media": True,
        **limits,
    }
    return json.dumps(config, indent=1)  # JSON is YAML


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_matrix/client/versions", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _read_registration(path: Path) -> Registration:
    """The tokens and sender of a registration `migrator matrix registration` wrote (its prefixes are not needed here)."""
    fields = yaml.safe_load(path.read_text())
    return Registration(SERVER_NAME, as_token=fields["as_token"], hs_token=fields["hs_token"], sender_localpart=fields["sender_localpart"])


def running_synapse(tmp_dir: str | Path, registration_file: Path | None = None, port: int | None = None) -> SynapseServer:
    """Starts Synapse in `tmp_dir` and returns it once /_matrix/client/versions answers.

    The application service is the one registered in `registration_file` (for server name SERVER_NAME),
    or, without it, a new registration written into `tmp_dir`. `port` is a free one unless given.
    """
    root = Path(tmp_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    port, shared_secret = port or free_port(), new_token()
    if registration_file is None:
        registration_file = root / "registration.yaml"
        registration = Registration(SERVER_NAME, as_token=new_token(), hs_token=new_token())
        write_registration(registration, registration_file)
    else:
        registration_file = Path(registration_file).resolve()
        registration = _read_registration(registration_file)
    with open(root / "signing.key", "w") as handle:
        write_signing_keys(handle, [generate_signing_key("a_test")])
    (root / "homeserver.yaml").write_text(_config(root, port, shared_secret, registration_file))
    server = SynapseServer(f"http://{HOST}:{port}", root, registration, shared_secret)
    server.start([sys.executable, "-m", "synapse.app.homeserver", "-c", str(root / "homeserver.yaml")], cwd=root)
    return server
