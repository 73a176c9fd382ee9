"""HTTP for the DAV-speaking sinks (CalDAV/CardDAV, WebDAV, Nextcloud): one pooled client per
event loop, per-owner Basic credentials, and one mapping of server answers to item failures
(a 4xx fails the item with the server's words) and retryable ones (429, 5xx, dropped connections)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from migrator.errors import ConfigError, ItemError, TransientError
from migrator.tls import httpx_verify, untrusted

Login = Callable[[str], tuple[str, str]]


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    text: str
    headers: httpx.Headers
    content: bytes


def said(answer: Answer) -> str:
    text = " ".join(answer.text.split())[:300] if answer.text else ""
    return f"{answer.status} {answer.reason}" + (f": {text}" if text else "")


def retry_after(headers: httpx.Headers) -> float | None:
    try:
        return float(headers.get("Retry-After", ""))
    except ValueError:
        return None


@dataclass(frozen=True)
class _LoopClient:
    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient
    guard: AsyncIterator[None]


async def _close_when_loop_ends(client: httpx.AsyncClient) -> AsyncIterator[None]:
    # asyncio.run() closes every async generator before it closes the loop, so this `finally`
    # closes the client's connections even when nobody calls close().
    try:
        yield
    finally:
        await client.aclose()


class DavConnection:
    """Requests to one server on behalf of many owners, each with their own login."""

    def __init__(self, base_url: str, login: Login, ca_file: str | None = None, timeout: float = 60, connections: int = 16,
                 skip_tls_verify: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.base_path = urlsplit(self.base_url).path
        self._login = login
        self._verify = httpx_verify(ca_file, skip_tls_verify)
        self._timeout = timeout
        self._limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._state: _LoopClient | None = None
        self._auth: dict[str, tuple[str, httpx.BasicAuth]] = {}

    async def close(self) -> None:
        """Closes the connections of the running event loop (those of ended loops are gone already)."""
        state, self._state = self._state, None
        if state is not None and state.loop is asyncio.get_running_loop():
            await state.client.aclose()

    async def client(self) -> httpx.AsyncClient:
        # Pooled connections belong to the event loop that opened them; a new loop gets a new client.
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None or state.loop is not loop:
            client = httpx.AsyncClient(
                base_url=self.base_url, verify=self._verify, timeout=self._timeout, limits=self._limits,
                headers={"User-Agent": "m365-migrator"},
            )
            state = self._state = _LoopClient(loop, client, _close_when_loop_ends(client))
            await state.guard.__anext__()
        return state.client

    def account(self, owner: str) -> tuple[str, httpx.BasicAuth]:
        if owner not in self._auth:
            user, password = self._login(owner)
            self._auth[owner] = (user, httpx.BasicAuth(user, password))
        return self._auth[owner]

    def href(self, url_path: str) -> str:
        """The server's absolute path for a path below the base URL (what dest_id records)."""
        return self.base_path + url_path

    def relative(self, href: str) -> str:
        path = urlsplit(href).path
        if self.base_path and path.startswith(self.base_path + "/"):
            return path[len(self.base_path):]
        return path

    def _failure(self, method: str, url_path: str, exc: httpx.TransportError) -> Exception:
        """A dropped or refused connection may pass; a certificate nobody trusts will not."""
        return untrusted(exc, self.base_url) or TransientError(f"{method} {url_path}: {type(exc).__name__}: {exc}")

    def _checked(self, owner: str | None, method: str, url_path: str, answer: Answer, refusal_fails: bool = True) -> Answer:
        if answer.status == 429 or answer.status >= 500 and answer.status != 507:
            raise TransientError(f"{method} {url_path}: {said(answer)}", retry_after=retry_after(answer.headers))
        if answer.status in (401, 403) and method != "MKCOL" and refusal_fails:
            who = self.account(owner)[0] if owner is not None else "an anonymous client"
            raise ItemError(f"{method} {url_path} refused for {who}: {said(answer)}")
        return answer

    async def request(self, owner: str | None, method: str, url_path: str, refusal_fails: bool = True, **kwargs) -> Answer:
        """One request, its whole answer read; `owner` None sends no credentials. A 401/403 fails
        the item unless `refusal_fails` is false (APIs that answer "not allowed" for one detail)."""
        auth = self.account(owner)[1] if owner is not None else None
        try:
            response = await (await self.client()).request(method, url_path, auth=auth, **kwargs)
        except httpx.TransportError as exc:
            raise self._failure(method, url_path, exc) from None
        answer = Answer(response.status_code, response.reason_phrase, response.text, response.headers, response.content)
        return self._checked(owner, method, url_path, answer, refusal_fails)

    @contextlib.asynccontextmanager
    async def stream(self, owner: str, method: str, url_path: str, **kwargs) -> AsyncIterator[httpx.Response]:
        """A response whose body is read by the caller piece by piece; errors as for request()."""
        _, auth = self.account(owner)
        try:
            async with (await self.client()).stream(method, url_path, auth=auth, **kwargs) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._checked(owner, method, url_path, Answer(response.status_code, response.reason_phrase, response.text, response.headers, response.content))
                yield response
        except httpx.TransportError as exc:
            raise self._failure(method, url_path, exc) from None


async def probe_home(http: DavConnection, owner: str, url_path: str, body: bytes, server: str) -> str:
    """Preflight of a DAV target: the owner's home answers a PROPFIND as that owner."""
    answer = await http.request(owner, "PROPFIND", url_path, refusal_fails=False, content=body,
                                headers={"Content-Type": "application/xml; charset=utf-8", "Depth": "0"})
    user = http.account(owner)[0]
    if answer.status in (401, 403):
        raise ConfigError(f"the {server} server refused {user} ({answer.status})", hint="check the password or user_passwords of the target")
    if answer.status != 207:
        raise ConfigError(f"no {server} home at {url_path} for {user}: {said(answer)}", hint="check the target's url and home")
    return f"home {url_path} of {user} found"
