"""`make demo` end to end, through the function it calls: the department arrives complete in real
servers (counts per workload from the ledger's report, no failures), and one item per workload is read
back from its server, byte for byte where the ledger keeps a hash."""

from __future__ import annotations

import hashlib
import imaplib
import io
import ssl
from urllib.parse import quote

import httpx
from rich.console import Console

from connectors.imap import parse_dest_id
from migrator.demo import run_demo
from migrator.demo_targets import IMAP_MASTER, WORKLOADS, DemoTargets
from migrator.report import build_report
from migrator.sandbox.api_mail import mailbox
from state.ledger import Ledger
from state.queries import CopiedItem


def app_password(targets: DemoTargets, account: str) -> str:
    lines = (targets.secrets / "app-passwords.csv").read_text().splitlines()
    return dict(line.split(",", 1) for line in lines)[account]


def read_mail(targets: DemoTargets, item: CopiedItem) -> bytes:
    if targets.dovecot is None:  # the Maildir, where Dovecot is not installed
        return next(p for p in (targets.maildir / item.target_owner).rglob("*") if p.is_file() and p.parent.name in ("cur", "new")).read_bytes()
    mailbox_name, _, uid = parse_dest_id(item.dest_id)
    master = (targets.secrets / "imap-master-password").read_text().strip()
    context = ssl.create_default_context(cafile=targets.dovecot.ca_file)
    with imaplib.IMAP4_SSL(targets.dovecot.host, targets.dovecot.port, ssl_context=context) as imap:
        imap.login(f"{item.target_owner}*{IMAP_MASTER}", master)
        imap.select('"' + mailbox_name + '"', readonly=True)
        status, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert status == "OK" and data[0] is not None, (status, data)
        return data[0][1]


def read_dav(base_url: str, targets: DemoTargets, item: CopiedItem) -> bytes:
    answer = httpx.get(base_url + item.dest_id, auth=(item.target_owner, app_password(targets, item.target_owner)), timeout=30)
    assert answer.status_code == 200, (item.dest_id, answer.status_code)
    return answer.content


def read_chat(targets: DemoTargets, item: CopiedItem) -> dict:
    assert targets.synapse is not None
    room, event = item.dest_id.split("/", 1)
    token = (targets.secrets / "matrix-as-token").read_text().strip()
    answer = httpx.get(f"{targets.synapse.url}/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event)}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def read_back(targets: DemoTargets, found: dict) -> None:
    """One copied item per workload, as its server returns it now, checked against what the ledger recorded."""
    ledger = Ledger(f"sqlite:///{targets.workdir / 'migration.db'}")
    try:
        copied = ledger.copied_items(None, None, limit=100_000)
    finally:
        ledger.close()
    first = {w: next(i for i in copied if i.workload == w and (w != "files" or i.size)) for w in WORKLOADS}
    body = read_mail(targets, first["mail"])
    if targets.dovecot is not None:
        found["mail"] = hashlib.sha256(body).hexdigest() == first["mail"].content_hash
    else:  # some Maildir message: headers, a blank line, a body
        found["mail"] = b"\n\n" in body.replace(b"\r\n", b"\n")
    for workload, marker in (("calendar", b"BEGIN:VCALENDAR"), ("contacts", b"BEGIN:VCARD")):
        data = read_dav(targets.radicale.url, targets, first[workload])
        unfolded = data.replace(b"\r\n ", b"").replace(b"\n ", b"")
        # Radicale stores its own rendering; the object names the sha256 of the bytes sent, which the ledger recorded.
        found[workload] = marker in data and f":{first[workload].content_hash}".encode() in unfolded
    data = read_dav(targets.nextcloud.url, targets, first["files"])
    found["files"] = len(data) == first["files"].size > 0
    event = read_chat(targets, first["chat"])
    found["chat"] = event["type"] == "m.room.message" and bool(event["content"].get("body"))
    members = targets.members
    found["sandbox mail"] = sum(len(store) for m in members for store in mailbox(targets.sandbox.tenant, m["id"]).messages.values())


def test_the_demo_moves_its_department_into_running_servers(tmp_path, capsys):
    found: dict = {}
    output = io.StringIO()
    code = run_demo(tmp_path / "demo", Console(file=output, width=160), on_ready=lambda targets: read_back(targets, found))
    text = output.getvalue() + capsys.readouterr().out  # the commands the demo runs print as they do on their own
    assert code == 0, text[-3000:]
    assert "ready: `migrator run --dry-run`" in text, "preflight passed"
    assert (tmp_path / "demo" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert all((tmp_path / "demo" / "secrets" / name).stat().st_mode & 0o077 == 0 for name in ("graph-client-secret", "app-passwords.csv"))

    ledger = Ledger(f"sqlite:///{tmp_path / 'demo' / 'migration.db'}")
    try:
        report = build_report(ledger)
    finally:
        ledger.close()
    by_workload = {w["workload"]: w for w in report["by_workload"]}
    assert set(by_workload) == set(WORKLOADS)
    for workload, counts in by_workload.items():
        assert counts["verified"] > 0 and counts["failed"] == counts["mismatch"] == 0, (workload, counts)
        assert counts["verified"] + counts["skipped"] == counts["items"], (workload, counts)
    assert by_workload["mail"]["verified"] == found.pop("sandbox mail"), "every message of the department's mailboxes"
    assert found == dict.fromkeys(WORKLOADS, True)
