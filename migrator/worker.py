"""Workers: any number of `migrator worker` processes, on any hosts, sharing one PostgreSQL ledger.

Planning happens once (`migrator plan`); each worker then claims items under a lease that it
renews while it lives, copies them, and takes its share of the verification. A worker that dies
stops renewing: once its leases expire the others take its items over, and the probe of the sink
before writing heals a write it left unrecorded. On SQLite the file lock admits one worker."""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy.exc import SQLAlchemyError

from migrator.copier import Copier
from migrator.errors import ConfigError
from migrator.job import Job, JobResult, Selection
from migrator.verifier import Verifier
from migrator.wiring import adapt_to_targets
from state.ledger import Ledger, WorkItem
from state.models import ItemState

DEFAULT_LEASE_SECONDS = 60.0


class Heartbeat:
    """Renews a worker's leases and marks it alive, from a thread: a long item or a busy event loop
    must not let the leases lapse while the worker is still working."""

    def __init__(self, ledger: Ledger, run_id: int, lease_seconds: float, items_done) -> None:
        self.ledger, self.run_id, self.lease_seconds, self.items_done = ledger, run_id, lease_seconds, items_done
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def start(self) -> None:
        self.ledger.renew_leases(self.run_id, self.lease_seconds, self.items_done())
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.ledger.renew_leases(self.run_id, self.lease_seconds, self.items_done())

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self.ledger.renew_leases(self.run_id, self.lease_seconds, self.items_done())
            except SQLAlchemyError:
                pass  # the database is away for a moment: the next beat tries again, within the lease


class LeasedCopier(Copier):
    """Claims in small batches under an expiring lease, so that workers share the items evenly and
    a dead worker strands few of them, and only for the length of a lease."""

    lease_seconds = DEFAULT_LEASE_SECONDS

    def _claim(self, upns: list[str] | None, workloads: list[str] | None, after: int) -> list[WorkItem]:
        ordered = {w for w in workloads or () if (sink := self.sinks.get(w)) is not None and sink.caps.ordered}
        if ordered and not self.ledger.hold_ordered_workloads():
            # Another worker writes the chats: two writing one room would interleave its history.
            workloads = [w for w in workloads if w not in ordered]
            if not workloads:
                return []
        return self.ledger.claim(self.run_id, self.settings.max_attempts, upns, workloads, after_id=after,
                                 limit=max(4, self.settings.concurrency * 2), lease_seconds=self.lease_seconds)


class WorkerJob(Job):
    lease_seconds = DEFAULT_LEASE_SECONDS

    async def _run(self, command: str, selection: Selection, stages, dry_run: bool, retry_failed: bool) -> JobResult:
        users, unknown, _identities = await self.select(selection)
        await adapt_to_targets(self.config, self.mappings, {w: s for w, s in self.sinks.items() if w in selection.workloads})
        upns, workloads = [u.upn for u in users], list(selection.workloads)
        try:
            self.ledger.acquire()
            if not self.ledger.state_counts(upns, workloads):
                raise ConfigError("nothing is planned for this selection", hint="run `migrator plan` with the same selection once, then start the workers")
            run_id = self.ledger.start_run(command, tls_verified=not self.config.skip_tls_verify)
            copier = LeasedCopier(self.ledger, run_id, self.source, self.sinks, self.mappings, {u.upn: u for u in users},
                                  self.config.run, self.progress, self.fault_hook, self.sleep, self.rng)
            copier.lease_seconds = self.lease_seconds
            heartbeat = Heartbeat(self.ledger, run_id, self.lease_seconds, lambda: sum(copier.totals.outcomes.values()))
            heartbeat.start()
            try:
                result = await self._work(run_id, copier, users, unknown, upns, workloads)
            except (KeyboardInterrupt, asyncio.CancelledError):
                heartbeat.stop()
                self.ledger.finish_run(run_id, "interrupted")
                raise
            except Exception:
                heartbeat.stop()
                self.ledger.finish_run(run_id, "aborted")
                raise
            heartbeat.stop()
            self.ledger.finish_run(run_id, "completed" if result.exit_code == 0 else "completed_with_failures", self._summary(result))
            return result
        finally:
            self.ledger.release()

    async def _work(self, run_id: int, copier: LeasedCopier, users, unknown, upns, workloads) -> JobResult:
        result = JobResult(run_id=run_id, users=users, unknown_users=unknown)
        poll = min(2.0, self.lease_seconds / 4)
        while True:
            result.copy = await copier.run(upns, workloads)
            if self.ledger.unfinished(self.config.run.max_attempts, upns, workloads) == 0:
                break
            await self.sleep(poll)  # the rest is leased by other workers: wait for them to finish, or their leases to lapse
        self.ledger.promote_cursors(run_id)
        verifier = Verifier(self.ledger, run_id, self.sinks, sample=self.config.run.verify_sample, source=self.source, mappings=self.mappings,
                            claim=lambda after: self.ledger.claim_copied(run_id, upns, workloads, after, 200, self.lease_seconds))
        while True:
            result.verify = await verifier.run(upns, workloads)
            self.ledger.release_leases(run_id)
            if self.ledger.leased(upns, workloads) == 0:
                break
            await self.sleep(poll)
        counts = self.ledger.state_counts(upns, workloads)
        result.failed = sum(row[4] for row in counts if row[3] in (ItemState.FAILED, ItemState.MISMATCH))
        result.unfinished = sum(row[4] for row in counts if row[3] == ItemState.PLANNED)
        return result
