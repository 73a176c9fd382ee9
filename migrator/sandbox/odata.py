"""OData conventions Graph follows: $select, $top/$skip paging with @odata.nextLink, and delta
links whose tokens remember a version of the tenant (and answer 410 once they have expired)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from migrator.sandbox.http import GraphError, Request, Response
from migrator.sandbox.store import Collection

MAX_PAGE = 999
FULL_LISTING = -1  # a delta without a token lists everything that exists


def select(entity: dict[str, Any], request: Request, default: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Applies $select; without it, `default` names the properties Graph returns by default."""
    fields = request.query.get("$select")
    wanted = [f.strip() for f in fields.split(",")] if fields else (list(default) if default else None)
    if wanted is None:
        return entity
    return {k: v for k, v in entity.items() if k in wanted or k == "id" or k.startswith("@")}


def page_size(request: Request, default: int, maximum: int = MAX_PAGE) -> int:
    """$top wins; otherwise Prefer: odata.maxpagesize; otherwise the endpoint's default."""
    if "$top" in request.query:
        try:
            top = int(request.query["$top"])
        except ValueError:
            raise GraphError(400, "BadRequest", f"Invalid $top value '{request.query['$top']}'.") from None
        if top < 1 or top > maximum:
            raise GraphError(400, "BadRequest", f"Invalid page size specified: '{top}'. Must be between 1 and {maximum} inclusive.")
        return top
    found = re.search(r"odata\.maxpagesize=(\d+)", request.header("prefer"))
    return min(int(found.group(1)), maximum) if found else default


def entity(request: Request, context: str, body: dict[str, Any]) -> Response:
    """One resource, with the @odata.context Graph puts on single-entity answers."""
    return Response.json({"@odata.context": f"{request.base_url}/v1.0/$metadata#{context}", **body})


def removed(kind: str) -> Callable[[str], dict[str, Any]]:
    """How a delta names an entity that no longer exists (drive items use the `deleted` facet instead)."""
    return lambda entity_id: {"@odata.type": f"#microsoft.graph.{kind}", "id": entity_id, "@removed": {"reason": "deleted"}}


def user_context(request: Request, tail: str) -> str:
    return f"users('{request.params['user']}')/{tail}"


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any] | None:
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        return None


def collection(request: Request, entities: list[dict[str, Any]], context: str, default_page: int, maximum: int = MAX_PAGE,
               shape: Callable[[dict], dict] = lambda e: e) -> Response:
    """A paged list: `value` plus @odata.nextLink while more remain."""
    size = page_size(request, default_page, maximum)
    try:
        skip = int(request.query.get("$skip", "0"))
    except ValueError:
        raise GraphError(400, "BadRequest", "Invalid $skip value.") from None
    page = entities[skip : skip + size]
    body: dict[str, Any] = {"@odata.context": f"{request.base_url}/v1.0/$metadata#{context}", "value": [shape(e) for e in page]}
    if skip + size < len(entities):
        query = {k: v for k, v in request.query.items() if k != "$skip"}
        query["$skip"] = str(skip + size)
        body["@odata.nextLink"] = f"{request.base_url}{request.path}?{urlencode(query)}"
    return Response.json(body)


class DeltaTokens:
    """Tokens carry (collection key, since, until, offset); an epoch bump expires every token issued before."""

    def __init__(self) -> None:
        self.epoch = 0

    def expire_all(self) -> None:
        self.epoch += 1

    def latest(self, key: str, store: Collection) -> str:
        """A token meaning "from now on", for `token=latest` requests."""
        return _encode({"k": key, "s": store.clock.now, "u": store.clock.now, "o": 0, "n": MAX_PAGE, "e": self.epoch})

    def respond(
        self, request: Request, key: str, store: Collection, context: str, default_page: int,
        shape: Callable[[dict], dict], removed: Callable[[str], dict], extra_query: dict[str, str] | None = None,
    ) -> Response:
        skip_token, delta_token = request.query.get("$skiptoken"), request.query.get("$deltatoken")
        if skip_token or delta_token:
            state = _decode(skip_token or delta_token or "")
            if state is None or state.get("k") != key or state.get("e") != self.epoch:
                raise GraphError(410, "SyncStateNotFound", "The sync state generation is not found. Please start a new sync from scratch.")
            size = state["n"] if skip_token else page_size(request, default_page)
            since, until, offset = (state["s"], state["u"], state["o"]) if skip_token else (state["u"], store.clock.now, 0)
        else:
            size, since, until, offset = page_size(request, default_page), FULL_LISTING, store.clock.now, 0
        changes = store.changes(since, until)
        page = changes[offset : offset + size]
        value = [shape(c.entity) if c.entity is not None else removed(c.id) for c in page]
        body: dict[str, Any] = {"@odata.context": f"{request.base_url}/v1.0/$metadata#{context}", "value": value}
        base_query = dict(extra_query or {})
        if offset + size < len(changes):
            token = _encode({"k": key, "s": since, "u": until, "o": offset + size, "n": size, "e": self.epoch})
            body["@odata.nextLink"] = f"{request.base_url}{request.path}?{urlencode({**base_query, '$skiptoken': token})}"
        else:
            token = _encode({"k": key, "s": since, "u": until, "o": 0, "n": size, "e": self.epoch})
            body["@odata.deltaLink"] = f"{request.base_url}{request.path}?{urlencode({**base_query, '$deltatoken': token})}"
        return Response.json(body)
