"""Mail into a local Dovecot: the whole engine (Graph sandbox -> plan -> copy -> verify over IMAP)
against a plain imaplib APPEND loop of the same messages, measured side by side in one run.

Usage: python -m bench.mail [--users N]
"""

from __future__ import annotations

import argparse
import imaplib
import ssl
import tempfile
import time
from pathlib import Path

from bench import timed_stages
from migrator.config import load_config
from migrator.sandbox.api_mail import mailbox
from migrator.sandbox.app import Sandbox
from migrator.sandbox.tenant import Tenant
from migrator.sandbox.tls import ensure_tls
from tests.fixtures.dovecot import DEFAULT_MASTER, running_dovecot
from tests.graph.configs import dovecot_target, sandbox_source

BASELINE_USER = "baseline@bench.example"


def messages_of(tenant: Tenant, users: list[dict]) -> list[bytes]:
    return [box.mime[mid].read_all() for u in users for box in [mailbox(tenant, u["id"])] for mid in box.located
            if box.located[mid] != box.well_known.get("outbox")]


def imaplib_loop(server, messages: list[bytes]) -> float:
    context = ssl.create_default_context(cafile=server.ca_file)
    client = imaplib.IMAP4_SSL(server.host, server.port, ssl_context=context)
    client.login(f"{BASELINE_USER}*{DEFAULT_MASTER[0]}", DEFAULT_MASTER[1])
    start = time.perf_counter()
    for message in messages:
        client.append("INBOX", None, None, message)
    elapsed = time.perf_counter() - start
    client.logout()
    return elapsed


def write_config(root: Path, sandbox: Sandbox, server) -> Path:
    (root / "migrator.toml").write_text(f"""
{sandbox_source(root, sandbox)}
[workloads]
enabled = ["mail"]
{dovecot_target(root, server)}""")
    return root / "migrator.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tenant = Tenant(seed=7, users=args.users)
        members = [u for u in tenant.users if u["department"] == tenant.users[0]["department"]]
        messages = messages_of(tenant, members)
        accounts = {u["userPrincipalName"]: "unused" for u in members} | {BASELINE_USER: "unused"}
        with Sandbox(tenant, ensure_tls(root / "tls")) as sandbox, running_dovecot(root / "dovecot", accounts) as server:
            raw = imaplib_loop(server, messages)
            config = load_config(write_config(root, sandbox, server))
            stage_times, results = timed_stages(config)
    engine = sum(stage_times.values())
    copied, total_mb = results["copy"].copy.outcomes["copied"], sum(len(m) for m in messages) / 1e6
    assert copied == len(messages) and results["verify"].verify.outcomes["verified"] == copied, results
    n = len(messages)
    print(f"{n} messages, {total_mb:.1f} MB, {len(members)} mailboxes, into a local Dovecot over TLS")
    print(f"imaplib APPEND loop (bytes in memory, one connection) {n / raw:8.1f} msg/s {total_mb / raw:7.2f} MB/s")
    print(f"engine copy stage (Graph $value -> IMAP APPEND)       {n / stage_times['copy']:8.1f} msg/s {total_mb / stage_times['copy']:7.2f} MB/s")
    print(f"engine plan + copy + verify                           {n / engine:8.1f} msg/s {total_mb / engine:7.2f} MB/s")
    print("stage seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in stage_times.items()) + " (plan includes msgraph-sdk's first-use imports)")
    print(f"ratio copy stage / imaplib                            {raw / stage_times['copy']:8.2f}")
    print(f"ratio whole engine / imaplib                          {raw / engine:8.2f}")


if __name__ == "__main__":
    main()
