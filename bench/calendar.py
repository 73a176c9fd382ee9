"""Calendars into a local Radicale: the whole engine (Graph sandbox -> plan -> copy -> verify over
CalDAV) against a plain PUT loop of the same iCalendar objects, measured side by side in one run.

The baseline PUTs, over one connection, exactly the objects the engine stored (read back from
Radicale afterwards) into a fresh calendar of another account, with If-None-Match: * as the sink
sends them.

Usage: python -m bench.calendar [--users N] [--json FILE]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import httpx

from bench import json_option, timed_stages, write_results
from migrator.config import load_config
from migrator.sandbox.app import Sandbox
from migrator.sandbox.tenant import Tenant
from migrator.sandbox.tls import ensure_tls
from tests.fixtures.radicale import running_radicale
from tests.graph.configs import sandbox_source

PASSWORD = "bench-secret"
BASELINE = "baseline"
MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>
<C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
</D:prop></D:set></C:mkcalendar>"""


def write_config(root: Path, sandbox: Sandbox, server) -> Path:
    (root / "dav-secret").write_text(PASSWORD)
    (root / "migrator.toml").write_text(f"""
{sandbox_source(root, sandbox)}
[workloads]
enabled = ["calendar"]

[targets.calendar]
kind = "caldav"
url = "{server.url}"
password = {{ file = "dav-secret" }}
""")
    return root / "migrator.toml"


def stored_objects(server, users: list[str]) -> list[bytes]:
    bodies = []
    for user in users:
        with httpx.Client(base_url=server.url, auth=(user, PASSWORD), timeout=60) as client:
            for collection in _hrefs(client.request("PROPFIND", f"/{user}/", headers={"Depth": "1"}).text):
                if collection.rstrip("/") == f"/{user}":
                    continue
                for href in _hrefs(client.request("PROPFIND", collection, headers={"Depth": "1"}).text):
                    if href.endswith(".ics"):
                        bodies.append(client.get(href).content)
    return bodies


def _hrefs(xml: str) -> list[str]:
    return re.findall(r"<(?:\w+:)?href>([^<]+)</(?:\w+:)?href>", xml)


def put_loop(server, objects: list[bytes]) -> float:
    with httpx.Client(base_url=server.url, auth=(BASELINE, PASSWORD), timeout=60) as client:
        client.request("MKCALENDAR", f"/{BASELINE}/calendar/", content=MKCALENDAR).raise_for_status()
        start = time.perf_counter()
        for n, body in enumerate(objects):
            answer = client.put(f"/{BASELINE}/calendar/{n}.ics", content=body,
                                headers={"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"})
            answer.raise_for_status()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    json_option(parser, "calendar")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tenant = Tenant(seed=7, users=args.users)
        members = tenant.department_members(tenant.users[0]["department"])
        locals_ = [u["userPrincipalName"].split("@")[0] for u in members]
        accounts = {name: PASSWORD for name in locals_} | {BASELINE: PASSWORD}
        with Sandbox(tenant, ensure_tls(root / "tls")) as sandbox, running_radicale(root / "radicale", accounts) as server:
            config = load_config(write_config(root, sandbox, server))
            stage_times, results = timed_stages(config)
            objects = stored_objects(server, locals_)
            raw = put_loop(server, objects)
    copied = results["copy"].copy.outcomes["copied"]
    assert copied == len(objects) and results["verify"].verify.outcomes["verified"] == copied, (copied, len(objects), results["verify"].verify)
    n, total_mb, engine = len(objects), sum(len(o) for o in objects) / 1e6, sum(stage_times.values())
    figures = {
        "objects": n, "megabytes": total_mb, "calendars_of": len(members), "put_loop_seconds": raw, "stage_seconds": stage_times,
        "ratio_copy_stage_to_put_loop": raw / stage_times["copy"], "ratio_engine_to_put_loop": raw / engine,
    }
    print(f"{n} calendar objects, {total_mb:.2f} MB, {len(members)} calendars' owners, into a local Radicale")
    print(f"raw PUT loop (objects in memory, one connection)        {n / raw:8.1f} objects/s")
    print(f"engine copy stage (Graph events -> iCalendar -> PUT)    {n / stage_times['copy']:8.1f} objects/s")
    print(f"engine plan + copy + verify (verify re-reads both sides){n / engine:8.1f} objects/s")
    print("stage seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in stage_times.items()))
    print(f"ratio copy stage / PUT loop                             {figures['ratio_copy_stage_to_put_loop']:8.2f}")
    print(f"ratio whole engine / PUT loop                           {figures['ratio_engine_to_put_loop']:8.2f}")
    write_results(args.json, figures)


if __name__ == "__main__":
    main()
