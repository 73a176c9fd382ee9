"""Services that fail under a run: Graph answering 429 storms, 503/504 and dropped connections on a
tenth of its requests while tokens expire every few seconds; a target server stopped mid-run. The
run completes (or its affected items fail with the reason and the rerun completes them), and the
target ends exactly equal to the source."""

from __future__ import annotations

import asyncio

import pytest

from migrator.config import load_config
from migrator.job import Job, Selection
from migrator.sandbox.app import Sandbox
from migrator.sandbox.limits import FaultSettings, ThrottleSettings
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.sandbox.tenant import Tenant
from tests.graph.configs import sandbox_source
from tests.graph.test_sync import cloud_files, drive_files

PASSWORD = "app-password"


def files_config(tmp_path, sandbox, upn: str, url: str, call_retries: int = 8):
    (tmp_path / "password").write_text(PASSWORD)
    (tmp_path / "migrator.toml").write_text(f"""
{sandbox_source(tmp_path, sandbox, [upn])}
[workloads]
enabled = ["files", "contacts", "mail"]

[targets.mail]
kind = "maildir"
path = "mail"

[targets.files]
kind = "nextcloud"
url = "{url}"
password = {{ file = "password" }}

[targets.contacts]
kind = "directory"
path = "contacts"

[run]
call_retries = {call_retries}
retry_base_seconds = 0.02
retry_max_seconds = 0.2
""")
    return load_config(tmp_path / "migrator.toml")


def run(config, fault_hook=None):
    job = Job(config, fault_hook=fault_hook)
    try:
        return asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.close()


@pytest.mark.fault
def test_graph_throttling_faults_and_expiring_tokens_do_not_stop_a_run(tmp_path, tls_files):
    tenant = Tenant(seed=41, users=2, throttle=ThrottleSettings(mailbox_concurrency=2, retry_after=1), faults=FaultSettings(rate=0.1, seed=41))
    tenant.limiter.latency = 0.05  # mailbox requests take time, so the engine's four per mailbox overlap: 429s, however fast the machine
    with Sandbox(tenant, tls_files) as sandbox:
        sandbox.tenant.identity.token_lifetime = 3  # several renewals during the run
        user = sandbox.tenant.users[0]
        login = user["userPrincipalName"].split("@")[0]
        with NextcloudServer(tmp_path / "nc", users={login: PASSWORD}) as cloud:
            config = files_config(tmp_path, sandbox, user["userPrincipalName"], cloud.url)
            first = run(config)
            # A call can still meet a fault on each of its retries; such an item fails alone, with
            # its reason, and the rerun (faults still on) completes it: nothing is lost.
            assert first.copy.outcomes["failed"] <= 2, first.copy.outcomes
            result = first if first.exit_code == 0 else run(config)
            assert result.exit_code == 0 and result.copy.outcomes["failed"] == 0, result.copy.outcomes
            assert cloud_files(tmp_path / "nc", login) == drive_files(sandbox, user)
        limiter = sandbox.tenant.limiter
        print(f"faults injected: {dict(limiter.injected)}, throttled: {dict(limiter.throttled)}")
        assert set(limiter.injected) == {"503", "504", "drop"} and sum(limiter.throttled.values()) > 0


@pytest.mark.fault
def test_a_target_stopped_mid_run_fails_its_items_with_the_reason_and_the_rerun_completes(tmp_path, tls_files):
    with Sandbox(Tenant(seed=43, users=2), tls_files) as sandbox:
        user = sandbox.tenant.users[0]
        login = user["userPrincipalName"].split("@")[0]
        cloud = NextcloudServer(tmp_path / "nc", users={login: PASSWORD}).start()
        try:
            config = files_config(tmp_path, sandbox, user["userPrincipalName"], cloud.url, call_retries=2)
            written = []

            def stop_after_ten(point: str) -> None:
                if point == "after_put":
                    written.append(1)
                    if len(written) == 10:
                        cloud.stop()  # the server goes away with most of the drive still to come

            broken = run(config, fault_hook=stop_after_ten)
            assert broken.exit_code == 1 and broken.copy.outcomes["failed"] > 0
            job = Job(config)
            try:
                reasons = {p.last_error for p in job.ledger.problems() if p.state == "failed"}
            finally:
                job.close()
            assert reasons and all("temporary failure" in r and ("Connect" in r or "connection" in r.lower()) for r in reasons), reasons
            # Back with its storage (on another port: the old one lingers in TIME_WAIT).
            cloud = NextcloudServer(tmp_path / "nc", users={login: PASSWORD}).start()
            again = run(files_config(tmp_path, sandbox, user["userPrincipalName"], cloud.url))
            assert again.exit_code == 0, again.copy.outcomes
            assert cloud_files(tmp_path / "nc", login) == drive_files(sandbox, user)
        finally:
            cloud.stop()
