"""The three ways to sign in: client secret (see test_graph_source), certificate, and device code,
with the token cache kept in a 0600 file."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from connectors.graph.auth import AuthError, TokenProvider, certificate_credential
from migrator.sandbox.auth import App
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
