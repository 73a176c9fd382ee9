"""Files into a local WsgiDAV: the whole engine (Graph sandbox -> plan -> copy -> verify over WebDAV)
against a raw streamed PUT loop and `rclone copy` of the same tree into the same server, side by
side in one run; once for a tree of many small files and once for a few large ones.

The baselines read the tree from local disk, the engine from the sandbox's Graph API (download
URLs, quickXorHash checked) in the same process, so the ratio is what the engine costs on top.

Usage: python -m bench.files [--small N] [--large N] [--large-mb MB] [--json FILE]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from bench import json_option, timed_stages, write_results
from mappings.file_names import NameRules, legal_path
from migrator.config import load_config
from migrator.sandbox.api_drive import onedrive
from migrator.sandbox.app import Sandbox
from migrator.sandbox.tenant import Tenant
from migrator.sandbox.tls import ensure_tls
from tests.fixtures.wsgidav import running_wsgidav
from tests.graph.configs import sandbox_source

PASSWORD = "bench-secret"


def fill(drive, count: int, size: int, seed: int) -> None:
    rng = random.Random(seed)
    for n in range(count):
        drive.add_file(rng, "root", f"bench-{n:05d}.bin", rng.randbytes(size))


def materialise(sandbox, user: dict, into: Path) -> tuple[int, int]:
    """The user's drive as local files under their legal names; (files, bytes)."""
    drive = onedrive(sandbox.tenant, user["id"])
    files = total = 0
    for item in drive.items.current():
        if "file" not in item:
            continue
        legal, _ = legal_path(drive.data.path_of(item["id"]).split("/"), NameRules.nextcloud_defaults())
        path = into.joinpath(*legal)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            for chunk in drive.content(item["id"]).chunks():
                handle.write(chunk)
        files, total = files + 1, total + path.stat().st_size
    return files, total


def raw_put_loop(url: str, user: str, tree: Path) -> float:
    start = time.perf_counter()
    with httpx.Client(base_url=url, auth=(user, PASSWORD), timeout=300) as client:
        client.request("MKCOL", f"/{user}/raw")
        for folder in sorted(p for p in tree.rglob("*") if p.is_dir()):
            client.request("MKCOL", "/" + user + "/raw/" + quote(str(folder.relative_to(tree))))
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            with path.open("rb") as handle:
                answer = client.put("/" + user + "/raw/" + quote(str(path.relative_to(tree))), content=handle,
                                    headers={"Content-Length": str(path.stat().st_size)})
            answer.raise_for_status()
    return time.perf_counter() - start


def rclone_copy(url: str, user: str, tree: Path) -> float:
    obscured = subprocess.run(["rclone", "obscure", PASSWORD], capture_output=True, text=True, check=True).stdout.strip()
    start = time.perf_counter()
    subprocess.run(["rclone", "copy", str(tree), f":webdav:/{user}/rclone", f"--webdav-url={url}", f"--webdav-user={user}",
                    f"--webdav-pass={obscured}", "--webdav-vendor=other", "--transfers=4", "-q"], check=True)
    return time.perf_counter() - start


def write_config(root: Path, sandbox: Sandbox, server, upn: str) -> Path:
    (root / "dav-secret").write_text(PASSWORD)
    (root / "migrator.toml").write_text(f"""
{sandbox_source(root, sandbox, [upn])}
[workloads]
enabled = ["files"]

[targets.files]
kind = "webdav"
url = "{server.url}"
home = "/{{user}}"
password = {{ file = "dav-secret" }}
""")
    return root / "migrator.toml"


def scenario(name: str, count: int, size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tenant = Tenant(seed=7, users=2)
        user = tenant.users[0]
        login = user["userPrincipalName"].split("@")[0]
        with Sandbox(tenant, ensure_tls(root / "tls")) as sandbox, \
                running_wsgidav(root / "dav", {login: PASSWORD, "baseline": PASSWORD}) as server:
            fill(onedrive(tenant, user["id"]), count, size, seed=count)
            files, total = materialise(sandbox, user, root / "tree")
            raw = raw_put_loop(server.url, "baseline", root / "tree")
            clone = rclone_copy(server.url, "baseline", root / "tree")
            config = load_config(write_config(root, sandbox, server, user["userPrincipalName"]))
            stage_times, results = timed_stages(config)
            shutil.rmtree(root / "tree")
    copied = results["copy"].copy.outcomes["copied"]
    assert results["verify"].verify.outcomes["mismatch"] == 0, results["verify"].verify.outcomes
    engine, copy = sum(stage_times.values()), stage_times["copy"]
    mb = total / 1e6
    print(f"\n{name}: {files} files, {mb:.1f} MB (engine copied {copied} items incl. folders) into a local WsgiDAV")
    rows = [("raw streamed PUT loop, one connection", raw), ("rclone copy --transfers 4", clone),
            ("engine copy stage (Graph download -> PUT)", copy), ("engine plan + copy + verify (re-reads)", engine)]
    for label, seconds in rows:
        print(f"  {label:44s} {files / seconds:8.1f} files/s {mb / seconds:8.2f} MB/s")
    print(f"  ratio copy stage / raw PUT loop {raw / copy:6.2f}   / rclone {clone / copy:6.2f}")
    print(f"  ratio whole engine / raw PUT loop {raw / engine:4.2f}   / rclone {clone / engine:6.2f}")
    return {"files": files, "bytes": total, "seconds": {"raw_put": raw, "rclone": clone, **stage_times},
            "ratio_copy_vs_raw": raw / copy, "ratio_copy_vs_rclone": clone / copy, "ratio_engine_vs_raw": raw / engine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000, help="files of 4 KiB in the many-small-files tree")
    parser.add_argument("--large", type=int, default=4, help="files in the large-files tree")
    parser.add_argument("--large-mb", type=int, default=50)
    json_option(parser, "files")
    args = parser.parse_args()
    if shutil.which("rclone") is None:
        raise SystemExit("rclone is not installed: apt-get install rclone (make bench does it)")
    figures = {"small": scenario("many small files", args.small, 4096),
               "large": scenario("a few large files", args.large, args.large_mb * 1_000_000)}
    write_results(args.json, figures)


if __name__ == "__main__":
    main()
