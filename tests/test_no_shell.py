"""The tool never starts a process with item data: its product code (the sandbox and its local
server launchers aside, which serve tests and the demo) starts no process at all."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("migrator", "connectors", "mappings", "state")
OUTSIDE = (ROOT / "migrator" / "sandbox",)  # stand-ins for Microsoft and local servers, started by tests and `migrator demo`
PROCESS_MODULES = {"subprocess", "pty", "pexpect"}
PROCESS_CALLS = {"system", "popen", "execv", "execve", "execvp", "execl", "execlp", "spawnv", "spawnl", "posix_spawn", "posix_spawnp", "startfile"}


def offences(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in PROCESS_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PROCESS_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and node.attr in PROCESS_CALLS and isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append(f"os.{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr in ("create_subprocess_shell", "create_subprocess_exec"):
            found.append(f"asyncio.{node.attr}")
    return [f"{path.relative_to(root)}: {what}" for what in found]


def product_files() -> list[Path]:
    return [p for package in PRODUCT for p in (ROOT / package).rglob("*.py") if not any(p.is_relative_to(o) for o in OUTSIDE)]


def test_product_code_starts_no_process():
    files = product_files()
    assert len(files) > 50, "the scan sees the product's modules"
    assert [o for p in files for o in offences(p)] == []


def test_the_scan_finds_a_process_started(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os, subprocess\nfrom subprocess import run\nos.system('x')\nasync def f(loop):\n    await loop.create_subprocess_shell('x')\n")
    assert offences(sample, tmp_path) == ["sample.py: import subprocess", "sample.py: from subprocess import ...", "sample.py: os.system",
                                          "sample.py: asyncio.create_subprocess_shell"]
