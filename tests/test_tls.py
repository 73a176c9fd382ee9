"""Certificate checks: on in every connector a configuration builds, off only where the command
line's --insecure-skip-tls-verify asked for it (no config key can), and a failed check read out of
whatever the HTTP libraries wrapped it in. tests/graph/test_tls.py runs the same through the CLI
against servers with a certificate nobody trusts."""

from __future__ import annotations

import ssl

import httpx
import pytest
import requests
import urllib3

from migrator.config import parse_config, without_tls_verification
from migrator.errors import ConfigError
from migrator.sandbox.tls import ensure_tls
from migrator.tls import (
    UntrustedCertificate,
    certificate_failure,
    httpx_verify,
    ssl_context,
    untrusted,
)
from migrator.wiring import build_sink, build_source

WORKLOADS = ["mail", "calendar", "contacts", "files", "chat"]


def config_with_every_network_target(tmp_path, **source):
    for name in ("pw", "as-token", "graph-secret"):
        (tmp_path / name).write_text("secret")
    return parse_config({
        "source": {"kind": "graph", "tenant_id": "contoso.example", "client_id": "app", "client_secret": {"file": "graph-secret"}, **source},
        "workloads": {"enabled": WORKLOADS},
        "targets": {
            "mail": {"kind": "imap", "host": "imap.example.org", "password": {"file": "pw"}},
            "calendar": {"kind": "caldav", "url": "https://dav.example.org", "password": {"file": "pw"}},
            "contacts": {"kind": "carddav", "url": "https://dav.example.org", "password": {"file": "pw"}},
            "files": {"kind": "nextcloud", "url": "https://cloud.example.org", "password": {"file": "pw"}},
            "chat": {"kind": "matrix", "url": "https://matrix.example.org", "server_name": "example.org", "as_token": {"file": "as-token"}},
        },
    }, base_dir=tmp_path)


def verification_of(sink) -> str:
    """How the sink's connections check certificates: "checked" or "unchecked"."""
    if hasattr(sink, "_ssl"):  # IMAP: one SSLContext for every connection
        context = sink._ssl
        return "unchecked" if context.verify_mode == ssl.CERT_NONE and not context.check_hostname else "checked"
    verify = sink.client._settings["verify"] if hasattr(sink, "client") else sink.http._verify
    return "unchecked" if verify is False else "checked"


def test_every_connection_checks_certificates_unless_the_command_line_turned_it_off(tmp_path):
    config = config_with_every_network_target(tmp_path)
    assert config.skip_tls_verify is False
    assert {w: verification_of(build_sink(w, config.targets[w], config)) for w in WORKLOADS} == dict.fromkeys(WORKLOADS, "checked")
    assert build_source(config).credentials.skip_tls_verify is False
    unchecked = without_tls_verification(config)
    assert {w: verification_of(build_sink(w, unchecked.targets[w], unchecked)) for w in WORKLOADS} == dict.fromkeys(WORKLOADS, "unchecked")
    assert build_source(unchecked).credentials.skip_tls_verify is True
    assert config.skip_tls_verify is False, "the configuration it came from is left as it was"


@pytest.mark.parametrize(("section", "key"), [("source", "skip_tls_verify"), ("source", "verify"), ("targets.files", "insecure"),
                                              ("targets.files", "skip_tls_verify"), ("run", "skip_tls_verify")])
def test_no_config_key_switches_checks_off(tmp_path, section, key):
    raw = {"source": {"kind": "example"}, "workloads": {"enabled": ["files"]},
           "targets": {"files": {"kind": "nextcloud", "url": "https://cloud.example.org", "password": {"file": "pw"}}}, "run": {}}
    table = raw["targets"]["files"] if section == "targets.files" else raw[section]
    table[key] = True
    with pytest.raises(ConfigError, match=f"unknown key {section}.{key}"):
        parse_config(raw, base_dir=tmp_path)


def test_the_settings_each_library_gets(tmp_path):
    private_ca = str(ensure_tls(tmp_path).ca_cert)
    assert httpx_verify(None) is True and httpx_verify(None, skip_verify=True) is False and httpx_verify(private_ca, skip_verify=True) is False
    trusting = httpx_verify(private_ca)
    assert isinstance(trusting, ssl.SSLContext) and trusting.verify_mode == ssl.CERT_REQUIRED and trusting.check_hostname
    checked, unchecked = ssl_context(None), ssl_context(None, skip_verify=True)
    assert (checked.verify_mode, checked.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert (unchecked.verify_mode, unchecked.check_hostname) == (ssl.CERT_NONE, False)


def test_a_failed_check_is_found_however_deep_the_libraries_wrapped_it():
    failed = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    failed.verify_message = "self-signed certificate in certificate chain"
    pool_error = urllib3.exceptions.MaxRetryError(None, "/token", reason=urllib3.exceptions.SSLError(failed))
    assert certificate_failure(requests.exceptions.SSLError(pool_error)) == "self-signed certificate in certificate chain"
    try:
        try:
            raise failed
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as wrapped:
        assert certificate_failure(wrapped) == "self-signed certificate in certificate chain"
    only_text = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate")
    assert certificate_failure(only_text) == "certificate verify failed"
    assert certificate_failure(httpx.ConnectError("[Errno 111] Connection refused")) is None
    assert untrusted(httpx.ConnectError("All connection attempts failed"), "https://cloud.example.org") is None
    error = untrusted(only_text, "https://cloud.example.org")
    assert isinstance(error, UntrustedCertificate) and error.exit_code == 2
    assert str(error) == ("the TLS certificate of https://cloud.example.org is not trusted (certificate verify failed): "
                          "pass --ca-bundle FILE with the CA that signed it")
