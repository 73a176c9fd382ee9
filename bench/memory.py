"""Peak memory of the migrating process for large payloads: a 200 MB OneDrive file into the Nextcloud
stand-in and mailboxes of about 0.2 and 2 GB (~30 MB messages plus an ordinary mailbox) into a local
Dovecot, each moved by `migrator run` in a process of its own whose peak resident set (VmHWM) is read
at its end. Memory that does not grow with the data shows as the same peak for both mailboxes; the
baseline is the same process only starting up (`migrator --version`).

Usage: python -m bench.memory [--mailbox-gb G] [--json FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench import json_option, write_results
from migrator.sandbox.api_drive import LARGE_FILE
from migrator.sandbox.api_mail import mailbox
from migrator.sandbox.app import Sandbox
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.sandbox.tenant import Tenant
from migrator.sandbox.tls import ensure_tls
from tests.fixtures.dovecot import running_dovecot
from tests.graph.configs import dovecot_target, nextcloud_target, sandbox_source
from tests.measured import measured_cli

PASSWORD = "app-password"


def measured_run(root: Path, config: str, label: str) -> dict:
    (root / "migrator.toml").write_text(config)
    start = time.perf_counter()
    done, peak = measured_cli(["run", "--config", str(root / "migrator.toml")], timeout=3 * 3600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{label}: migrator run exited {done.returncode}: {done.stderr[-2000:]}")
    return {"peak_rss_mb": peak, "seconds": elapsed}


def large_file(root: Path, tls: tuple) -> dict:
    with Sandbox(Tenant(seed=5, users=2, large_items=True), tls) as sandbox:
        person = sandbox.tenant.users[0]
        login = person["userPrincipalName"].split("@")[0]
        (root / "password").write_text(PASSWORD)
        with NextcloudServer(root / "nc", users={login: PASSWORD}) as server:
            figures = measured_run(root, f"""
{sandbox_source(root, sandbox, [person["userPrincipalName"]])}
[workloads]
enabled = ["files"]
{nextcloud_target(server.url)}""", "200 MB file")
    return {"bytes": LARGE_FILE, **figures}


def large_mailbox(root: Path, tls: tuple, size: int) -> dict:
    with Sandbox(Tenant(seed=5, users=2, archive_bytes=size), tls) as sandbox:
        person = sandbox.tenant.users[0]
        box = mailbox(sandbox.tenant, person["id"])
        total = sum(box.mime[m].size for m in box.located)
        with running_dovecot(root / "dovecot", {person["userPrincipalName"]: "unused"}) as server:
            figures = measured_run(root, f"""
{sandbox_source(root, sandbox, [person["userPrincipalName"]])}
[workloads]
enabled = ["mail"]
{dovecot_target(root, server)}""", "mailbox")
    return {"bytes": total, "messages": len(box.located), **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailbox-gb", type=float, default=2.0)
    json_option(parser, "memory")
    args = parser.parse_args()
    _, baseline = measured_cli(["--version"], timeout=120)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tls = ensure_tls(root / "tls")
        (root / "file").mkdir()
        for n in range(2):
            (root / f"mail-{n}").mkdir()
        file = large_file(root / "file", tls)
        mail = [large_mailbox(root / f"mail-{n}", tls, int(gb * 1e9)) for n, gb in enumerate((args.mailbox_gb / 10, args.mailbox_gb))]
    figures = {"startup_peak_rss_mb": baseline, "file": file, "mailboxes": mail}
    print(f"`migrator --version` (start-up only)                  peak RSS {baseline:7.1f} MB")
    print(f"one {file['bytes'] / 1e6:,.0f} MB file into Nextcloud                peak RSS {file['peak_rss_mb']:7.1f} MB ({file['seconds']:.0f} s)")
    for box in mail:
        print(f"a {box['bytes'] / 1e9:5.2f} GB mailbox ({box['messages']:3} messages) into Dovecot  peak RSS {box['peak_rss_mb']:7.1f} MB "
              f"({box['seconds']:.0f} s)")
    write_results(args.json, figures)


if __name__ == "__main__":
    main()
