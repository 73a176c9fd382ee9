from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors.graph.auth import Credentials, TokenProvider
from connectors.graph.session import GraphSession
from connectors.graph.transport import Politeness
from migrator.sandbox.app import Sandbox
from migrator.sandbox.tenant import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Tenant
from migrator.sandbox.tls import ensure_tls


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return ensure_tls(tmp_path_factory.mktemp("graph-tls"))


@pytest.fixture
def sandbox(tls_files):
    """A fresh tenant per test, so tests may mutate it, throttle it or break it."""
    with Sandbox(Tenant(seed=5, users=4), tls_files) as running:
        yield running


def credentials(sandbox: Sandbox, secret: str = SANDBOX_CLIENT_SECRET, cache: Path | None = None, **overrides) -> Credentials:
    values = {"tenant_id": sandbox.tenant.identity.tenant_id, "client_id": SANDBOX_CLIENT_ID, "client_secret": secret,
                  "authority_host": sandbox.base, "ca_bundle": sandbox.ca_file, "token_cache": cache}
    values.update(overrides)
    return Credentials(**values)


def session_for(sandbox: Sandbox, politeness: Politeness | None = None, **overrides) -> GraphSession:
    return GraphSession(TokenProvider(credentials(sandbox, **overrides)), sandbox.url, ca_bundle=sandbox.ca_file,
                        politeness=politeness or Politeness(backoff_base=0.01, backoff_cap=0.05))


def run(coro):
    return asyncio.run(coro)


async def collect(iterator) -> list:
    return [entry async for entry in iterator]
