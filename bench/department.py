"""A department end to end under Microsoft Graph's throttling: every workload of every person read
from the sandbox with its published limits on (4 requests in flight per mailbox, 10,000 per mailbox
per 10 minutes, 20 Teams message reads per second), planned, copied into directory targets and
verified by `migrator run` in a process of its own. The total time is set against the lower bound the throttling itself imposes, from the
requests that had to be made: no client, however clever, finishes sooner.

  bound = max( max over mailboxes of  requests(m) x latency / 4  (+ a window per 10,000 requests),
               Teams message reads / 20 per second )

Every mailbox request takes `--latency` seconds at the sandbox, as at a real server; without that a
local sandbox answers in microseconds and the concurrency limit would cost nothing.

Usage: python -m bench.department [--people N (default 4; 200 for the full department)] [--latency S]
       [--concurrency N] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import json_option, write_results
from migrator.model import WORKLOADS
from migrator.sandbox.app import Sandbox
from migrator.sandbox.limits import ThrottleSettings
from migrator.sandbox.tenant import Tenant
from migrator.sandbox.tls import ensure_tls
from tests.graph.configs import sandbox_source
from tests.measured import ROOT, measured_cli


def count_admitted(tenant: Tenant) -> tuple[Counter, Counter]:
    """Wraps the sandbox's limiter to count the requests it admitted per mailbox and Teams reads."""
    limiter, mailboxes, teams = tenant.limiter, Counter(), Counter()
    admit_mailbox, admit_teams = limiter.mailbox, limiter.teams_message_read

    @contextlib.contextmanager
    def mailbox(app, box):
        with admit_mailbox(app, box):
            mailboxes[box] += 1  # counted once admitted: a request answered 429 served nothing
            yield

    def teams_message_read(app):
        admit_teams(app)
        teams[app] += 1

    limiter.mailbox, limiter.teams_message_read = mailbox, teams_message_read
    return mailboxes, teams


def lower_bound(mailboxes: Counter, teams: Counter, throttle: ThrottleSettings, latency: float) -> dict:
    per_mailbox = {
        box: n * latency / throttle.mailbox_concurrency + (math.ceil(n / throttle.mailbox_requests) - 1) * throttle.mailbox_window
        for box, n in mailboxes.items()
    }
    mailbox_bound = max(per_mailbox.values(), default=0.0)
    teams_bound = sum(teams.values()) / throttle.teams_messages_per_second
    return {"mailbox_bound_seconds": mailbox_bound, "teams_bound_seconds": teams_bound, "bound_seconds": max(mailbox_bound, teams_bound)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=4, help="people in the department (200 for the full benchmark)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds each mailbox request takes at the sandbox")
    parser.add_argument("--concurrency", type=int, default=64, help="the engine's items in flight ([run] concurrency)")
    json_option(parser, "department")
    args = parser.parse_args()
    throttle = ThrottleSettings(enabled=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tenant = Tenant(seed=7, users=args.people, throttle=throttle)
        tenant.limiter.latency = args.latency
        mailboxes, teams = count_admitted(tenant)
        with Sandbox(tenant, ensure_tls(root / "tls")) as sandbox:
            targets = "\n".join(f'[targets.{w}]\nkind = "directory"\npath = "out/{w}"\n' for w in WORKLOADS)
            (root / "migrator.toml").write_text(f"""
{sandbox_source(root, sandbox)}
[workloads]
enabled = {json.dumps(list(WORKLOADS))}

{targets}
[run]
concurrency = {args.concurrency}
per_mailbox = {throttle.mailbox_concurrency}
""")
            config = ["--config", str(root / "migrator.toml")]
            # The engine runs in a process of its own, as it would against Microsoft's servers: the
            # sandbox's work (generating, serving, throttling) is not charged to it.
            start = time.perf_counter()
            done, peak_mb = measured_cli(["run", *config], timeout=6 * 3600)
            elapsed = time.perf_counter() - start
            report = subprocess.run([sys.executable, "-m", "migrator", "report", "--format", "json", *config],
                                    capture_output=True, text=True, check=True, cwd=ROOT)
        throttled = dict(tenant.limiter.throttled)
    totals = json.loads(report.stdout)["totals"]
    bound = lower_bound(mailboxes, teams, throttle, args.latency)
    figures = {
        "people": args.people, "latency_seconds": args.latency, "engine_concurrency": args.concurrency, "exit_code": done.returncode,
        "items": totals["items"], "items_verified": totals["verified"], "items_failed": totals["failed"], "bytes": totals["bytes_moved"],
        "mailbox_requests": sum(mailboxes.values()), "busiest_mailbox_requests": max(mailboxes.values(), default=0),
        "teams_message_reads": sum(teams.values()), "answered_429": throttled, "engine_peak_rss_mb": peak_mb,
        "total_seconds": elapsed, **bound, "fraction_of_bound": bound["bound_seconds"] / elapsed,
    }
    print(f"{args.people} people, every workload, Graph throttling on, {args.latency * 1000:.0f} ms per mailbox request, "
          f"engine concurrency {args.concurrency}, `migrator run` in its own process into directory targets")
    print(f"items {totals['items']:,}, verified {totals['verified']:,} ({totals['bytes_moved'] / 1e6:,.1f} MB), failed {totals['failed']}; "
          f"exit code {done.returncode}; the engine's peak RSS {peak_mb:.0f} MB")
    print(f"requests admitted: {figures['mailbox_requests']:,} to {len(mailboxes)} mailboxes (busiest {figures['busiest_mailbox_requests']:,}), "
          f"{figures['teams_message_reads']:,} Teams message reads; answered 429: {throttled or 'none'}")
    print(f"throttle-imposed lower bound {bound['bound_seconds']:8.1f} s (mailboxes {bound['mailbox_bound_seconds']:.1f} s, "
          f"Teams {bound['teams_bound_seconds']:.1f} s)")
    print(f"total time (plan + copy + verify) {elapsed:8.1f} s")
    print(f"fraction bound / total             {figures['fraction_of_bound']:8.2f}")
    write_results(args.json, figures)


if __name__ == "__main__":
    main()
