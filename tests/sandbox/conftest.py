from __future__ import annotations

import httpx
import pytest

from migrator.sandbox.app import Sandbox
from migrator.sandbox.tenant import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Tenant
from migrator.sandbox.tls import ensure_tls


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return ensure_tls(tmp_path_factory.mktemp("sandbox-tls"))


@pytest.fixture(scope="session")
def sandbox(tls_files):
    """One shared, read-only tenant: tests that mutate data or limits use `fresh_sandbox`."""
    with Sandbox(Tenant(seed=7, users=20), tls_files) as running:
        yield running


@pytest.fixture
def fresh_sandbox(tls_files):
    with Sandbox(Tenant(seed=11, users=6), tls_files) as running:
        yield running


def token_for(sandbox: Sandbox) -> str:
    response = httpx.post(
        f"{sandbox.authority}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
              "scope": "https://graph.microsoft.com/.default"},
        verify=sandbox.ssl_context(),
    )
    response.raise_for_status()
    return response.json()["access_token"]


def client_for(sandbox: Sandbox, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url + "/", headers={"Authorization": f"Bearer {token_for(sandbox)}"}, verify=sandbox.ssl_context(), timeout=30, **kwargs)


@pytest.fixture(scope="session")
def graph(sandbox):
    with client_for(sandbox) as client:
        yield client


@pytest.fixture
def fresh_graph(fresh_sandbox):
    with client_for(fresh_sandbox) as client:
        yield client


def follow(client: httpx.Client, url: str, headers: dict | None = None) -> tuple[list[dict], list[dict]]:
    """All pages of a collection: (every item, every page body); the last page may hold a deltaLink."""
    items, pages = [], []
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        items += body["value"]
        url = body.get("@odata.nextLink")
    return items, pages
