"""A 200 MB OneDrive file through `migrator run` in its own process into the Nextcloud stand-in:
the migrating process's peak memory stays far below the file's size, and a chunk cut off mid-way
is resumed by the engine's retry without sending the chunks the server already holds."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from migrator.sandbox.api_drive import LARGE_FILE, onedrive
from migrator.sandbox.app import Sandbox
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.sandbox.tenant import Tenant
from tests.graph.configs import nextcloud_target, sandbox_source
from tests.measured import measured_cli

PASSWORD = "app-password"


@pytest.fixture
def large_sandbox(tls_files):
    with Sandbox(Tenant(seed=5, users=2, large_items=True), tls_files) as running:
        yield running


class CutWhenChunksArrive(threading.Thread):
    """Arms the stand-in's cut once `after` chunks of an upload are on its disk."""

    def __init__(self, server: NextcloudServer, uploads: Path, after: int) -> None:
        super().__init__(daemon=True)
        self.server, self.uploads, self.after = server, uploads, after
        self.armed_with: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            chunks = [p for p in self.uploads.rglob("*") if p.is_file() and p.name.isdigit()]
            if len(chunks) >= self.after:
                self.armed_with = sorted(p.name for p in chunks)
                self.server.instance.cut_next_upload(1 << 20)
                return
            time.sleep(0.01)


def test_a_200_mb_file_moves_in_bounded_memory_and_a_cut_upload_resumes(tmp_path, large_sandbox):
    person = large_sandbox.tenant.users[0]
    login = person["userPrincipalName"].split("@")[0]
    drive = onedrive(large_sandbox.tenant, person["id"])
    big = next(i for i in drive.items.current() if i.get("size") == LARGE_FILE)
    with NextcloudServer(tmp_path / "nc", users={login: PASSWORD}) as server:
        (tmp_path / "password").write_text(PASSWORD)
        (tmp_path / "migrator.toml").write_text(f"""
{sandbox_source(tmp_path, large_sandbox, [person["userPrincipalName"]])}
[workloads]
enabled = ["files"]
{nextcloud_target(server.url)}
[run]
retry_base_seconds = 0.01
retry_max_seconds = 0.05
""")
        cutter = CutWhenChunksArrive(server, tmp_path / "nc" / "uploads", after=6)
        cutter.start()
        done, peak = measured_cli(["run", "--config", str(tmp_path / "migrator.toml")], timeout=300)
        cutter.stop.set()
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        print(f"200 MB file into Nextcloud: migrating process peak RSS {peak} MB")
        assert peak < 150
        assert cutter.armed_with, "the cut was armed while the upload ran"
        stored = tmp_path / "nc" / "files" / login / "OneDrive" / drive.data.path_of(big["id"])
        digest = hashlib.sha256()
        with stored.open("rb") as handle:
            while piece := handle.read(1 << 20):
                digest.update(piece)
        source = hashlib.sha256()
        for piece in drive.content(big["id"]).chunks():
            source.update(piece)
        assert stored.stat().st_size == LARGE_FILE and digest.hexdigest() == source.hexdigest()
