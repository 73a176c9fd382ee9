"""What every local server (of the tests and of `make demo`) needs: a free loopback port, and a stop that ends the server's
whole process group (started with start_new_session), politely first."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

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


class GroupProcess:
    """Mixed into a server's dataclass, which has `root` (its directory) and `process`: its log, a
    start in a process group of its own, a wait for it to answer, a stop that ends the group, and a
    restart of a stopped server on its configuration and storage (as after a crash or a reboot)."""

    LOG = "server.log"
    NAME = "server"
    START_TIMEOUT = 20.0
    root: Path
    process: subprocess.Popen | None
    _launched: tuple[list[str], Path | None, Path | None] | None = None

    def answers(self) -> bool:
        """True once the server serves its clients."""
        raise NotImplementedError

    @property
    def log_file(self) -> Path:
        return self.root / self.LOG

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log written)"

    def launch(self, command: list[str], output: Path | None = None, cwd: Path | None = None, append: bool = False) -> None:
        """Starts `command` with its output in `output` (the log by default); ended at interpreter exit at the latest."""
        self._launched = (command, output, cwd)
        with open(output or self.log_file, "ab" if append else "wb") as sink:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        atexit.register(self.stop)

    def wait_until(self, answers: Callable[[], bool], timeout: float) -> None:
        """Returns once `answers()`; stops the server and raises with its log tail when it exits or times out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                break
            if answers():
                return
            time.sleep(0.05)
        code = self.process.poll() if self.process else None
        self.stop()
        state = f"exited with {code}" if code is not None else f"not answering after {timeout:.0f} s"
        raise RuntimeError(f"{self.NAME} {state}; log tail:\n{self.log_tail()}")

    def start(self, command: list[str], output: Path | None = None, cwd: Path | None = None) -> None:
        """Launches `command` and returns once the server answers."""
        self.launch(command, output, cwd)
        self.wait_until(self.answers, self.START_TIMEOUT)

    def terminate(self, grace: float = 10) -> None:
        """Ends the server's whole process group (SIGTERM, SIGKILL after `grace` seconds), leaving its files for `restart`;
        safe to call twice."""
        process, self.process = self.process, None
        stop_group(process, grace)

    def restart(self) -> None:
        """Starts a terminated server again with the same command: its configuration, port and storage. Its log goes on."""
        if self.process is not None or self._launched is None:
            raise RuntimeError(f"{self.NAME} is running or was never launched")
        self.launch(*self._launched, append=True)
        self.wait_until(self.answers, self.START_TIMEOUT)

    def stop(self) -> None:
        """Ends the server for good; safe to call twice."""
        self.terminate()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
