"""One Graph session per run: msgraph-sdk's client for typed reads and raw JSON/stream helpers for
what the SDK serves poorly (delta links, `$value` streams, `$batch`), all over one httpx client
whose transport is polite (see transport.py)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from kiota_abstractions.authentication.anonymous_authentication_provider import (
    AnonymousAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient

from connectors.graph.auth import TokenProvider
from connectors.graph.transport import GraphTransport, Politeness
from migrator import __version__
from migrator.errors import CursorExpired, ItemError, MigratorError, TransientError
from migrator.model import Change, Cursor, ItemRef, Removed
from migrator.tls import httpx_verify

USER_AGENT = f"migrator/{__version__} (M365 to open-source migration)"
BATCH_LIMIT = 20


class GraphApiError(Exception):
    """A Graph answer other than success, after the transport's retries."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class PermissionMissing(MigratorError):
    exit_code = 2


def error_from(response: httpx.Response, body: bytes | None = None) -> GraphApiError:
    try:
        error = json.loads(body if body is not None else response.content).get("error", {})
        code, message = error.get("code", ""), error.get("message", "")
    except (ValueError, AttributeError, httpx.ResponseNotRead):
        code, message = "", ""
    return GraphApiError(response.status_code, code or response.reason_phrase, message or response.reason_phrase)


def item_failure(error: GraphApiError) -> Exception:
    """How a failed read of one item is reported: transient ones may be retried by the engine."""
    if error.status in (429, 503, 504) or error.status >= 500:
        return TransientError(str(error))
    return ItemError(str(error))


class GraphSession:
    def __init__(self, tokens: TokenProvider, graph_url: str = "https://graph.microsoft.com/v1.0", ca_bundle: str | None = None,
                 politeness: Politeness | None = None, timeout: float = 120.0, skip_tls_verify: bool = False) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.tokens = tokens
        # The one transport also fetches the pre-authenticated download URLs Graph redirects to.
        verify = httpx_verify(ca_bundle, skip_tls_verify)

        async def token(force: bool) -> str:
            return await tokens.atoken(force)

        self.transport = GraphTransport(httpx.AsyncHTTPTransport(verify=verify, retries=0), self.graph_url, token, politeness)
        self.http = httpx.AsyncClient(
            transport=self.transport, base_url=self.graph_url + "/", headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, connect=30.0), follow_redirects=False,
        )
        adapter = GraphRequestAdapter(AnonymousAuthenticationProvider(), client=self.http)
        adapter.base_url = self.graph_url
        self.sdk = GraphServiceClient(request_adapter=adapter)

    def url(self, path_or_url: str) -> str:
        return path_or_url if path_or_url.startswith("http") else f"{self.graph_url}/{path_or_url.lstrip('/')}"

    async def get_json(self, path_or_url: str, params: dict | None = None, headers: dict | None = None) -> dict[str, Any]:
        response = await self.http.get(self.url(path_or_url), params=params, headers=headers)
        if response.status_code != 200:
            raise error_from(response)
        return response.json()

    async def pages(self, path_or_url: str, params: dict | None = None, headers: dict | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every page of a collection, following @odata.nextLink; the last one may carry a deltaLink."""
        url: str | None = self.url(path_or_url)
        while url:
            page = await self.get_json(url, params, headers)
            yield page
            url, params = page.get("@odata.nextLink"), None

    async def delta(self, url: str, kind: str, name_field: str, what: str, page_size: int = 100) -> AsyncIterator[Change]:
        """An Outlook delta listing as changes: ItemRefs keyed by changeKey, Removed for @removed,
        then the whole deltaLink as the Cursor; 410 means the token expired (CursorExpired)."""
        try:
            async for page in self.pages(url, headers={"Prefer": f"odata.maxpagesize={page_size}"}):
                for entry in page.get("value", []):
                    if "@removed" in entry:
                        yield Removed(entry["id"])
                    else:
                        yield ItemRef(entry["id"], entry.get("changeKey", ""), kind, entry.get(name_field) or "")
                if "@odata.deltaLink" in page:
                    yield Cursor(page["@odata.deltaLink"])
        except GraphApiError as exc:
            if exc.status == 410:
                raise CursorExpired(f"the delta token of {what} has expired") from None
            raise

    async def items(self, path_or_url: str, params: dict | None = None, headers: dict | None = None) -> AsyncIterator[dict[str, Any]]:
        async for page in self.pages(path_or_url, params, headers):
            for entry in page.get("value", []):
                yield entry

    @contextlib.asynccontextmanager
    async def stream(self, url: str, headers: dict | None = None) -> AsyncIterator[httpx.Response]:
        """A streamed GET; a Graph URL gets the token, a pre-authenticated download URL does not."""
        async with self.http.stream("GET", self.url(url), headers=headers) as response:
            if response.status_code not in (200, 206):
                body = await response.aread()
                raise error_from(response, body)
            yield response

    async def redirect_location(self, path: str) -> str:
        """Where a /content request redirects: Graph answers 302 to a short-lived download URL."""
        response = await self.http.get(self.url(path))
        if response.status_code in (301, 302, 303, 307, 308):
            return response.headers["location"]
        raise error_from(response)

    async def batch(self, requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Runs GET requests in $batch calls of at most 20; answers by request id."""
        answers: dict[str, dict[str, Any]] = {}
        for start in range(0, len(requests), BATCH_LIMIT):
            chunk = requests[start : start + BATCH_LIMIT]
            response = await self.http.post(self.url("$batch"), json={"requests": chunk})
            if response.status_code != 200:
                raise error_from(response)
            for answer in response.json()["responses"]:
                answers[str(answer["id"])] = answer
        return answers

    async def close(self) -> None:
        await self.http.aclose()
