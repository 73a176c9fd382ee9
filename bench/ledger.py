"""The ledger at scale: planning, claiming, recording and reporting a million items, on SQLite and
(with --postgres) on a PostgreSQL the benchmark starts itself, with the database's size at the end.

Each stage goes through the ledger's own methods, the ones the planner, copier and report call:
apply_plan per container, claim in the copier's batch size, record_copied_many per claimed batch,
build_report (which also recomputes the audit chain).

Usage: python -m bench.ledger [--items N] [--per-container N] [--postgres] [--json FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from bench import json_option, write_results
from migrator.report import build_report
from state.ledger import Ledger

CLAIM_BATCH = 128  # the copier's claim size at its default concurrency (16 x 8)
USERS_PER_DEPARTMENT = 200


def run_stages(url: str, items: int, per_container: int) -> dict:
    ledger = Ledger(url)
    figures: dict = {"items": items}
    try:
        run_id = ledger.start_run("bench")
        containers = max(1, items // per_container)
        start = time.perf_counter()
        for c in range(containers):
            upn = f"user{c // 10}@bench.example"
            scope = ledger.upsert_scope(upn, f"dept{c // (10 * USERS_PER_DEPARTMENT)}", "mail", upn)
            container, _ = ledger.upsert_container(scope, f"folder{c}", f"Folder {c}", ("INBOX", str(c)))
            rows = [(f"m{c}-{n}", "ck1", "message", f"message {n}", 2000 + n) for n in range(per_container)]
            ledger.apply_plan(run_id, container, rows, [])
        figures["plan_seconds"] = time.perf_counter() - start

        start = time.perf_counter()
        again = ledger.start_run("bench-replan")
        for c in range(min(containers, 20)):  # a delta pass that finds nothing new: the known-items lookup per container
            found = ledger.find_container(f"user{c // 10}@bench.example", "mail", f"folder{c}")
            ledger.known_items(found[0])
        figures["replan_20_containers_seconds"] = time.perf_counter() - start
        ledger.finish_run(again, "completed")

        claim_seconds = record_seconds = 0.0
        claims = after = 0
        while True:
            start = time.perf_counter()
            batch = ledger.claim(run_id, 5, None, None, after_id=after, limit=CLAIM_BATCH)
            claim_seconds += time.perf_counter() - start
            if not batch:
                break
            claims += 1
            start = time.perf_counter()
            ledger.record_copied_many(run_id, [
                {"item_id": w.item_id, "dest_key": f"<{w.source_id}@bench>", "dest_id": str(w.item_id), "etag": None,
                 "size": w.size or 0, "content_hash": "0" * 64, "healed": False}
                for w in batch
            ])
            record_seconds += time.perf_counter() - start
            after = batch[-1].item_id
        figures |= {"claim_seconds": claim_seconds, "claims": claims, "record_copied_seconds": record_seconds}

        start = time.perf_counter()
        report = build_report(ledger)
        figures["report_seconds"] = time.perf_counter() - start
        assert report["totals"]["copied"] == items, report["totals"]
        figures["events"] = ledger.audit().events
        ledger.finish_run(run_id, "completed")
        figures["database_bytes"] = database_size(ledger)
    finally:
        ledger.close()
    return figures


def database_size(ledger: Ledger) -> int:
    if ledger.sqlite_path is not None:
        with ledger.engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        return sum(p.stat().st_size for p in ledger.sqlite_path.parent.glob(ledger.sqlite_path.name + "*") if not p.name.endswith(".lock"))
    with ledger.engine.connect() as connection:
        return connection.execute(text("SELECT pg_database_size(current_database())")).scalar()


def show(name: str, f: dict) -> None:
    n = f["items"]
    print(f"{name}: {n:,} items, {f['events']:,} audit events, database {f['database_bytes'] / 1e6:,.0f} MB ({f['database_bytes'] / n:.0f} bytes/item)")
    print(f"  plan (upsert)        {f['plan_seconds']:8.1f} s  {n / f['plan_seconds']:10,.0f} items/s")
    print(f"  claim ({f['claims']:,} x {CLAIM_BATCH}) {f['claim_seconds']:8.1f} s  {n / f['claim_seconds']:10,.0f} items/s  "
          f"{1000 * f['claim_seconds'] / max(1, f['claims']):.1f} ms per claim")
    print(f"  record copied        {f['record_copied_seconds']:8.1f} s  {n / f['record_copied_seconds']:10,.0f} items/s (one transaction per claimed batch)")
    print(f"  report (incl. audit) {f['report_seconds']:8.1f} s")
    print(f"  delta lookup of 20 containers {f['replan_20_containers_seconds']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--per-container", type=int, default=500)
    parser.add_argument("--postgres", action="store_true", help="also run on a PostgreSQL started for the benchmark (Debian package postgresql)")
    json_option(parser, "ledger")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = run_stages(f"sqlite:///{Path(tmp) / 'ledger.db'}", args.items, args.per_container)
    show("SQLite", results["sqlite"])
    if args.postgres:
        from tests.fixtures.postgres import running_postgres

        server = running_postgres()
        try:
            results["postgresql"] = run_stages(server.new_database(), args.items, args.per_container)
        finally:
            server.stop()
        show("PostgreSQL", results["postgresql"])
        s, p = results["sqlite"], results["postgresql"]
        print("ratios PostgreSQL / SQLite (time): " + ", ".join(
            f"{k.removesuffix('_seconds')} {p[k] / s[k]:.2f}" for k in ("plan_seconds", "claim_seconds", "record_copied_seconds", "report_seconds")))
    write_results(args.json, results)


if __name__ == "__main__":
    main()
