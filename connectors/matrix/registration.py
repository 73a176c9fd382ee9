"""The application service registration a homeserver needs before the chat sink may write.

The service claims, exclusively, the user ids of imported senders and the aliases of imported rooms, so no
person can register as a ghost or squat a room's alias, and it is not rate limited (Synapse's default for
ordinary senders, 0.2 messages a second, would stretch a migration over weeks). No URL: the homeserver never
pushes events to the migrator.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

SERVICE_ID = "m365-migrator"


@dataclass(frozen=True)
class Registration:
    server_name: str
    as_token: str
    hs_token: str
    sender_localpart: str = SERVICE_ID
    ghost_prefix: str = "teams_"
    room_prefix: str = "teams_"

    def yaml(self) -> str:
        """The registration file; every scalar is written as a JSON string, which YAML reads as it is."""
        def q(value: str) -> str:
            return json.dumps(value)

        server = re.escape(self.server_name)
        return (
            f"# Application service registration of the Microsoft 365 migrator.\n"
            f"id: {q(SERVICE_ID)}\n"
            f"url: null\n"
            f"as_token: {q(self.as_token)}\n"
            f"hs_token: {q(self.hs_token)}\n"
            f"sender_localpart: {q(self.sender_localpart)}\n"
            f"rate_limited: false\n"
            f"namespaces:\n"
            f"  users:\n"
            f"    - exclusive: true\n"
            f"      regex: {q('@' + re.escape(self.ghost_prefix) + '.*:' + server)}\n"
            f"  aliases:\n"
            f"    - exclusive: true\n"
            f"      regex: {q('#' + re.escape(self.room_prefix) + '.*:' + server)}\n"
            f"  rooms: []\n"
        )


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_file(path: Path) -> str:
    """The token kept in `path`, written there first (readable by its owner only) when the file does not exist."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = new_token()
    with path.open("x") as handle:
        path.chmod(0o600)
        handle.write(token + "\n")
    return token


def write_registration(registration: Registration, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.touch(mode=0o600, exist_ok=True)  # it holds both tokens
    output.chmod(0o600)
    output.write_text(registration.yaml())
