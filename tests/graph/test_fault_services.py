"""Graph failing under a run: 429 storms, 503/504 and dropped connections on a tenth of its requests
while tokens expire every few seconds. The run completes (or its affected items fail with the reason
and the rerun completes them), and the target ends exactly equal to the source. Target servers
stopped mid-run: test_fault_targets."""

from __future__ import annotations

import pytest

from migrator.config import load_config
from migrator.sandbox.app import Sandbox
from migrator.sandbox.limits import FaultSettings, ThrottleSettings
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.sandbox.tenant import Tenant
from tests.graph.configs import nextcloud_target, sandbox_source
from tests.graph.outage import run
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

{nextcloud_target(url)}
[targets.contacts]
kind = "directory"
path = "contacts"

[run]
call_retries = {call_retries}
retry_base_seconds = 0.02
retry_max_seconds = 0.2
""")
    return load_config(tmp_path / "migrator.toml")


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

