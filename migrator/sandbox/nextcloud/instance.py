"""One Nextcloud instance as the handlers see it: its accounts and groups, its settings, its
storage, and the test hook that cuts the next upload."""

from __future__ import annotations

import hmac
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.sandbox.nextcloud.http import ConnectionCut, Request
from migrator.sandbox.nextcloud.names import NamePolicy
from migrator.sandbox.nextcloud.namespace import Namespace
from migrator.sandbox.nextcloud.store import Store

VERSION = (31, 0, 4, 1)
MIN_CHUNK_SIZE = 5 * 1024 * 1024  # chunked upload v2: every chunk but the last at least 5 MB
SOCKET_KEY = "nextcloud.socket"  # where the server puts the connection's socket in the WSGI environ
CLOSE_KEY = "nextcloud.close_connection"  # and a callable that ends the connection after the answer


@dataclass
class Settings:
    users: dict[str, str]
    admin: tuple[str, str] = ("admin", "admin")
    groups: dict[str, list[str]] = field(default_factory=dict)
    public_links: bool = True
    group_sharing: bool = True
    quota: int | None = None  # bytes per user, None for unlimited
    min_chunk_size: int = MIN_CHUNK_SIZE
    max_chunk_size: int = 100 * 1024 * 1024  # announced as files.chunked_upload.max_size
    names: NamePolicy = field(default_factory=NamePolicy)
    capabilities: dict[str, Any] = field(default_factory=dict)  # merged over the defaults
    propfind_infinity: bool = False  # Depth: infinity on PROPFIND is refused unless allowed


class Instance:
    def __init__(self, root: Path, settings: Settings) -> None:
        self.settings = settings
        self.accounts = {**settings.users, settings.admin[0]: settings.admin[1]}
        groups = {name: list(members) for name, members in settings.groups.items()}
        groups.setdefault("admin", [])
        if settings.admin[0] not in groups["admin"]:
            groups["admin"].append(settings.admin[0])
        self.groups = groups
        self.store = Store(root)
        self.namespace = Namespace(self.store, groups, settings.quota)
        self._cut_lock = threading.Lock()
        self._cut_after: int | None = None

    @property
    def names(self) -> NamePolicy:
        return self.settings.names

    def is_admin(self, user: str) -> bool:
        return user in self.groups["admin"]

    def authenticate(self, credentials: tuple[str, str] | None) -> str | None:
        if credentials is None:
            return None
        user, password = credentials
        expected = self.accounts.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return user

    # -- the cut hook -----------------------------------------------------------------------

    def cut_next_upload(self, after_bytes: int) -> None:
        with self._cut_lock:
            self._cut_after = after_bytes

    def upload_pieces(self, request: Request) -> Iterator[bytes]:
        """The body of an upload; when a cut is armed, it ends after that many bytes with
        ConnectionCut, and the server then drops the connection without an answer."""
        with self._cut_lock:
            cut_after, self._cut_after = self._cut_after, None
        received = 0
        for piece in request.pieces():
            if cut_after is not None and received + len(piece) >= cut_after:
                yield piece[: cut_after - received]
                raise ConnectionCut()
            received += len(piece)
            yield piece


def drop_connection(environ: dict[str, Any]) -> None:
    """Shuts the connection's socket down, as a failing network would; called once the upload's
    temporary file is gone, so what a client sees next is already clean."""
    connection: socket.socket | None = environ.get(SOCKET_KEY)
    if connection is not None:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
