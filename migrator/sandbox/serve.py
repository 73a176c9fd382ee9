"""`migrator sandbox serve`: the sandbox as a standalone HTTPS server, with what a client needs to
reach it (URLs, client id, CA file, and the client secret written to a 0600 file)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from rich.console import Console

from migrator.sandbox.app import Sandbox
from migrator.sandbox.limits import FaultSettings, ThrottleSettings
from migrator.sandbox.tenant import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Tenant
from migrator.sandbox.tls import ensure_tls


def write_secret(directory: Path) -> Path:
    path = directory / "client-secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(SANDBOX_CLIENT_SECRET + "\n")
    return path


def start_sandbox(
    data_dir: Path, port: int = 0, seed: int = 7, users: int = 20, large_items: bool = False,
    throttle: bool = False, fault_rate: float = 0.0, token_lifetime: float = 3600.0,
) -> Sandbox:
    tenant = Tenant(seed=seed, users=users, large_items=large_items, throttle=ThrottleSettings(enabled=throttle),
                    faults=FaultSettings(rate=fault_rate, seed=seed))
    tenant.identity.token_lifetime = token_lifetime
    return Sandbox(tenant, ensure_tls(data_dir), port=port).start()


def serve(data_dir: Path, console: Console, **options) -> None:
    sandbox = start_sandbox(data_dir, **options)
    secret = write_secret(data_dir)
    tenant = sandbox.tenant
    console.print(f"Graph      {sandbox.url}")
    console.print(f"authority  {sandbox.authority}")
    console.print(f"tenant     {tenant.identity.tenant_id} ({tenant.identity.tenant_domain})")
    console.print(f"client id  {SANDBOX_CLIENT_ID}")
    console.print(f"secret     in {secret}")
    console.print(f"CA bundle  {sandbox.ca_file}")
    departments = {}
    for user in tenant.users:
        departments[user["department"]] = departments.get(user["department"], 0) + 1
    console.print("users      " + ", ".join(f"{d}: {n}" for d, n in departments.items()))
    console.print("serving until interrupted (Ctrl-C)")
    try:
        threading.Event().wait()
    finally:
        sandbox.stop()


def source_section(sandbox: Sandbox, client_secret: str) -> str:
    """The [source] section of a configuration reading `sandbox`; `client_secret` is the TOML of the
    secret's reference, e.g. '{ file = "graph-secret" }'."""
    return f"""
[source]
kind = "graph"
tenant_id = "{sandbox.tenant.identity.tenant_id}"
client_id = "{SANDBOX_CLIENT_ID}"
client_secret = {client_secret}
authority_url = "{sandbox.base}"
graph_url = "{sandbox.url}"
ca_bundle = "{sandbox.ca_file}"
"""
