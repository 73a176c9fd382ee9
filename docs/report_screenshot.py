"""Takes the README's picture of the HTML report (docs/report.png): the example tenant's three
departments moved into local folders, the target then damaged in three ways, `migrator verify`, and
the report rendered by headless Chromium.

    .venv/bin/python docs/report_screenshot.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chromium import screenshot  # after the path is set

WIDTH, HEIGHT = 1000, 1300


def migrator(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migrator", *args], cwd=work, capture_output=True, text=True, check=False, timeout=300)


def build(work: Path) -> Path:
    migrator(work, "init")
    for department in ("Finance", "Legal", "Communications"):
        migrator(work, "run", "--department", department)
    files = sorted(p for p in (work / "target" / "files").rglob("*") if p.is_file())
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes() + b" changed at the target")
    (files[2].parent / "placed-by-hand.txt").write_text("not written by any run\n")
    for department in ("Finance", "Legal", "Communications"):
        print(migrator(work, "verify", "--department", department).stdout, end="")
    page = work / "report.html"
    done = migrator(work, "report", "--format", "html", "-o", str(page))
    if done.returncode != 0:
        raise SystemExit(f"report failed: {done.stderr}")
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-shot-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        png = screenshot(build(work), ROOT / "docs" / "report.png", WIDTH, HEIGHT)
        print(f"wrote {png.relative_to(ROOT)} ({WIDTH}x{HEIGHT})")


if __name__ == "__main__":
    main()
