"""The stand-in served by cheroot's thread-pooled WSGI server, which hands request bodies over as
a stream (so uploads never sit in memory), optionally over TLS with the sandbox's own CA."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Self

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from migrator.sandbox.nextcloud.app import NextcloudApp
from migrator.sandbox.nextcloud.instance import (
    CLOSE_KEY,
    MIN_CHUNK_SIZE,
    SOCKET_KEY,
    Instance,
    Settings,
)
from migrator.sandbox.nextcloud.names import NamePolicy
from migrator.sandbox.tls import TlsFiles, ensure_tls


class _Gateway(wsgi.Gateway_10):
    """Adds the connection's socket (for the cut hook) and a way to close it to the environ."""

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        request = self.req
        environ[SOCKET_KEY] = request.conn.socket
        environ[CLOSE_KEY] = lambda: setattr(request, "close_connection", True)
        return environ


class NextcloudServer:
    """A Nextcloud stand-in on loopback: `start()` it (or use `with`), talk to `url`, `stop()` it.

    `users` maps login to app password; `admin` is an extra account in the `admin` group (it alone
    manages group folders); `groups` maps group to members. `quota` is per user in bytes.
    `min_chunk_size` is v2 chunking's minimum for every chunk but the last (5 MB in Nextcloud).
    `forbidden` overrides the forbidden-name lists (keys filenames, basenames, characters,
    extensions); `capabilities` is merged over the announced capabilities; `propfind_infinity`
    allows PROPFIND with Depth: infinity (refused with 403 otherwise)."""

    def __init__(self, root: Path, users: dict[str, str], admin: tuple[str, str] = ("admin", "admin"),
                 groups: dict[str, list[str]] | None = None, public_links: bool = True, quota: int | None = None,
                 min_chunk_size: int = MIN_CHUNK_SIZE, forbidden: dict[str, list[str]] | None = None,
                 capabilities: dict[str, Any] | None = None, group_sharing: bool = True, propfind_infinity: bool = False,
                 host: str = "127.0.0.1", port: int = 0, tls_dir: Path | None = None, threads: int = 10) -> None:
        settings = Settings(users=dict(users), admin=admin, groups=dict(groups or {}), public_links=public_links,
                            group_sharing=group_sharing, quota=quota, min_chunk_size=min_chunk_size,
                            names=NamePolicy(**(forbidden or {})), capabilities=dict(capabilities or {}),
                            propfind_infinity=propfind_infinity)
        self.instance = Instance(Path(root), settings)
        self.app = NextcloudApp(self.instance)
        self.tls: TlsFiles | None = ensure_tls(Path(tls_dir)) if tls_dir is not None else None
        self._server = wsgi.Server((host, port), self.app, numthreads=threads, timeout=30, shutdown_timeout=2)
        self._server.gateway = _Gateway
        self._server.expiration_interval = 0.05  # how long stop() waits for the accept loop to notice
        if self.tls is not None:
            self._server.ssl_adapter = BuiltinSSLAdapter(str(self.tls.server_cert), str(self.tls.server_key))
        self._thread: threading.Thread | None = None
        self.host = host

    @property
    def port(self) -> int:
        return self._server.bind_addr[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def ca_file(self) -> str | None:
        return str(self.tls.ca_cert) if self.tls else None

    def cut_next_upload(self, after_bytes: int) -> None:
        """Test hook: the next PUT (plain or chunk) drops its connection after `after_bytes` body bytes."""
        self.instance.cut_next_upload(after_bytes)

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self._server.prepare()  # binds, so `port` is known when this returns
        self._thread = threading.Thread(target=self._server.serve, name="nextcloud-standin", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.prepare()
        self._server.serve()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.stop()
            self._thread.join(timeout=10)
            self._thread = None
        self.instance.store.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
