"""The three ways to sign in: client secret (see test_graph_source), certificate, and device code,
with the token cache kept in a 0600 file; and the identity platform and Graph behind a certificate
nobody trusts."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from connectors.graph.auth import AuthError, TokenProvider, certificate_credential
from connectors.graph.session import GraphSession
from connectors.graph.transport import Politeness
from migrator.sandbox.auth import App
from migrator.tls import UntrustedCertificate
from tests.graph.conftest import credentials


def make_certificate(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "migrator app")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    (tmp_path / "app.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return tmp_path / "app.pem", key_pem, cert.fingerprint(hashes.SHA1())


def test_certificate_sign_in(tmp_path, sandbox):
    cert_path, key_pem, sha1 = make_certificate(tmp_path)
    sandbox.tenant.identity.apps["cert-app"] = App("cert-app", certificate_thumbprint=sha1.hex())
    certificate = certificate_credential(cert_path, key_pem)
    assert certificate[1] == sha1.hex()
    provider = TokenProvider(credentials(sandbox, client_id="cert-app", secret=None, certificate=certificate))
    assert provider.token().startswith("sbx.")
    sandbox.tenant.identity.apps["cert-app"].certificate_thumbprint = "00" * 20
    refused = TokenProvider(credentials(sandbox, client_id="cert-app", secret=None, certificate=certificate))
    with pytest.raises(AuthError, match="certificate is not registered"):
        refused.token()


def test_device_code_sign_in_keeps_a_private_token_cache(tmp_path, sandbox):
    prompts: list[str] = []
    cache = tmp_path / "cache" / "tokens.json"
    provider = TokenProvider(credentials(sandbox, secret=None, device_code=True, token_cache=cache), prompt=prompts.append)
    first = provider.token()
    assert prompts and "enter the code" in prompts[0]
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    again = TokenProvider(credentials(sandbox, secret=None, device_code=True, token_cache=cache), prompt=prompts.append)
    assert again.token().startswith("sbx.") and first.startswith("sbx.")
    assert len(prompts) == 1, "the cached sign-in (its refresh token) is reused without a new prompt"


def test_an_identity_platform_nobody_trusts_stops_sign_in_unless_checks_are_skipped(sandbox, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with pytest.raises(UntrustedCertificate, match=rf"certificate of {re.escape(sandbox.base)} is not trusted \(.*--ca-bundle"):
        TokenProvider(credentials(sandbox, ca_bundle=None)).token()
    assert TokenProvider(credentials(sandbox, ca_bundle=None, skip_tls_verify=True)).token().startswith("sbx.")


def test_graph_requests_are_not_retried_past_an_untrusted_certificate_and_skip_checks_only_when_told(sandbox):
    tokens = TokenProvider(credentials(sandbox))  # the sign-in itself trusts the sandbox's CA

    async def users(session: GraphSession) -> list[dict]:
        try:
            return (await session.get_json("users"))["value"]
        finally:
            await session.close()

    strict = GraphSession(tokens, sandbox.url, politeness=Politeness(backoff_base=0.01, backoff_cap=0.05))
    with pytest.raises(UntrustedCertificate, match=rf"certificate of {re.escape(sandbox.base)} is not trusted"):
        asyncio.run(users(strict))
    assert strict.transport.retries["dropped"] == 0, "no retry makes an untrusted certificate trusted"
    unchecked = GraphSession(tokens, sandbox.url, skip_tls_verify=True)
    assert len(asyncio.run(users(unchecked))) == len(sandbox.tenant.users)
