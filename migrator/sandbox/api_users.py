"""/users: the directory, with $filter on department (and a few other properties), $select and paging."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from migrator.sandbox.auth import require
from migrator.sandbox.http import GraphError, Request, Response
from migrator.sandbox.odata import collection, entity, select
from migrator.sandbox.people import USER_DEFAULT_SELECT

if TYPE_CHECKING:
    from migrator.sandbox.app import GraphApp
    from migrator.sandbox.tenant import Tenant

_FILTER = re.compile(r"^\s*(department|userPrincipalName|mail|displayName|jobTitle)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)


def _filtered(users: list[dict], expression: str | None) -> list[dict]:
    if not expression:
        return users
    found = _FILTER.match(expression)
    if found is None:
        raise GraphError(400, "Request_UnsupportedQuery", f"Unsupported or invalid query filter clause specified: '{expression}'.")
    prop, value = found.group(1), found.group(2).replace("''", "'")
    key = next(k for k in users[0] if k.lower() == prop.lower()) if users else prop
    return [u for u in users if str(u.get(key) or "").lower() == value.lower()]


def register(app: GraphApp, tenant: Tenant) -> None:
    def list_users(request: Request) -> Response:
        require(request.principal, "User.Read.All", "Directory.Read.All")
        users = _filtered(tenant.users, request.query.get("$filter"))
        return collection(request, users, "users", 100, shape=lambda u: select(u, request, USER_DEFAULT_SELECT))

    def get_user(request: Request) -> Response:
        require(request.principal, "User.Read.All", "Directory.Read.All")
        user = tenant.user(request.params["user"])
        body = select(user, request, USER_DEFAULT_SELECT)
        return entity(request, "users/$entity", body)

    app.route("GET", "/users", list_users, mailbox=False)
    app.route("GET", "/users/{user}", get_user)
