"""`migrator` in a process of its own, reporting that process's peak resident set: the figure a
memory claim rests on (tests and benchmarks alike)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# VmHWM of the child itself: ru_maxrss would carry the forking parent's peak.
MEASURED_RUN = """
import sys
from pathlib import Path
from migrator.cli import main
code = main(sys.argv[1:])
peak = next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
print(f"VmHWM {peak / 1024:.1f}", file=sys.stderr)
sys.exit(code)
"""


def measured_cli(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    """Runs `migrator <args>`; returns the finished process and its peak RSS in MB."""
    done = subprocess.run([sys.executable, "-c", MEASURED_RUN, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if "VmHWM" not in done.stderr:
        raise AssertionError(f"migrator {' '.join(args)} ended without its figure (exit {done.returncode}): {done.stderr[-2000:]}")
    return done, float(done.stderr.rsplit("VmHWM", 1)[1].split()[0])
