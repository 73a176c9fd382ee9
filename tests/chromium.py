"""Headless Chromium (Debian's `chromium`, installed by `make test`) renders a page to PNG or PDF.
A missing or failing browser is an error with the fix in its message, never a silent pass."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "install it with `apt-get install -y chromium` (`make test` does this through DEB_PACKAGES)"


class ChromiumError(RuntimeError):
    pass


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise ChromiumError(f"headless Chromium is needed to render the HTML report and was not found: {INSTALL_HINT}")


def _run(page: Path, *flags: str) -> None:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        command = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                   "--hide-scrollbars", f"--user-data-dir={profile}", *flags, page.resolve().as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
        except subprocess.TimeoutExpired:
            raise ChromiumError(f"chromium did not finish rendering {page} within 90 s") from None
    if done.returncode != 0:
        raise ChromiumError(f"chromium exited with {done.returncode} rendering {page}: {done.stderr.strip()[-1500:]}")


def screenshot(page: Path, png: Path, width: int, height: int) -> Path:
    png.unlink(missing_ok=True)
    _run(page, f"--window-size={width},{height}", f"--screenshot={png}")
    if not png.is_file():
        raise ChromiumError(f"chromium exited cleanly but wrote no screenshot at {png}")
    return png


def print_to_pdf(page: Path, pdf: Path) -> Path:
    pdf.unlink(missing_ok=True)
    _run(page, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    if not pdf.is_file():
        raise ChromiumError(f"chromium exited cleanly but wrote no PDF at {pdf}")
    return pdf
