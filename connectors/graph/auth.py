"""Tokens from the Microsoft identity platform via msal: app-only client credentials (secret or
certificate) for tenant-wide runs, device code for a delegated single-user run. The token cache is
persisted to a 0600 file; msal refreshes tokens before they expire and on request after a 401."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msal
import requests
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from migrator.errors import ConfigError, MigratorError
from migrator.tls import untrusted

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
RENEW_BEFORE = 300.0  # seconds before expiry at which a token is renewed
MICROSOFT_AUTHORITY_HOST = "https://login.microsoftonline.com"


class PinnedSession(requests.Session):
    """requests lets REQUESTS_CA_BUNDLE override a session's `verify`; a per-request value holds."""

    def __init__(self, ca_bundle: str | None, skip_tls_verify: bool = False) -> None:
        super().__init__()
        self.ca_bundle, self.skip_tls_verify = ca_bundle, skip_tls_verify
        if skip_tls_verify:  # the command warned once already; urllib3 would repeat it on every request
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def request(self, *args, **kwargs):
        if self.skip_tls_verify:
            kwargs["verify"] = False
        elif self.ca_bundle:
            kwargs["verify"] = self.ca_bundle
        return super().request(*args, **kwargs)


@dataclass(frozen=True)
class Credentials:
    tenant_id: str
    client_id: str
    client_secret: str | None = None
    certificate: tuple[str, str] | None = None  # (private key PEM, thumbprint hex)
    authority_host: str = MICROSOFT_AUTHORITY_HOST
    ca_bundle: str | None = None
    token_cache: Path | None = None
    device_code: bool = False
    skip_tls_verify: bool = False  # --insecure-skip-tls-verify


def certificate_credential(certificate: Path, private_key_pem: str) -> tuple[str, str]:
    """(private key, SHA-1 thumbprint) as msal wants them, from the app's public certificate."""
    try:
        cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"source.certificate {certificate} is not a PEM certificate: {exc}", hint="export the certificate as PEM") from None
    return private_key_pem, cert.fingerprint(hashes.SHA1()).hex()


class AuthError(MigratorError):
    exit_code = 2


_HINTS = {
    7000215: ("the client secret was refused", "check source.client_secret: it must be the secret's value, not its id, and not expired"),
    7000222: ("the client secret has expired", "create a new secret in the app registration and update source.client_secret"),
    700016: ("the application (client id) is not known in this tenant", "check source.client_id and that the app is registered in this tenant"),
    700027: ("the certificate is not registered on the application", "upload the certificate to the app registration or fix source.certificate"),
    90002: ("the tenant does not exist", "check source.tenant_id (a GUID or a domain such as contoso.onmicrosoft.com)"),
    1002012: ("the scope is not valid for app-only access", "report this: the tool asks for https://graph.microsoft.com/.default"),
}


def explain(result: dict) -> AuthError:
    """One clear line from msal's error result, never echoing any secret."""
    codes = result.get("error_codes") or []
    for code in codes:
        if code in _HINTS:
            what, hint = _HINTS[code]
            return AuthError(f"sign-in failed: {what} (AADSTS{code})", hint=hint)
    description = (result.get("error_description") or result.get("error") or "unknown error").splitlines()[0]
    return AuthError(f"sign-in failed: {description}", hint="check source.tenant_id, source.client_id and the credential")


def unreachable(exc: requests.RequestException, authority_host: str) -> MigratorError:
    return untrusted(exc, authority_host) or AuthError(f"cannot reach the identity platform at {authority_host}: {type(exc).__name__}",
                                                       hint="check the network, source.authority_url and source.ca_bundle")


class TokenProvider:
    """Thread-safe access tokens; `token(force=True)` bypasses the cache after a 401."""

    def __init__(self, credentials: Credentials, prompt: Callable[[str], None] = print) -> None:
        self.credentials = credentials
        self._prompt = prompt
        self._lock = threading.Lock()
        self._cache = msal.SerializableTokenCache()
        if credentials.token_cache is not None and credentials.token_cache.exists():
            self._cache.deserialize(credentials.token_cache.read_text())
        self._app = self._build_app()
        self._current: tuple[str, float] | None = None  # (token, monotonic time to renew at)

    def _build_app(self):
        c = self.credentials
        authority = f"{c.authority_host.rstrip('/')}/{c.tenant_id}"
        common = {
            "authority": authority,
            "http_client": PinnedSession(c.ca_bundle, c.skip_tls_verify),
            "token_cache": self._cache,
            # A non-Microsoft authority (a sandbox, a sovereign proxy) must not be validated against
            # login.microsoftonline.com, which msal otherwise asks about authority aliases.
            "instance_discovery": None if c.authority_host.rstrip("/") == MICROSOFT_AUTHORITY_HOST else False,
        }
        try:
            if c.device_code:
                return msal.PublicClientApplication(c.client_id, **common)
            credential = c.client_secret if c.certificate is None else {"private_key": c.certificate[0], "thumbprint": c.certificate[1]}
            return msal.ConfidentialClientApplication(c.client_id, client_credential=credential, **common)
        except ValueError as exc:
            if "Unable to get authority configuration" in str(exc) or "not known" in str(exc):
                raise AuthError(f"sign-in failed: tenant {c.tenant_id!r} was not found at {c.authority_host}",
                                hint="check source.tenant_id (a GUID or a domain such as contoso.onmicrosoft.com)") from None
            raise ConfigError(f"cannot use the identity platform at {c.authority_host}: {exc}", hint="check source.authority_url") from None
        except requests.RequestException as exc:
            raise unreachable(exc, c.authority_host) from None

    def token(self, force: bool = False) -> str:
        with self._lock:
            if not force and self._current is not None and time.monotonic() < self._current[1]:
                return self._current[0]
            try:
                result = self._acquire(force)
            except requests.RequestException as exc:
                raise unreachable(exc, self.credentials.authority_host) from None
            if "access_token" not in result:
                raise explain(result)
            self._persist()
            # Renewed a little before it expires, so no request goes out with a token about to lapse.
            lifetime = float(result.get("expires_in") or 300)
            self._current = (result["access_token"], time.monotonic() + max(lifetime - RENEW_BEFORE, lifetime / 2))
            return result["access_token"]

    async def atoken(self, force: bool = False) -> str:
        if not force and self._current is not None and time.monotonic() < self._current[1]:
            return self._current[0]  # the common case, without a thread hop into msal
        return await asyncio.to_thread(self.token, force)

    def _acquire(self, force: bool) -> dict:
        app = self._app
        if not self.credentials.device_code:
            if force:  # the server refused the cached token: drop it so msal asks for a new one
                for cached in list(self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    self._cache.remove_at(cached)
            # msal serves a cached token until shortly before it expires, then fetches a new one.
            return app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        accounts = app.get_accounts()
        if accounts:
            result = app.acquire_token_silent([GRAPH_SCOPE], account=accounts[0], force_refresh=force)
            if result and "access_token" in result:
                return result
        flow = app.initiate_device_flow(scopes=[GRAPH_SCOPE])
        if "user_code" not in flow:
            return flow
        self._prompt(flow["message"])
        return app.acquire_token_by_device_flow(flow)

    def _persist(self) -> None:
        path = self.credentials.token_cache
        if path is None or not self._cache.has_state_changed:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self._cache.serialize())
        os.chmod(path, 0o600)
