"""Generation cost: the default 20-person department is built quickly, and a 200-person department
is built only as it is read, within a memory bound."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from migrator.sandbox import api_calendar, api_contacts, api_drive, api_mail, api_teams
from migrator.sandbox.tenant import Tenant

BUILD_EVERYTHING = """
import json, sys
from migrator.sandbox.tenant import Tenant
from migrator.sandbox import api_calendar, api_contacts, api_drive, api_mail, api_teams
tenant = Tenant(seed=7, users=200)
lazy = sum(tenant.built(kind) for kind in ("mail", "calendar", "contacts", "drive", "chats", "team", "site"))
for user in tenant.users:
    api_mail.mailbox(tenant, user["id"]); api_calendar.calendars(tenant, user["id"])
    api_contacts.address_book(tenant, user["id"]); api_drive.onedrive(tenant, user["id"])
for department in dict.fromkeys(u["department"] for u in tenant.users):
    api_teams.department_chats(tenant, department); api_teams.department_team(tenant, department); api_drive.library(tenant, department)
# VmHWM belongs to this process's memory map; ru_maxrss would carry the forking parent's peak.
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"built_before_reading": lazy, "users": len(tenant.users), "max_rss_mb": peak}))
"""


def build_all(tenant: Tenant) -> None:
    for user in tenant.users:
        api_mail.mailbox(tenant, user["id"])
        api_calendar.calendars(tenant, user["id"])
        api_contacts.address_book(tenant, user["id"])
        api_drive.onedrive(tenant, user["id"])
    for department in dict.fromkeys(u["department"] for u in tenant.users):
        api_teams.department_chats(tenant, department)
        api_teams.department_team(tenant, department)
        api_drive.library(tenant, department)


def test_the_default_department_builds_in_under_five_seconds():
    start = time.perf_counter()
    tenant = Tenant(seed=7, users=20)
    build_all(tenant)
    elapsed = time.perf_counter() - start
    print(f"20-person department with every workload: {elapsed:.2f} s")
    assert elapsed < 5.0


def test_a_200_person_department_is_built_lazily_within_300_mb():
    out = subprocess.run([sys.executable, "-c", BUILD_EVERYTHING], capture_output=True, text=True, timeout=300, check=True)
    figures = json.loads(out.stdout)
    print(f"200-person department, every workload read: {figures['max_rss_mb']:.0f} MB peak")
    assert figures["built_before_reading"] == 0 and figures["users"] == 200 + 4 * 4
    assert figures["max_rss_mb"] < 300
