"""`migrator sandbox serve` as a user starts it, and the large items it can hold."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys

import httpx

from migrator.sandbox import api_drive, api_mail
from migrator.sandbox.app import Sandbox
from migrator.sandbox.quickxor import QuickXorHash
from migrator.sandbox.tenant import SANDBOX_CLIENT_ID, Tenant
from tests.sandbox.conftest import client_for


def test_serve_prints_what_a_client_needs_and_answers_over_tls(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "migrator", "sandbox", "serve", "--port", "0", "--users", "5", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line.rstrip())
            if line.startswith("serving"):
                break
        printed = "\n".join(lines)
        graph = re.search(r"^Graph\s+(\S+)", printed, re.MULTILINE).group(1)
        authority = re.search(r"^authority\s+(\S+)", printed, re.MULTILINE).group(1)
        secret_file = tmp_path / "client-secret"
        assert oct(secret_file.stat().st_mode & 0o777) == "0o600" and (tmp_path / "sandbox-ca.pem").exists()
        assert "sandbox-client-secret" not in printed, "the secret is in a file, not on the screen"
        trust = ssl.create_default_context(cafile=str(tmp_path / "sandbox-ca.pem"))
        token = httpx.post(f"{authority}/oauth2/v2.0/token", verify=trust, data={
            "grant_type": "client_credentials", "client_id": SANDBOX_CLIENT_ID, "client_secret": secret_file.read_text().strip(),
            "scope": "https://graph.microsoft.com/.default"}).json()["access_token"]
        users = httpx.get(f"{graph}/users", headers={"Authorization": f"Bearer {token}"}, verify=trust).json()["value"]
        assert len(users) == 5 + 4 * 4
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_bad_serve_options_are_usage_errors(tmp_path):
    out = subprocess.run([sys.executable, "-m", "migrator", "sandbox", "serve", "--fault-rate", "2"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert out.returncode == 2 and "--fault-rate must be between 0 and 1" in out.stderr


def test_large_items_stream_without_being_held_and_hash_as_declared(tls_files):
    tenant = Tenant(seed=3, users=2, large_items=True)
    owner = tenant.users[0]["id"]
    with Sandbox(tenant, tls_files) as sandbox, client_for(sandbox) as graph:
        big_file = max((i for i in api_drive.onedrive(tenant, owner).items.current() if "file" in i), key=lambda i: i["size"])
        served = graph.get(f"users/{owner}/drive/items/{big_file['id']}").json()
        assert served["size"] == 200_000_000
        digest, received = QuickXorHash(), 0
        with httpx.stream("GET", served["@microsoft.graph.downloadUrl"], verify=sandbox.ssl_context(), timeout=60) as response:
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                received += len(chunk)
        assert received == 200_000_000 and digest.b64() == served["file"]["hashes"]["quickXorHash"]

        box = api_mail.mailbox(tenant, owner)
        big_message = max(box.mime, key=lambda mid: box.mime[mid].size if mid in box.located else 0)
        size = 0
        with graph.stream("GET", f"users/{owner}/messages/{big_message}/$value") as response:
            for chunk in response.iter_bytes(1 << 20):
                size += len(chunk)
        assert size == box.mime[big_message].size > 30_000_000
