"""$batch: up to 20 requests in one POST, answered in one JSON body; `dependsOn` runs in order.
Each part passes the same guards (throttling, faults) as if it had been sent alone."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from migrator.sandbox.http import (
    DropConnection,
    GraphError,
    Request,
    Response,
    error_body,
    parse_request_target,
)

if TYPE_CHECKING:
    from migrator.sandbox.app import GraphApp
    from migrator.sandbox.tenant import Tenant

MAX_REQUESTS = 20


def register(app: GraphApp, tenant: Tenant) -> None:
    def batch(request: Request) -> Response:
        principal = tenant.identity.authenticate(request)
        parts = request.json().get("requests")
        if not isinstance(parts, list) or not parts:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(parts) > MAX_REQUESTS:
            raise GraphError(400, "BadRequest", f"Invalid batch payload: the number of requests exceeds the limit of {MAX_REQUESTS}.")
        ids = [str(p.get("id")) for p in parts]
        if len(set(ids)) != len(ids):
            raise GraphError(400, "BadRequest", "Batch request ids must be unique.")
        responses, status_of = [], {}
        for part in parts:
            failed_dependency = [d for d in part.get("dependsOn", []) if status_of.get(str(d), 424) >= 400]
            if failed_dependency:
                result = Response.json(error_body("FailedDependency", "A dependent request failed."), 424)
            else:
                result = _one(app, request, principal, part)
            status_of[str(part.get("id"))] = result.status
            responses.append(_encode(str(part.get("id")), result))
        return Response.json({"responses": responses})

    app.route("POST", "/$batch", batch, public=True)


def _one(app: GraphApp, outer: Request, principal, part: dict) -> Response:
    url = str(part.get("url", ""))
    if urlsplit(url).scheme:
        raise GraphError(400, "BadRequest", "Batch request URLs must be relative, e.g. /me or /users/{id}.")
    path, query = parse_request_target("/v1.0/" + url.lstrip("/"))
    body = part.get("body")
    inner = Request(
        str(part.get("method", "GET")).upper(), path, query, {k.lower(): v for k, v in (part.get("headers") or {}).items()},
        json.dumps(body).encode() if body is not None else b"", outer.base_url, principal=principal,
    )
    try:
        return app.graph(inner, batched=True)
    except GraphError as exc:
        return Response.json(error_body(exc.code, exc.message), exc.status, exc.headers)
    except DropConnection:
        return Response.json(error_body("serviceNotAvailable", "The service is temporarily unavailable."), 503, {"Retry-After": "1"})


def _encode(part_id: str, response: Response) -> dict:
    raw = response.body if isinstance(response.body, bytes) else b"".join(response.body)
    headers = dict(response.headers)
    content_type = headers.get("Content-Type", "")
    if content_type.startswith("application/json"):
        body = json.loads(raw) if raw else None
    else:
        body = base64.b64encode(raw).decode() if raw else None
    return {"id": part_id, "status": response.status, "headers": headers, "body": body}
