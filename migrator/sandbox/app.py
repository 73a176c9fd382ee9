"""Request dispatch: identity endpoints, then Graph's v1.0 API behind authentication, injected
faults and throttling, with every failure answered in Graph's error format."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from migrator.sandbox import api_batch, api_users
from migrator.sandbox.auth import AuthEndpoints
from migrator.sandbox.http import (
    GraphError,
    Request,
    Response,
    Router,
    SandboxHTTPServer,
    ServerThread,
    error_body,
)
from migrator.sandbox.tenant import Tenant
from migrator.sandbox.tls import TlsFiles

GRAPH_PREFIX = "/v1.0"


@dataclass(frozen=True)
class Route:
    """How a Graph route is guarded: which mailbox it counts against, whether it reads Teams messages."""

    mailbox: bool = True
    teams_messages: bool = False
    public: bool = False  # pre-authenticated download URLs need no token


class GraphApp:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.auth_router = Router()
        self.graph_router = Router()
        self._guards: dict[int, Route] = {}
        auth = AuthEndpoints(tenant.identity, tenant.by_id)
        self.auth_router.add("GET", "/{tenant}/v2.0/.well-known/openid-configuration", auth.openid_configuration)
        self.auth_router.add("GET", "/common/discovery/instance", auth.instance_discovery)
        self.auth_router.add("POST", "/{tenant}/oauth2/v2.0/token", auth.token)
        self.auth_router.add("POST", "/{tenant}/oauth2/v2.0/devicecode", auth.devicecode)
        for module in _api_modules():
            module.register(self, tenant)
        api_batch.register(self, tenant)

    def route(self, method: str, pattern: str, handler: Callable[[Request], Response], prefix: str = GRAPH_PREFIX, **guard: bool) -> None:
        self.graph_router.add(method, prefix + pattern, handler)
        self._guards[id(handler)] = Route(**guard)

    def __call__(self, request: Request) -> Response:
        try:
            if request.path.startswith(GRAPH_PREFIX + "/") or request.path.startswith("/download/"):
                return self.graph(request)
            handler, params = self.auth_router.match(request.method, request.path)
            request.params = params
            return handler(request)
        except GraphError as exc:
            return Response.json(error_body(exc.code, exc.message, request.header("client-request-id")), exc.status, exc.headers)

    def graph(self, request: Request, batched: bool = False) -> Response:
        """One Graph request; `$batch` calls this for each of its parts, with the principal already set."""
        handler, params = self.graph_router.match(request.method, request.path)
        request.params = params
        guard = self._guards[id(handler)]
        if guard.public:  # download URLs and $batch authenticate themselves, but fail like the rest
            self.tenant.limiter.maybe_fail()
            return handler(request)
        if not batched:
            request.principal = self.tenant.identity.authenticate(request)
        limiter = self.tenant.limiter
        limiter.maybe_fail()
        if guard.teams_messages:
            limiter.teams_message_read(request.principal.app.client_id)
        mailbox = params.get("user") if guard.mailbox else None
        if mailbox is None:
            return handler(request)
        with limiter.mailbox(request.principal.app.client_id, self.tenant.user(mailbox)["id"]):
            return handler(request)


def _api_modules():
    from migrator.sandbox import (
        api_calendar,
        api_contacts,
        api_drive,
        api_mail,
        api_teams,
    )

    return [api_users, api_mail, api_calendar, api_contacts, api_drive, api_teams]


class Sandbox:
    """A running sandbox: `url` is the Graph base URL, `authority` the msal authority, `ca_file` what clients trust."""

    def __init__(self, tenant: Tenant, tls: TlsFiles, host: str = "127.0.0.1", port: int = 0) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.server_cert, tls.server_key)
        self.tenant, self.tls = tenant, tls
        self.app = GraphApp(tenant)
        self._thread = ServerThread(SandboxHTTPServer((host, port), self.app, context))
        bound_port = self._thread.server.server_address[1]
        self.base = f"https://{host}:{bound_port}"

    @property
    def url(self) -> str:
        return f"{self.base}/v1.0"

    @property
    def authority(self) -> str:
        return f"{self.base}/{self.tenant.identity.tenant_id}"

    @property
    def ca_file(self) -> str:
        return str(self.tls.ca_cert)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly the sandbox's CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def start(self) -> Sandbox:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
