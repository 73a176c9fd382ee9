"""What every local server (of the tests and of `make demo`) needs: a free loopback port, and a stop that ends the server's
whole process group (started with start_new_session), politely first."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _signal_group(process: subprocess.Popen, signo: int) -> None:
    try:
        os.killpg(process.pid, signo)  # started with start_new_session, so its pgid is its pid
    except ProcessLookupError:
        pass


def stop_group(process: subprocess.Popen | None, grace: float = 10) -> None:
    """SIGTERM to the group, SIGKILL when it has not ended within `grace` seconds; safe on None."""
    if process is None or process.poll() is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=grace)
