"""The identity endpoints as msal drives them, and Graph's answers to missing, wrong or expired tokens."""

from __future__ import annotations

import time

import httpx
import msal
import pytest
import requests

from migrator.sandbox.auth import App
from migrator.sandbox.tenant import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from tests.sandbox.conftest import client_for

SCOPE = ["https://graph.microsoft.com/.default"]


class PinnedSession(requests.Session):
    """requests lets REQUESTS_CA_BUNDLE override Session.verify; a per-request verify is what holds."""

    def __init__(self, ca_file: str) -> None:
        super().__init__()
        self.ca_file = ca_file

    def request(self, *args, **kwargs):
        kwargs["verify"] = self.ca_file
        return super().request(*args, **kwargs)


def msal_app(sandbox, secret=SANDBOX_CLIENT_SECRET, authority=None, client_id=SANDBOX_CLIENT_ID):
    session = PinnedSession(sandbox.ca_file)
    return msal.ConfidentialClientApplication(
        client_id, client_credential=secret, authority=authority or sandbox.authority, http_client=session,
        instance_discovery=False,  # msal would otherwise ask login.microsoftonline.com about aliases
    )


def test_msal_client_credentials_token_reads_graph(sandbox):
    result = msal_app(sandbox).acquire_token_for_client(scopes=SCOPE)
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer" and result["expires_in"] > 3000
    response = httpx.get(f"{sandbox.url}/users", headers={"Authorization": f"Bearer {result['access_token']}"}, verify=sandbox.ssl_context())
    assert response.status_code == 200 and len(response.json()["value"]) > 0


def test_a_wrong_secret_is_refused_with_the_aadsts_code(sandbox):
    result = msal_app(sandbox, secret="not-the-secret").acquire_token_for_client(scopes=SCOPE)
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided")


def test_an_unknown_client_and_an_unknown_tenant_are_refused(sandbox):
    unknown_client = msal_app(sandbox, client_id="00000000-0000-0000-0000-000000000000").acquire_token_for_client(scopes=SCOPE)
    assert unknown_client["error"] == "unauthorized_client" and "AADSTS700016" in unknown_client["error_description"]
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal_app(sandbox, authority=f"{sandbox.base}/nosuchtenant.example")


def test_device_code_flow_issues_a_delegated_token(sandbox):
    session = PinnedSession(sandbox.ca_file)
    public = msal.PublicClientApplication(SANDBOX_CLIENT_ID, authority=sandbox.authority, http_client=session,
                                          instance_discovery=False)
    flow = public.initiate_device_flow(scopes=["Mail.Read"])
    assert flow["user_code"] and "devicelogin" in flow["verification_uri"]
    result = public.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    first_user = sandbox.tenant.users[0]
    assert result["id_token_claims"]["preferred_username"] == first_user["userPrincipalName"]
    assert public.get_accounts()[0]["username"] == first_user["userPrincipalName"]


def test_requests_without_a_valid_token_get_graphs_401(sandbox):
    bare = httpx.get(f"{sandbox.url}/users", verify=sandbox.ssl_context())
    assert bare.status_code == 401
    error = bare.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken" and set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    forged = httpx.get(f"{sandbox.url}/users", headers={"Authorization": "Bearer nonsense"}, verify=sandbox.ssl_context())
    assert forged.status_code == 401


def test_tokens_expire_mid_run(fresh_sandbox):
    fresh_sandbox.tenant.identity.token_lifetime = 1
    with client_for(fresh_sandbox) as client:
        assert client.get("users").status_code == 200
        time.sleep(1.1)
        expired = client.get("users")
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]


def test_a_missing_application_permission_answers_403(fresh_sandbox):
    fresh_sandbox.tenant.identity.apps["limited"] = App("limited", secret="s", permissions=("User.Read.All",))
    token = httpx.post(
        f"{fresh_sandbox.authority}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": "limited", "client_secret": "s", "scope": SCOPE[0]},
        verify=fresh_sandbox.ssl_context(),
    ).json()["access_token"]
    user = fresh_sandbox.tenant.users[0]["id"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{fresh_sandbox.url}/users/{user}", headers=headers, verify=fresh_sandbox.ssl_context()).status_code == 200
    denied = httpx.get(f"{fresh_sandbox.url}/users/{user}/mailFolders", headers=headers, verify=fresh_sandbox.ssl_context())
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "Authorization_RequestDenied"
