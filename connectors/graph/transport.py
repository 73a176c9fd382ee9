"""A polite transport under every Graph request, the SDK's included: it adds the bearer token (and
renews it once after a 401), keeps at most N requests in flight per mailbox, and retries throttled
(429), unavailable (503/504) and dropped requests, waiting as long as Retry-After asks even beyond
the SDK retry handler's 180 s cap."""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from migrator.tls import untrusted

RETRY_STATUSES = (429, 503, 504)
_MAILBOX = re.compile(r"/users/([^/?]+)")
# GET of chat and channel messages (listings, replies, hosted contents): Graph's protected Teams reads.
_TEAMS_MESSAGES = re.compile(r"/(?:chats/[^/]+|teams/[^/]+/channels/[^/]+)/messages(?:/|$)")
# Requests leave a little slower than the published rate: the server counts arrivals, and two requests sent
# 50 ms apart can arrive closer together; one 429 costs a whole second of Retry-After.
_PACE_MARGIN = 0.95


@dataclass
class Politeness:
    per_mailbox: int = 4  # Outlook serves at most 4 concurrent requests per app and mailbox
    attempts: int = 8
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_wait: float = 900.0  # the longest Retry-After obeyed before giving up on a request
    teams_reads_per_second: float = 20.0  # Teams message reads: per app per tenant, so shared by every worker
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


class _Released(httpx.AsyncByteStream):
    """Holds the mailbox slot until the body is read or closed, so a stream counts as in flight."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner, self._release, self._done = inner, release, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._done:
                self._done = True
                self._release()


class Pacer:
    """Spaces requests evenly at a rate, so a tenant-wide limit is met without drawing 429s."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / (per_second * _PACE_MARGIN) if per_second > 0 else 0.0
        self.clock = clock
        self._next = 0.0

    async def wait(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        if not self.interval:
            return
        now = self.clock()
        slot = max(now, self._next)
        self._next = slot + self.interval  # taken before sleeping: callers queue up in arrival order
        if slot > now:
            await sleep(slot - now)


class GraphTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, graph_url: str, token: Callable[[bool], Awaitable[str]],
                 politeness: Politeness | None = None) -> None:
        self.inner, self.graph_url, self.token = inner, graph_url.rstrip("/"), token
        self.politeness = politeness or Politeness()
        self._mailboxes: dict[str, asyncio.Semaphore] = {}
        self.teams_pacer = Pacer(self.politeness.teams_reads_per_second)
        self.retries: dict[str, int] = {"throttled": 0, "unavailable": 0, "dropped": 0, "unauthorized": 0}
        self.waited: list[float] = []

    def _slot(self, request: httpx.Request) -> asyncio.Semaphore | None:
        if not str(request.url).startswith(self.graph_url):
            return None
        found = _MAILBOX.search(request.url.path)
        if not found:
            return None
        key = found.group(1).lower()
        return self._mailboxes.setdefault(key, asyncio.Semaphore(self.politeness.per_mailbox))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        slot = self._slot(request)
        if slot is not None:
            await slot.acquire()
        try:
            response = await self._send_with_retries(request)
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        if slot is not None:
            response.stream = _Released(response.stream, slot.release)
        return response

    async def _send_with_retries(self, request: httpx.Request) -> httpx.Response:
        polite = self.politeness
        authenticated = str(request.url).startswith(self.graph_url)
        refreshed = False
        if authenticated:
            request.headers["Authorization"] = f"Bearer {await self.token(False)}"
        paced = authenticated and request.method == "GET" and bool(_TEAMS_MESSAGES.search(request.url.path))
        for attempt in range(1, polite.attempts + 1):
            if paced:
                await self.teams_pacer.wait(polite.sleep)
            try:
                response = await self.inner.handle_async_request(request)
            except (httpx.TransportError, OSError) as exc:
                refused = untrusted(exc, f"{request.url.scheme}://{request.url.netloc.decode()}")
                if refused is not None:
                    raise refused from None  # no retry makes an untrusted certificate trusted
                if attempt == polite.attempts:
                    raise
                self.retries["dropped"] += 1
                await self._wait(attempt, None)
                continue
            if response.status_code == 401 and authenticated and not refreshed:
                await response.aclose()
                self.retries["unauthorized"] += 1
                refreshed = True
                request.headers["Authorization"] = f"Bearer {await self.token(True)}"
                continue
            if response.status_code in RETRY_STATUSES and attempt < polite.attempts:
                asked = retry_after(response)
                if asked is not None and asked > polite.max_wait:
                    return response
                await response.aclose()
                self.retries["throttled" if response.status_code == 429 else "unavailable"] += 1
                await self._wait(attempt, asked)
                continue
            return response
        return response

    async def _wait(self, attempt: int, asked: float | None) -> None:
        polite = self.politeness
        delay = polite.rng.uniform(0, min(polite.backoff_cap, polite.backoff_base * 2 ** (attempt - 1)))
        if asked is not None:
            delay = max(delay, asked)
        self.waited.append(delay)
        await polite.sleep(delay)

    async def aclose(self) -> None:
        await self.inner.aclose()
