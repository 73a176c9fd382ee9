"""The Nextcloud stand-in as a process and over TLS: `python -m migrator.sandbox.nextcloud` prints
its URL, a 200 MB upload streams through it in bounded memory, HTTPS works with the sandbox CA."""

from __future__ import annotations

import ssl

import httpx
import pytest

from migrator.sandbox.nextcloud.__main__ import main, parse
from tests.fixtures.nextcloud import (  # noqa: F401
    ADMIN,
    client,
    dav_url,
    nextcloud_process_fixture,
    propfind,
    start_thread_server,
)

UPLOAD = 200 * 1024 * 1024
BLOCK = b"\xa5" * (1024 * 1024)


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the process's peak resident set so far, as the kernel counts it."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def test_a_200_mb_put_streams_through_the_server_in_bounded_memory(nextcloud_process):
    with client(nextcloud_process.url, "alice", timeout=60) as http:
        assert http.get("/status.php").json()["productname"] == "Nextcloud"
        assert http.put(dav_url(nextcloud_process.url, "alice", "warm-up.bin"), content=BLOCK).status_code == 201
        before = peak_rss_bytes(nextcloud_process.pid)
        url = dav_url(nextcloud_process.url, "alice", "big.bin")
        response = http.put(url, content=(BLOCK for _ in range(UPLOAD // len(BLOCK))),
                            headers={"Content-Length": str(UPLOAD), "X-OC-MTime": "1650000000"})
        assert response.status_code == 201, response.text
        growth = peak_rss_bytes(nextcloud_process.pid) - before
        assert growth < 24 * 1024 * 1024, f"server peak memory grew by {growth / 2**20:.1f} MiB during a 200 MB upload"
        size = propfind(http, url, ["d:getcontentlength"], depth="0")["/remote.php/dav/files/alice/big.bin"]
        assert size["d:getcontentlength"][1].text == str(UPLOAD)
    assert (nextcloud_process.root / "files" / "alice" / "big.bin").stat().st_size == UPLOAD


def test_chunks_are_stored_and_assembled_in_bounded_memory(nextcloud_process):
    chunk, count = 16 * 1024 * 1024, 5
    with client(nextcloud_process.url, "alice", timeout=60) as http:
        http.put(dav_url(nextcloud_process.url, "alice", "warm-up.bin"), content=BLOCK)
        before = peak_rss_bytes(nextcloud_process.pid)
        target = dav_url(nextcloud_process.url, "alice", "assembled.bin")
        folder = f"{nextcloud_process.url}/remote.php/dav/uploads/alice/big"
        assert http.request("MKCOL", folder, headers={"Destination": target}).status_code == 201
        for number in range(1, count + 1):
            sent = http.put(f"{folder}/{number}", content=(BLOCK for _ in range(chunk // len(BLOCK))),
                            headers={"Destination": target, "Content-Length": str(chunk)})
            assert sent.status_code == 201
        assert http.request("MOVE", f"{folder}/.file", headers={"Destination": target}).status_code == 201
        growth = peak_rss_bytes(nextcloud_process.pid) - before
        assert growth < 24 * 1024 * 1024, f"server peak memory grew by {growth / 2**20:.1f} MiB storing and assembling 80 MB"
    assert (nextcloud_process.root / "files" / "alice" / "assembled.bin").stat().st_size == chunk * count


def test_tls_with_the_sandbox_ca(tmp_path):
    with start_thread_server(tmp_path / "nc", tls_dir=tmp_path / "tls") as server:
        assert server.url.startswith("https://") and server.ca_file
        with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=server.ca_file), auth=ADMIN) as http:
            assert http.get("/status.php").json()["installed"] is True
            assert http.put(dav_url(server.url, ADMIN[0], "x.txt"), content=b"x").status_code == 201


def test_the_command_line_refuses_malformed_accounts(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--root", str(tmp_path), "--users", "alice-without-password"])
    assert exited.value.code == 2
    assert "expected name:password" in capsys.readouterr().err
    parsed = parse(["--root", str(tmp_path), "--users", "a:x:y,b:z", "--admin", "root:pw", "--groups", "t=a,b;u=b",
                    "--no-public-links", "--quota", "1000"])
    assert parsed.users == {"a": "x:y", "b": "z"} and parsed.admin == ("root", "pw")
    assert parsed.groups == {"t": ["a", "b"], "u": ["b"]} and parsed.public_links is False and parsed.quota == 1000
