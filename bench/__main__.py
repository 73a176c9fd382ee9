"""Engine overhead: the full plan -> copy -> verify path into a directory target, against a raw
loop that writes the same bytes to the same kind of files, measured side by side in one run.

Usage: python -m bench [--items N] [--size BYTES] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench import json_option, write_results
from connectors.directory import DirectorySink
from connectors.memory import MemorySource
from migrator.config import parse_config
from migrator.job import Job, Selection
from migrator.model import Container, User

UPN = "bench@example.org"


def build_source(items: int, size: int) -> MemorySource:
    source = MemorySource()
    source.add_user(User(UPN, "Bench", "Bench", "b"))
    source.add_container(UPN, Container("files", "Files", "files", ("Files",)))
    for n in range(items):
        source.put_item(UPN, "files", f"item-{n}", os.urandom(size), kind="file", name=f"file-{n}.bin")
    return source


def raw_loop(source: MemorySource, root: Path) -> float:
    folder = root / "bench" / "Files"
    folder.mkdir(parents=True)
    start = time.perf_counter()
    for (_, source_id), data in source.items_of(UPN, "files").items():
        partial, final = folder / f".part-{source_id}", folder / source_id
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, final)
    return time.perf_counter() - start


def engine(source: MemorySource, root: Path) -> float:
    config = parse_config({
        "source": {"kind": "example"},
        "ledger": {"url": f"sqlite:///{root / 'ledger.db'}"},
        "workloads": {"enabled": ["files"]},
        "targets": {"files": {"kind": "directory", "path": str(root / "target")}},
    })
    job = Job(config, source=source, sinks={"files": DirectorySink(root / "target")})
    start = time.perf_counter()
    try:
        result = asyncio.run(job.run("bench", Selection(department="Bench", workloads=("files",))))
    finally:
        job.close()
    elapsed = time.perf_counter() - start
    assert result.verify.outcomes["verified"] == len(source.items_of(UPN, "files")), result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096)
    json_option(parser, "overhead")
    args = parser.parse_args()
    source = build_source(args.items, args.size)
    with tempfile.TemporaryDirectory() as raw_dir, tempfile.TemporaryDirectory() as engine_dir:
        raw = raw_loop(source, Path(raw_dir))
        full = engine(source, Path(engine_dir))
    print(f"items {args.items} x {args.size} bytes into a local directory")
    print(f"raw write loop            {args.items / raw:9.0f} items/s")
    print(f"engine plan+copy+verify   {args.items / full:9.0f} items/s")
    print(f"ratio engine/raw          {raw / full:9.2f}")
    write_results(args.json, {"items": args.items, "size": args.size, "seconds": {"raw_loop": raw, "engine": full}, "ratio_engine_vs_raw": raw / full})


if __name__ == "__main__":
    main()
