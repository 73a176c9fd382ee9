"""Each target server stopped in the middle of a run (its process ended, not paused): the items the
run could not finish are `failed` with the reason, and once the server is back on the same storage
the rerun completes them; the target then holds exactly the source, nothing lost, nothing twice."""

from __future__ import annotations

import pytest

from migrator.config import load_config
from migrator.sandbox.api_teams import department_team
from migrator.sandbox.app import Sandbox
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.sandbox.tenant import Tenant
from tests.fixtures.dovecot import running_dovecot
from tests.fixtures.radicale import running_radicale
from tests.fixtures.synapse import running_synapse
from tests.graph.configs import dav_targets, dovecot_target, sandbox_source
from tests.graph.outage import rerun_after_the_outage, run_into_an_outage
from tests.graph.test_chat_to_synapse import (
    chat_config,
    check_rooms,
    register_real_users,
)
from tests.graph.test_fault_services import PASSWORD, files_config
from tests.graph.test_sync import (
    cloud_files,
    dav_keys,
    dav_sources,
    drive_files,
    imap_folders,
    live_events_and_contacts,
    source_mail,
)

FAST_RETRIES = """
[run]
call_retries = 2
retry_base_seconds = 0.01
retry_max_seconds = 0.05
"""


def write_config(tmp_path, sandbox, upn: str, workloads: list[str], targets: str):
    (tmp_path / "migrator.toml").write_text(f"""
{sandbox_source(tmp_path, sandbox, [upn])}
[workloads]
enabled = {workloads}
{targets}
{FAST_RETRIES}""")
    return load_config(tmp_path / "migrator.toml")


@pytest.mark.fault
def test_nextcloud_stopped_mid_run_and_restarted_ends_with_exactly_the_drive(tmp_path, tls_files):
    with Sandbox(Tenant(seed=43, users=2), tls_files) as sandbox:
        user = sandbox.tenant.users[0]
        login = user["userPrincipalName"].split("@")[0]
        cloud = NextcloudServer(tmp_path / "nc", users={login: PASSWORD}).start()
        try:
            config = files_config(tmp_path, sandbox, user["userPrincipalName"], cloud.url, call_retries=2)
            outage = run_into_an_outage(config, 10, cloud.stop)
            # Back with its storage (on another port: the old one lingers in TIME_WAIT).
            cloud = NextcloudServer(tmp_path / "nc", users={login: PASSWORD}).start()
            rerun_after_the_outage(files_config(tmp_path, sandbox, user["userPrincipalName"], cloud.url), outage)
            assert cloud_files(tmp_path / "nc", login) == drive_files(sandbox, user)
        finally:
            cloud.stop()


@pytest.mark.fault
def test_dovecot_stopped_mid_run_and_restarted_ends_with_exactly_the_mailbox(tmp_path, tls_files):
    with Sandbox(Tenant(seed=43, users=1), tls_files) as sandbox:
        user = sandbox.tenant.users[0]
        upn = user["userPrincipalName"]
        with running_dovecot(tmp_path / "dovecot", {upn: "unused"}) as imap:
            config = write_config(tmp_path, sandbox, upn, ["mail"], dovecot_target(tmp_path, imap))
            outage = run_into_an_outage(config, 8, imap.terminate)
            imap.restart()
            rerun_after_the_outage(config, outage)
            stored = imap_folders(imap, upn, config)
            assert {p: sorted(ids) for p, ids in stored.items()} == {p: sorted(ids) for p, ids in source_mail(sandbox, user, config).items()}


@pytest.mark.fault
def test_radicale_stopped_mid_run_and_restarted_ends_with_exactly_the_events_and_contacts(tmp_path, tls_files):
    with Sandbox(Tenant(seed=43, users=1), tls_files) as sandbox:
        user = sandbox.tenant.users[0]
        login = user["userPrincipalName"].split("@")[0]
        (tmp_path / "password").write_text(PASSWORD)
        with running_radicale(tmp_path / "radicale", {login: PASSWORD}) as dav:
            config = write_config(tmp_path, sandbox, user["userPrincipalName"], ["calendar", "contacts"], dav_targets(dav.url))
            # Radicale serves the open connections to their end before it exits, and the run, held in the fault hook, keeps
            # them open: it is killed after a moment.
            outage = run_into_an_outage(config, 8, lambda: dav.terminate(grace=0.5))
            dav.restart()
            rerun_after_the_outage(config, outage)
            stored = dav_sources(config, dav, login)
            assert len(dav_keys(dav, login)) == len(stored), "an object stored twice, or one the ledger does not know"
            assert stored == live_events_and_contacts(sandbox, user)


@pytest.mark.fault
def test_synapse_stopped_mid_run_and_restarted_ends_with_each_message_once(tmp_path, tls_files):
    # A homeserver of its own: the session's one serves other tests, which a stop would break.
    with Sandbox(Tenant(seed=43, users=1), tls_files) as sandbox, running_synapse(tmp_path / "synapse") as synapse:
        member = sandbox.tenant.users[0]  # alone in the department: no chats, the channels of its team
        team, _ = department_team(sandbox.tenant, member["department"])
        del team.channels[:2]  # the last two of four: some 100 messages
        register_real_users(synapse, [member])
        config = chat_config(tmp_path / "run", sandbox, synapse, "teams_", only=member, call_retries=2)
        outage = run_into_an_outage(config, 20, synapse.terminate)
        synapse.restart()
        rerun_after_the_outage(config, outage)
        counts = check_rooms(synapse, sandbox, config, [member])  # each message once, in order, nothing missing
        assert counts["rooms"] == 2 and counts["messages"] >= 90, counts
