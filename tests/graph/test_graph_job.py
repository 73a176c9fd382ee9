"""A whole migration run reading from the sandbox through the Graph source, from a config file
with the secret given by reference, as a migration team would set it up."""

from __future__ import annotations

import asyncio

from connectors.memory import MemorySink
from migrator.config import load_config
from migrator.job import Job, Selection
from migrator.model import WORKLOADS
from migrator.sandbox.api_mail import mailbox
from tests.graph.configs import sandbox_source


def write_config(tmp_path, sandbox, workloads=WORKLOADS) -> object:
    targets = "\n".join(f'[targets.{w}]\nkind = "memory"\n' for w in workloads)
    (tmp_path / "migrator.toml").write_text(f"""
{sandbox_source(tmp_path, sandbox)}
[workloads]
enabled = {list(workloads)!r}

{targets}
[run]
retry_base_seconds = 0.01
retry_max_seconds = 0.05
""".replace("'", '"'))
    return load_config(tmp_path / "migrator.toml")


def test_mail_of_a_department_moves_and_a_rerun_moves_nothing(tmp_path, sandbox):
    config = write_config(tmp_path, sandbox, ("mail",))
    sink = MemorySink()
    job = Job(config, sinks={"mail": sink})
    try:
        first = asyncio.run(job.run("run", Selection.from_config(config)))
        second = asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.close()
    tenant = sandbox.tenant
    department = tenant.users[0]["department"]
    expected = sum(len(store) for u in tenant.users if u["department"] == department for store in mailbox(tenant, u["id"]).messages.values())
    assert first.copy.outcomes["copied"] == expected and first.failed == 0 and first.exit_code == 0
    assert first.verify.outcomes["verified"] == expected
    assert second.copy.outcomes["copied"] == 0
    assert all(c["new"] == c["changed"] == c["removed"] == 0 for c in second.plan.by_workload().values())
    assert sum(len(folder) for folder in sink.folders.values()) == expected
    assert "hunter" not in (tmp_path / "migrator.toml").read_text()


def test_the_cli_reports_a_refused_secret_in_one_line(tmp_path, sandbox):
    import subprocess
    import sys

    write_config(tmp_path, sandbox, ("mail",))
    (tmp_path / "migrator.toml").write_text((tmp_path / "migrator.toml").read_text().replace('kind = "memory"', 'kind = "directory"\npath = "out"'))
    (tmp_path / "graph-secret").write_text("not-the-secret\n")
    out = subprocess.run([sys.executable, "-m", "migrator", "run", "-c", str(tmp_path / "migrator.toml")], capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        "migrator: error: sign-in failed: the client secret was refused (AADSTS7000215)",
        "  hint: check source.client_secret: it must be the secret's value, not its id, and not expired",
    ]
    assert "not-the-secret" not in out.stdout + out.stderr


def test_every_workload_of_a_department_moves_without_failures(tmp_path, sandbox):
    from migrator.sandbox.api_contacts import address_book
    from migrator.sandbox.api_drive import onedrive

    config = write_config(tmp_path, sandbox)
    sinks = {w: MemorySink() for w in WORKLOADS}
    job = Job(config, sinks=sinks)
    try:
        first = asyncio.run(job.run("run", Selection.from_config(config)))
        problems = [(p.workload, p[4], p.last_error) for p in job.ledger.problems()]
        second = asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.close()
    assert problems == [] and first.exit_code == 0, problems[:5]
    planned = first.plan.by_workload()
    assert all(planned[w]["new"] > 0 for w in WORKLOADS), planned
    tenant = sandbox.tenant
    members = tenant.department_members(tenant.users[0]["department"])
    assert planned["contacts"]["new"] == sum(len(s) for u in members for s in address_book(tenant, u["id"]).contacts.values())
    assert planned["files"]["new"] == sum(len(onedrive(tenant, u["id"]).items) - 1 for u in members)  # the root is not an item
    assert first.verify.outcomes["verified"] == first.copy.outcomes["copied"] and first.verify.outcomes["mismatch"] == 0
    assert second.copy.outcomes["copied"] == 0


def test_expired_delta_tokens_fall_back_to_a_full_listing_without_duplicates(tmp_path, sandbox):
    config = write_config(tmp_path, sandbox, ("mail", "contacts"))
    sinks = {"mail": MemorySink(), "contacts": MemorySink()}
    job = Job(config, sinks=sinks)
    try:
        first = asyncio.run(job.run("run", Selection.from_config(config)))
        sandbox.tenant.delta.expire_all()
        second = asyncio.run(job.run("run", Selection.from_config(config)))
    finally:
        job.close()
    assert second.plan.expired_cursors > 0
    assert second.copy.outcomes["copied"] == 0 and second.exit_code == 0
    stored = sum(len(folder) for sink in sinks.values() for folder in sink.folders.values())
    assert stored == first.copy.outcomes["copied"]
