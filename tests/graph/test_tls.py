"""Certificate checks through the real command line, against the sandbox tenant and the Nextcloud
stand-in, both serving TLS with a CA no system trusts: without --ca-bundle a run stops with one line
naming the server; --insecure-skip-tls-verify moves everything (Graph, sign-in, the download URLs
and the target all unchecked) and every report names that run; runs with --ca-bundle are reported
as verified."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrator.sandbox.app import Sandbox
from migrator.sandbox.nextcloud import NextcloudServer
from migrator.sandbox.tenant import Tenant
from migrator.tls import INSECURE_WARNING
from tests.fixtures.nextcloud import USERS, start_thread_server
from tests.graph.configs import sandbox_source

ERROR_END = "): pass --ca-bundle FILE with the CA that signed it"


@pytest.fixture(scope="module")
def sandbox(tls_files):
    with Sandbox(Tenant(seed=5, users=2), tls_files) as running:
        yield running


@pytest.fixture
def cloud(tmp_path, tls_files):
    """The Nextcloud stand-in over TLS, its certificate signed by the sandbox's CA."""
    with start_thread_server(tmp_path / "nextcloud", tls_dir=tls_files.ca_cert.parent) as server:
        yield server


@dataclass
class Workspace:
    path: Path
    ca_file: str

    def migrator(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "migrator", *args], cwd=self.path, capture_output=True, text=True, check=False, timeout=120)

    def report(self, fmt: str) -> str:
        done = self.migrator("report", "--format", fmt)
        assert done.returncode == 0, done.stderr
        return done.stdout


def workspace(directory: Path, sandbox: Sandbox, cloud: NextcloudServer, trust_source: bool = False) -> Workspace:
    """One user's OneDrive into alice's Nextcloud; no section names a CA unless `trust_source`."""
    directory.mkdir()
    source = sandbox_source(directory, sandbox, [sandbox.tenant.users[0]["userPrincipalName"]])
    if not trust_source:
        source = "\n".join(line for line in source.splitlines() if not line.startswith("ca_bundle"))
    (directory / "alice-password").write_text(USERS["alice"])
    (directory / "migrator.toml").write_text(source + f"""
[workloads]
enabled = ["files"]

[identity]
nextcloud_user = "alice"

[targets.files]
kind = "nextcloud"
url = "{cloud.url}"
password = {{ file = "alice-password" }}
""")
    return Workspace(directory, sandbox.ca_file)


def assert_one_line_naming(done: subprocess.CompletedProcess, server: str) -> None:
    assert done.returncode == 2, done.stderr
    error, hint = done.stderr.splitlines()
    assert error.startswith(f"migrator: error: the TLS certificate of {server} is not trusted (") and error.endswith(ERROR_END), error
    assert hint == "  hint: or set ca_bundle in that server's section of the config; the system's CAs are trusted already"
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_an_untrusted_source_stops_the_run_with_one_line_naming_it(tmp_path, sandbox, cloud):
    work = workspace(tmp_path / "work", sandbox, cloud)
    assert_one_line_naming(work.migrator("run"), sandbox.base)
    assert json.loads(work.report("json"))["runs"] == [], "it stopped before a run began"


def test_an_untrusted_target_stops_the_run_with_one_line_naming_it(tmp_path, sandbox, cloud):
    work = workspace(tmp_path / "work", sandbox, cloud, trust_source=True)
    assert_one_line_naming(work.migrator("run"), cloud.url)
    assert json.loads(work.report("json"))["runs"] == [], "it stopped before a run began"


def test_runs_with_the_ca_bundle_are_reported_as_verified(tmp_path, sandbox, cloud):
    work = workspace(tmp_path / "work", sandbox, cloud)
    done = work.migrator("--ca-bundle", work.ca_file, "run")
    assert done.returncode == 0, done.stderr
    assert "copied 55" in done.stdout and "verified 55" in done.stdout and done.stderr == ""
    report = json.loads(work.report("json"))
    assert report["tls_unverified_runs"] == [] and [r["tls_verified"] for r in report["runs"]] == [True]
    assert "TLS certificates were verified in every run (1 runs)" in work.report("table")
    assert {row["tls_unverified_runs"] for row in csv.DictReader(io.StringIO(work.report("csv")))} == {""}


def test_without_verification_everything_moves_and_every_report_names_the_run(tmp_path, sandbox, cloud):
    work = workspace(tmp_path / "work", sandbox, cloud)
    done = work.migrator("--insecure-skip-tls-verify", "run")
    assert done.returncode == 0, done.stderr
    assert "copied 55" in done.stdout and "verified 55" in done.stdout, "Graph, its download URLs and Nextcloud were all read unchecked"
    assert done.stderr.splitlines() == [INSECURE_WARNING]
    checked = work.migrator("--ca-bundle", work.ca_file, "verify")  # a later run that checks is reported apart
    assert checked.returncode == 0, checked.stderr

    report = json.loads(work.report("json"))
    assert report["tls_unverified_runs"] == [1]
    assert [(r["run_id"], r["command"], r["tls_verified"]) for r in report["runs"]] == [(1, "run", False), (2, "verify", True)]
    assert "TLS certificates were NOT verified in run 1 (--insecure-skip-tls-verify)" in work.report("table")
    assert {row["tls_unverified_runs"] for row in csv.DictReader(io.StringIO(work.report("csv")))} == {"1"}
    assert '<p class="bad">TLS certificates were NOT verified in run 1 (--insecure-skip-tls-verify)</p>' in work.report("html")
    audit = work.migrator("audit", "--expect-head", report["chain"]["head"])
    assert audit.returncode == 0, "the record of the unverified run is inside the intact audit chain"
