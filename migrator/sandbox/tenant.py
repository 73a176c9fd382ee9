"""The synthetic tenant: its directory, its identity platform, its limits, and each user's data,
generated on first access so that a 200-person department costs little until it is read."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from migrator.sandbox.auth import App, Identity
from migrator.sandbox.http import GraphError
from migrator.sandbox.limits import FaultSettings, Limiter, ThrottleSettings
from migrator.sandbox.names import DOMAIN, TENANT_ID
from migrator.sandbox.odata import DeltaTokens
from migrator.sandbox.people import build_users
from migrator.sandbox.store import Clock

T = TypeVar("T")

SANDBOX_CLIENT_ID = "8a6f1d2c-3b4e-4f5a-9b8c-7d6e5f4a3b2c"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret"


class Tenant:
    def __init__(
        self,
        seed: int = 7,
        users: int = 20,
        large_items: bool = False,
        archive_bytes: int = 0,
        throttle: ThrottleSettings | None = None,
        faults: FaultSettings | None = None,
    ) -> None:
        self.seed = seed
        self.large_items = large_items
        self.archive_bytes = archive_bytes  # the first user's mailbox grows by ~30 MB messages to about this size
        self.users: list[dict[str, Any]] = build_users(seed, users)
        self.by_id = {u["id"]: u for u in self.users}
        self._by_upn = {u["userPrincipalName"].lower(): u for u in self.users}
        self.identity = Identity(TENANT_ID, DOMAIN, default_user_id=self.users[0]["id"])
        self.identity.apps[SANDBOX_CLIENT_ID] = App(SANDBOX_CLIENT_ID, secret=SANDBOX_CLIENT_SECRET)
        self.limiter = Limiter(throttle or ThrottleSettings(enabled=False), faults)
        self.delta = DeltaTokens()
        self.replies_expand_limit = 1000  # Graph expands at most this many replies, then links to the rest
        self.clock = Clock()
        self._cache: dict[tuple, Any] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()

    def rng(self, *parts: object) -> random.Random:
        """A generator seeded by the tenant seed and a path, so each user's data is independent of
        the order in which users are first read."""
        return random.Random("/".join(map(str, (self.seed, *parts))))

    def user(self, key: str) -> dict[str, Any]:
        found = self.by_id.get(key) or self._by_upn.get(key.lower())
        if found is None:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.")
        return found

    def colleagues(self, user: dict[str, Any]) -> list[dict[str, Any]]:
        return [u for u in self.users if u["department"] == user["department"] and u["id"] != user["id"]]

    def department_members(self, department: str) -> list[dict[str, Any]]:
        return [u for u in self.users if u["department"] == department]

    def lazy(self, key: tuple, build: Callable[[], T]) -> T:
        """Builds a piece of the tenant once, on first use; concurrent first uses wait for one build."""
        if key in self._cache:
            return self._cache[key]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = build()
        return self._cache[key]

    def departments(self) -> list[str]:
        return list(dict.fromkeys(u["department"] for u in self.users))

    def cached(self, prefix: str) -> list[Any]:
        """What has been built so far of one kind ("mail", "drive", "site", ...)."""
        return [value for key, value in list(self._cache.items()) if key[0] == prefix]

    def built(self, prefix: str) -> int:
        return len(self.cached(prefix))
