"""`migrator preflight`: every connection and permission a configuration needs, checked before any
data moves, each answered pass / warn / fail with the fix.

Checks read, never write: a token from the identity platform; the batch's users; for the first
user of the batch, one listing per enabled workload (the application permission it needs); each
target logged in to as that user (and as the owner of SharePoint libraries); what a target
publishes that changes what will arrive (public links off, sizes against quotas).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mappings.identity import resolve_identity
from migrator.config import Config
from migrator.contracts import Sink, Source
from migrator.errors import MigratorError
from migrator.job import Selection
from migrator.model import User

PASS, WARN, FAIL = "pass", "warn", "fail"
TIMEOUT = 60.0


@dataclass(frozen=True)
class Check:
    area: str
    subject: str
    status: str
    detail: str
    fix: str = ""


def _failure(area: str, subject: str, exc: BaseException) -> Check:
    hint = getattr(exc, "hint", None) or ""
    text = str(exc) or type(exc).__name__
    return Check(area, subject, FAIL, text, hint)


class Preflight:
    def __init__(self, config: Config, source: Source, sinks: dict[str, Sink]) -> None:
        self.config, self.source, self.sinks = config, source, sinks
        self.checks: list[Check] = []

    def add(self, check: Check) -> None:
        self.checks.append(check)

    async def run(self, selection: Selection) -> list[Check]:
        user = await self._source(selection)
        for workload in selection.workloads:
            if user is not None:
                await self._permission(user, workload)
        for workload in selection.workloads:
            await self._target(workload, user)
        return self.checks

    async def _source(self, selection: Selection) -> User | None:
        opening = getattr(self.source, "open", None)
        try:
            if opening is not None:
                await asyncio.wait_for(opening(), TIMEOUT)
            self.add(Check("source", "sign-in", PASS, "token issued" if opening else "built-in example tenant"))
        except Exception as exc:  # noqa: BLE001 - every failure is a row of the table
            self.add(_failure("source", "sign-in", exc))
            return None
        try:
            if selection.upns is not None:
                users = await self.source.users(upns=selection.upns)
                missing = sorted({u.lower() for u in selection.upns} - {u.upn.lower() for u in users})
                if missing:
                    self.add(Check("source", "users", WARN, f"{len(missing)} of {len(selection.upns)} not found: {', '.join(missing[:3])}",
                                   "check the users file against Entra ID"))
            else:
                users = await self.source.users(department=selection.department)
        except Exception as exc:  # noqa: BLE001
            self.add(_failure("source", "users", exc))
            return None
        what = f"department {selection.department!r}" if selection.department else "the batch"
        if not users:
            self.add(Check("source", "users", FAIL, f"{what} has no users", "check the department name as Entra ID spells it"))
            return None
        self.add(Check("source", "users", PASS, f"{len(users)} users in {what}"))
        return users[0]

    async def _permission(self, user: User, workload: str) -> None:
        try:
            containers = [c async for c in self.source.containers(user, workload)]
        except Exception as exc:  # noqa: BLE001
            self.add(_failure("source", f"{workload} permission", exc))
            return
        self.add(Check("source", f"{workload} permission", PASS, f"{len(containers)} containers of {user.upn} listed"))

    async def _target(self, workload: str, user: User | None) -> None:
        sink = self.sinks.get(workload)
        probe = getattr(sink, "probe", None)
        subject = f"{workload} target ({self.config.targets[workload].kind})"
        if probe is None:
            self.add(Check("target", subject, PASS, "nothing to log in to"))
            return
        owners = []
        if user is not None:
            identity = resolve_identity(user.upn, self.config.identity_templates, self.config.identity_overrides)
            owners.append(identity.for_workload(workload))
        if workload == "files" and self.config.files.get("sites"):
            owners.append(self.config.files["libraries_owner"])
        if not owners:
            self.add(Check("target", subject, WARN, "not checked: no user to log in as", "fix the source checks first"))
            return
        for owner in owners:
            try:
                detail = await asyncio.wait_for(probe(owner), TIMEOUT)
            except Exception as exc:  # noqa: BLE001
                self.add(_failure("target", subject, exc))
                continue
            self.add(Check("target", subject, PASS, detail))
        if workload == "files":
            await self._files_target(sink, owners)
            if user is not None:
                await self._quota(sink, user, owners[0])

    async def _files_target(self, sink: Sink, owners: list[str]) -> None:
        capabilities = getattr(sink, "capabilities", None)
        if capabilities is None:
            return
        try:
            sharing = (await capabilities()).get("files_sharing") or {}
        except MigratorError as exc:
            self.add(_failure("target", "files sharing", exc))
            return
        if not (sharing.get("public") or {}).get("enabled"):
            self.add(Check("target", "files sharing", WARN, "public links are off: anonymous OneDrive links will be recorded, not shared",
                           "enable public links on the server if they should move"))
        if self.config.files.get("sites"):
            from connectors.nextcloud_ocs import list_group_folders

            owner = self.config.files["libraries_owner"]
            try:
                folders = await list_group_folders(sink.http, owner)
                self.add(Check("target", "group folders", PASS, f"{owner} manages Group Folders ({len(folders)} exist)"))
            except MigratorError as exc:
                self.add(_failure("target", "group folders", exc))

    async def _quota(self, sink: Sink, user: User, owner: str) -> None:
        """A OneDrive larger than the free space of its owner's Nextcloud account cannot arrive whole."""
        used_of = getattr(self.source, "drive_used_bytes", None)
        free = getattr(sink, "quotas", {}).get(owner)
        if used_of is None or not isinstance(free, int | float) or free < 0:
            return
        try:
            used = await used_of(user)
        except MigratorError as exc:
            self.add(_failure("source", "drive size", exc))
            return
        if used is not None and used > free:
            self.add(Check("target", "files quota", FAIL, f"{user.upn}'s OneDrive holds {used / 1e9:.2f} GB, {owner} has {free / 1e9:.2f} GB free",
                           "raise the user's Nextcloud quota before the bulk pass"))
        elif used is not None:
            self.add(Check("target", "files quota", PASS, f"{used / 1e9:.2f} GB to move, {free / 1e9:.2f} GB free"))


async def run_preflight(config: Config, source: Source, sinks: dict[str, Sink], selection: Selection) -> list[Check]:
    preflight = Preflight(config, source, sinks)
    try:
        return await preflight.run(selection)
    finally:
        closing = getattr(source, "aclose", None)
        if closing is not None:
            await closing()
        for sink in sinks.values():
            close = getattr(sink, "close", None)
            if close is not None:
                await close()
