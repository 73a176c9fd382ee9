"""The identity platform endpoints msal uses: tenant discovery, client credentials (secret or
certificate assertion), device code, refresh. Tokens are opaque, expire, and carry the app's
application permissions, so a missing grant answers 403 just as Graph does."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from migrator.sandbox.http import GraphError, Request, Response

GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
ALL_PERMISSIONS = (
    "User.Read.All", "Mail.Read", "Calendars.Read", "Contacts.Read", "Files.Read.All", "Sites.Read.All",
    "Chat.Read.All", "ChannelMessage.Read.All", "Team.ReadBasic.All", "Channel.ReadBasic.All", "Group.Read.All",
)


@dataclass
class App:
    client_id: str
    secret: str | None = None
    certificate_thumbprint: str | None = None  # SHA-1 of the certificate, hex, as Entra ID shows it
    permissions: tuple[str, ...] = ALL_PERMISSIONS


@dataclass
class Principal:
    app: App
    user_id: str | None = None  # set for delegated (device code) tokens
    expires_at: float = 0.0


@dataclass
class _DeviceCode:
    client_id: str
    user_id: str
    polls: int = 0


@dataclass
class Identity:
    tenant_id: str
    tenant_domain: str
    apps: dict[str, App] = field(default_factory=dict)
    token_lifetime: float = 3600.0
    device_code_polls_before_approval: int = 1
    default_user_id: str = ""  # who "signs in" at the device code page
    _tokens: dict[str, Principal] = field(default_factory=dict)
    _refresh: dict[str, tuple[str, str]] = field(default_factory=dict)
    _device: dict[str, _DeviceCode] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def knows_tenant(self, tenant: str) -> bool:
        return tenant.lower() in (self.tenant_id, self.tenant_domain.lower(), "organizations", "common")

    def issue(self, app: App, user_id: str | None = None) -> dict:
        token = "sbx." + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = Principal(app, user_id, time.time() + self.token_lifetime)
        lifetime = int(self.token_lifetime)
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}

    def authenticate(self, request: Request) -> Principal:
        header = request.header("authorization")
        if not header.lower().startswith("bearer "):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", {"WWW-Authenticate": 'Bearer realm=""'})
        principal = self._tokens.get(header[7:].strip())
        if principal is None:
            raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if principal.expires_at <= time.time():
            raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return principal

    def expire_all_tokens(self) -> None:
        with self._lock:
            for principal in self._tokens.values():
                principal.expires_at = 0.0


def require(principal: Principal, *any_of: str) -> None:
    if not set(any_of) & set(principal.app.permissions):
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _oauth_error(error: str, code: int, description: str, status: int = 400) -> Response:
    return Response.json(
        {"error": error, "error_description": f"AADSTS{code}: {description}", "error_codes": [code],
         "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()), "trace_id": secrets.token_hex(16), "correlation_id": secrets.token_hex(16)},
        status,
    )


def _thumbprint_hex(x5t: str) -> str:
    """msal writes x5t in standard base64, RFC 7515 says base64url: accept either."""
    try:
        return base64.b64decode(x5t.replace("-", "+").replace("_", "/") + "=" * (-len(x5t) % 4)).hex()
    except ValueError:
        return ""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(payload: dict) -> str:
    return _b64url(json.dumps(payload).encode())


class AuthEndpoints:
    def __init__(self, identity: Identity, users: dict[str, dict]) -> None:
        self.identity, self.users = identity, users

    def openid_configuration(self, request: Request) -> Response:
        tenant = request.params["tenant"]
        if not self.identity.knows_tenant(tenant):
            return _oauth_error("invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
        base, tid = request.base_url, self.identity.tenant_id
        return Response.json({
            "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": f"{base}/{tid}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        })

    def instance_discovery(self, request: Request) -> Response:
        endpoint = request.query.get("authorization_endpoint", "")
        parts = urlsplit(endpoint).path.strip("/").split("/")
        tenant = parts[0] if parts else "common"
        return Response.json({
            "tenant_discovery_endpoint": f"{request.base_url}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": urlsplit(request.base_url).netloc, "preferred_cache": urlsplit(request.base_url).netloc, "aliases": [urlsplit(request.base_url).netloc]}],
        })

    def token(self, request: Request) -> Response:
        tenant = request.params["tenant"]
        if not self.identity.knows_tenant(tenant):
            return _oauth_error("invalid_request", 90002, f"Tenant '{tenant}' not found.")
        form = request.form()
        grant = form.get("grant_type", "")
        app = self.identity.apps.get(form.get("client_id", ""))
        if app is None:
            return _oauth_error("unauthorized_client", 700016, f"Application with identifier '{form.get('client_id', '')}' was not found in the directory.")
        if grant == "client_credentials":
            return self._client_credentials(app, form)
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            return self._device_code_token(app, form)
        if grant == "refresh_token":
            found = self.identity._refresh.get(form.get("refresh_token", ""))
            if not found or found[0] != app.client_id:
                return _oauth_error("invalid_grant", 70000, "Provided grant is invalid or malformed.")
            return Response.json(self._user_tokens(app, found[1]))
        return _oauth_error("unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'.")

    def _client_credentials(self, app: App, form: dict[str, str]) -> Response:
        if form.get("client_assertion"):
            if app.certificate_thumbprint is None or not self._assertion_matches(app, form["client_assertion"]):
                return _oauth_error("invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not registered on application.", 401)
        elif not app.secret or form.get("client_secret") != app.secret:
            return _oauth_error("invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.", 401)
        scope = form.get("scope", "")
        if GRAPH_DEFAULT_SCOPE not in scope.split():
            return _oauth_error("invalid_scope", 1002012, f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.")
        return Response.json(self.identity.issue(app))

    @staticmethod
    def _assertion_matches(app: App, assertion: str) -> bool:
        """Checks the assertion names this app and the registered certificate (x5t); the signature
        is taken on trust, which is enough to exercise the client's certificate path."""
        try:
            header_b64, payload_b64, _ = assertion.split(".")
            header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
            payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
        except ValueError:
            return False
        return payload.get("iss") == app.client_id and _thumbprint_hex(header.get("x5t", "")) == (app.certificate_thumbprint or "").lower()

    def devicecode(self, request: Request) -> Response:
        form = request.form()
        app = self.identity.apps.get(form.get("client_id", ""))
        if app is None:
            return _oauth_error("unauthorized_client", 700016, "Application was not found in the directory.")
        device_code = secrets.token_urlsafe(24)
        user_code = secrets.token_hex(4).upper()
        self.identity._device[device_code] = _DeviceCode(app.client_id, self.identity.default_user_id)
        uri = f"{request.base_url}/devicelogin"
        return Response.json({
            "user_code": user_code, "device_code": device_code, "verification_uri": uri, "expires_in": 900, "interval": 1,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate.",
        })

    def _device_code_token(self, app: App, form: dict[str, str]) -> Response:
        pending = self.identity._device.get(form.get("device_code", ""))
        if pending is None or pending.client_id != app.client_id:
            return _oauth_error("expired_token", 70020, "The provided authorization code or refresh token has expired due to inactivity.")
        pending.polls += 1
        if pending.polls <= self.identity.device_code_polls_before_approval:
            return _oauth_error("authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
        del self.identity._device[form["device_code"]]
        return Response.json(self._user_tokens(app, pending.user_id))

    def _user_tokens(self, app: App, user_id: str) -> dict:
        user = self.users.get(user_id, {})
        tokens = self.identity.issue(app, user_id)
        refresh = "sbxr." + secrets.token_urlsafe(32)
        self.identity._refresh[refresh] = (app.client_id, user_id)
        now = int(time.time())
        claims = {
            "aud": app.client_id, "iss": f"https://login.microsoftonline.com/{self.identity.tenant_id}/v2.0", "iat": now, "nbf": now,
            "exp": now + int(self.identity.token_lifetime), "name": user.get("displayName", ""), "oid": user_id,
            "preferred_username": user.get("userPrincipalName", ""), "sub": user_id, "tid": self.identity.tenant_id, "ver": "2.0",
        }
        id_token = f"{_b64url_json({'typ': 'JWT', 'alg': 'none'})}.{_b64url_json(claims)}."
        return {
            **tokens, "scope": " ".join(f"https://graph.microsoft.com/{p}" for p in app.permissions), "refresh_token": refresh,
            "id_token": id_token, "client_info": _b64url_json({"uid": user_id, "utid": self.identity.tenant_id}),
        }


