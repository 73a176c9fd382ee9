"""One migration job: select users, then plan, copy and verify, all recorded in the ledger."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from mappings.identity import (
    Identity,
    IdentityConflict,
    check_one_to_one,
    resolve_identity,
)
from migrator.config import Config, read_users_file
from migrator.contracts import Sink, Source
from migrator.copier import Copier, CopyTotals, FaultHook
from migrator.deleter import Deleter, DeleteTotals
from migrator.errors import ConfigError
from migrator.model import SITE_PREFIX, User
from migrator.planner import Planner, PlanTotals
from migrator.progress import NullProgress, ProgressReporter
from migrator.tls import UntrustedCertificate
from migrator.verifier import Verifier, VerifyTotals
from migrator.wiring import adapt_to_targets, build_mappings, build_sink, build_source
from state.ledger import Ledger
from state.models import ItemState

STAGES = ("plan", "copy", "verify")
# A delta pass that carries deletions over: the copies of items deleted at the source go too.
SYNC_STAGES = ("plan", "copy", "delete", "verify")


@dataclass(frozen=True)
class Selection:
    department: str | None = None
    upns: list[str] | None = None
    workloads: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config, department: str | None = None, users_file=None, workloads: list[str] | None = None) -> Selection:
        if department and users_file:
            raise ConfigError("--department and --users-file are both given", hint="choose one way to select users")
        if workloads:
            unknown = [w for w in workloads if w not in config.workloads]
            if unknown:
                raise ConfigError(f"--workload {unknown[0]} is not enabled in the config", hint=f"enabled: {', '.join(config.workloads)}")
        if users_file is None and department is None:
            department, users_file = config.department, config.users_file
        upns = read_users_file(users_file) if users_file is not None else None
        return cls(department=department, upns=upns, workloads=tuple(workloads or config.workloads))


@dataclass
class JobResult:
    run_id: int
    users: list[User] = field(default_factory=list)
    unknown_users: list[str] = field(default_factory=list)
    plan: PlanTotals | None = None
    copy: CopyTotals | None = None
    verify: VerifyTotals | None = None
    deleted: DeleteTotals | None = None
    failed: int = 0
    unfinished: int = 0
    seconds: float = 0.0

    @property
    def guarded(self) -> dict[str, int]:
        return self.plan.guarded if self.plan else {}

    @property
    def exit_code(self) -> int:
        return 1 if (self.failed or self.unknown_users or self.unfinished or self.guarded) else 0


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


class Job:
    def __init__(
        self,
        config: Config,
        ledger: Ledger | None = None,
        source: Source | None = None,
        sinks: dict[str, Sink] | None = None,
        progress: ProgressReporter | None = None,
        fault_hook: FaultHook | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger or Ledger(config.ledger_url)
        self.source = source or build_source(config)
        self.sinks = sinks or {w: build_sink(w, config.targets[w], config) for w in config.workloads}
        self.mappings = build_mappings(config)
        self.progress = progress or NullProgress()
        self.fault_hook, self.sleep, self.rng = fault_hook, sleep, rng

    async def select(self, selection: Selection) -> tuple[list[User], list[str], dict[str, Identity]]:
        if selection.upns is not None:
            users = await self.source.users(upns=selection.upns)
            found = {u.upn.lower() for u in users}
            unknown = [u for u in selection.upns if u.lower() not in found]
        else:
            users, unknown = await self.source.users(department=selection.department), []
            if not users:
                what = f"department {selection.department!r}" if selection.department else "the tenant"
                raise ConfigError(f"{what} has no users", hint="check the department name as it is spelt in Entra ID")
        identities = {u.upn: resolve_identity(u.upn, self.config.identity_templates, self.config.identity_overrides) for u in users}
        try:
            check_one_to_one(identities.values())
        except IdentityConflict as exc:
            raise ConfigError(f"identity rules are not one-to-one: {exc}", hint="add an override line for one of them in identity.overrides") from None
        if "files" in selection.workloads and self.config.source_kind == "graph":
            # Each configured SharePoint site moves with the batch, written by the libraries' owner account.
            owner = self.config.files.get("libraries_owner", "")
            for name in self.config.files.get("sites", {}):
                site = User(SITE_PREFIX + name, display_name=name, department=selection.department or "")
                users.append(site)
                identities[site.upn] = Identity(site.upn, "", owner, "")
        return users, unknown, identities

    async def run(self, command: str, selection: Selection, stages: tuple[str, ...] = STAGES, dry_run: bool = False, retry_failed: bool = False,
                  force: bool = False) -> JobResult:
        """`force`: plan containers that suddenly read as empty at the source (see Planner)."""
        self.force = force
        # A network source holds connections bound to this event loop: open and close them per run.
        opening, closing = getattr(self.source, "open", None), getattr(self.source, "aclose", None)
        if opening is not None:
            await opening()
        try:
            return await self._run(command, selection, stages, dry_run, retry_failed)
        except ExceptionGroup as group:
            # The worker pools run items in task groups; a failing ledger, or a server whose
            # certificate nobody trusts, stops them all at once. Report that failure itself, as one
            # error the command line can explain.
            stopping = next((e for e in _leaves(group) if isinstance(e, SQLAlchemyError | UntrustedCertificate)), None)
            if stopping is not None:
                raise stopping from None
            raise
        finally:
            if closing is not None:
                await closing()
            for sink in self.sinks.values():  # pooled connections belong to this run's event loop too
                close_sink = getattr(sink, "close", None)
                if close_sink is not None:
                    await close_sink()

    async def _run(self, command: str, selection: Selection, stages: tuple[str, ...], dry_run: bool, retry_failed: bool) -> JobResult:
        users, unknown, identities = await self.select(selection)
        await adapt_to_targets(self.config, self.mappings, {w: s for w, s in self.sinks.items() if w in selection.workloads})
        if dry_run:
            result = JobResult(run_id=0, users=users, unknown_users=unknown)
            result.plan = await Planner(self.ledger, 0, self.source, self.mappings, dry_run=True, force=self.force).plan(users, identities, selection.workloads)
            return result
        try:
            self.ledger.acquire()
            run_id = self.ledger.start_run(command, tls_verified=not self.config.skip_tls_verify)
            try:
                result = await self._stages(run_id, users, unknown, identities, selection, stages, retry_failed)
            except (KeyboardInterrupt, asyncio.CancelledError):
                self.ledger.finish_run(run_id, "interrupted")
                raise
            except Exception:
                self.ledger.finish_run(run_id, "aborted")
                raise
            self.ledger.finish_run(run_id, "completed" if result.exit_code == 0 else "completed_with_failures", self._summary(result))
            return result
        finally:
            self.ledger.release()

    async def _stages(self, run_id, users, unknown, identities, selection, stages, retry_failed) -> JobResult:
        result = JobResult(run_id=run_id, users=users, unknown_users=unknown)
        started = time.monotonic()
        upns, workloads = [u.upn for u in users], list(selection.workloads)
        for upn in unknown:
            self.ledger.record_event(run_id, "user.unknown", upn, {"reason": "not found at the source"})
        if retry_failed:
            self.ledger.retry_failed(run_id, upns, workloads)
        if "plan" in stages:
            planner = Planner(self.ledger, run_id, self.source, self.mappings, progress=self.progress, force=self.force,
                              users_at_once=self.config.run.concurrency // self.config.run.per_mailbox)
            result.plan = await planner.plan(users, identities, selection.workloads)
        if "copy" in stages:
            totals = {w: self.ledger.unfinished(self.config.run.max_attempts, upns, [w]) for w in workloads}
            self.progress.start(totals)
            try:
                copier = Copier(self.ledger, run_id, self.source, self.sinks, self.mappings, {u.upn: u for u in users},
                                self.config.run, self.progress, self.fault_hook, self.sleep, self.rng)
                result.copy = await copier.run(upns, workloads)
            finally:
                self.progress.stop()
            self.ledger.promote_cursors(run_id)
        if "delete" in stages:
            result.deleted = await Deleter(self.ledger, run_id, self.sinks).run(upns, workloads)
        if "verify" in stages:
            verifier = Verifier(self.ledger, run_id, self.sinks, sample=self.config.run.verify_sample, source=self.source, mappings=self.mappings)
            result.verify = await verifier.run(upns, workloads)
        counts = self.ledger.state_counts(upns, workloads)
        result.failed = sum(row[4] for row in counts if row[3] in (ItemState.FAILED, ItemState.MISMATCH))
        result.unfinished = sum(row[4] for row in counts if row[3] == ItemState.PLANNED) if "copy" in stages else 0
        result.seconds = time.monotonic() - started
        return result

    @staticmethod
    def _summary(result: JobResult) -> dict:
        summary: dict = {"users": len(result.users), "unknown_users": len(result.unknown_users), "failed": result.failed}
        if result.copy:
            summary["copy"] = dict(result.copy.outcomes) | {"bytes": result.copy.bytes}
        if result.verify:
            summary["verify"] = dict(result.verify.outcomes)
        if result.plan:
            summary["found"] = {w: {k: c[k] for k in ("new", "changed", "removed", "guarded") if c[k]} for w, c in result.plan.by_workload().items()}
        if result.deleted:
            summary["deleted"] = dict(result.deleted.outcomes)
        if result.guarded:
            summary["guarded"] = result.guarded
        summary["seconds"] = round(result.seconds, 1)
        return summary

    def close(self) -> None:
        self.ledger.close()
