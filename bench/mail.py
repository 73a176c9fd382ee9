"""Mail into a local Dovecot: the whole engine (Graph sandbox -> plan -> copy -> verify over IMAP)
against plain imaplib APPEND loops of the same messages, measured side by side in one run. The loops
get the connections the engine may use: `connections_per_owner` (2) per mailbox, each taking whole
folders (appends to one folder are serialised by the server).

Usage: python -m bench.mail [--users N] [--json FILE]
"""

from __future__ import annotations

import argparse
import imaplib
import queue
import ssl
import tempfile
import threading
import time
from pathlib import Path

from bench import json_option, timed_stages, write_results
from migrator.config import load_config
from migrator.sandbox.api_mail import mailbox
from migrator.sandbox.app import Sandbox
from migrator.sandbox.tenant import Tenant
from migrator.sandbox.tls import ensure_tls
from tests.fixtures.dovecot import DEFAULT_MASTER, running_dovecot
from tests.graph.configs import dovecot_target, sandbox_source

CONNECTIONS_PER_MAILBOX = 2  # the IMAP sink's default connections_per_owner


def baseline_account(n: int) -> str:
    return f"baseline-{n}@bench.example"


def messages_by_folder(tenant: Tenant, users: list[dict]) -> list[dict[str, list[bytes]]]:
    """Per mailbox: folder id -> its messages' MIME bytes (the Outbox is not migrated)."""
    found = []
    for user in users:
        box, folders = mailbox(tenant, user["id"]), {}
        for message_id, folder_id in box.located.items():
            if folder_id != box.well_known.get("outbox"):
                folders.setdefault(folder_id, []).append(box.mime[message_id].read_all())
        found.append(folders)
    return found


def imaplib_loops(server, mailboxes: list[dict[str, list[bytes]]]) -> float:
    context = ssl.create_default_context(cafile=server.ca_file)

    def connection(account: str, folders: queue.Queue) -> None:
        client = imaplib.IMAP4_SSL(server.host, server.port, ssl_context=context)
        client.login(f"{account}*{DEFAULT_MASTER[0]}", DEFAULT_MASTER[1])
        while True:
            try:
                name, messages = folders.get_nowait()
            except queue.Empty:
                break
            client.create(name)
            for message in messages:
                client.append(name, None, None, message)
        client.logout()

    threads = []
    for n, folders in enumerate(mailboxes):
        work: queue.Queue = queue.Queue()
        for index, messages in enumerate(folders.values()):
            work.put((f"F{index}", messages))
        threads += [threading.Thread(target=connection, args=(baseline_account(n), work)) for _ in range(CONNECTIONS_PER_MAILBOX)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


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
    json_option(parser, "mail")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tenant = Tenant(seed=7, users=args.users)
        members = tenant.department_members(tenant.users[0]["department"])
        mailboxes = messages_by_folder(tenant, members)
        accounts = {u["userPrincipalName"]: "unused" for u in members} | {baseline_account(n): "unused" for n in range(len(members))}
        with Sandbox(tenant, ensure_tls(root / "tls")) as sandbox, running_dovecot(root / "dovecot", accounts) as server:
            raw = imaplib_loops(server, mailboxes)
            config = load_config(write_config(root, sandbox, server))
            stage_times, results = timed_stages(config)
    engine = sum(stage_times.values())
    n = sum(len(messages) for folders in mailboxes for messages in folders.values())
    total_mb = sum(len(m) for folders in mailboxes for messages in folders.values() for m in messages) / 1e6
    copied = results["copy"].copy.outcomes["copied"]
    assert copied == n and results["verify"].verify.outcomes["verified"] == copied, results
    connections = CONNECTIONS_PER_MAILBOX * len(mailboxes)
    print(f"{n} messages, {total_mb:.1f} MB, {len(members)} mailboxes, into a local Dovecot over TLS")
    print(f"imaplib APPEND loops ({connections} connections)           {n / raw:8.1f} msg/s {total_mb / raw:7.2f} MB/s")
    print(f"engine copy stage (Graph $value -> IMAP APPEND)       {n / stage_times['copy']:8.1f} msg/s {total_mb / stage_times['copy']:7.2f} MB/s")
    print(f"engine plan + copy + verify                           {n / engine:8.1f} msg/s {total_mb / engine:7.2f} MB/s")
    print("stage seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in stage_times.items()) + " (plan includes msgraph-sdk's first-use imports)")
    print(f"ratio copy stage / imaplib                            {raw / stage_times['copy']:8.2f}")
    print(f"ratio whole engine / imaplib                          {raw / engine:8.2f}")
    write_results(args.json, {
        "messages": n, "megabytes": total_mb, "mailboxes": len(members), "baseline_connections": connections,
        "seconds": {"imaplib_loops": raw, **stage_times}, "ratio_copy_vs_imaplib": raw / stage_times["copy"], "ratio_engine_vs_imaplib": raw / engine,
    })


if __name__ == "__main__":
    main()
