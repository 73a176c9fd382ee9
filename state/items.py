"""Writes of item and container state: planning upserts, claims, copy outcomes, verification.
Each method is one short transaction; a state change and its audit event commit together."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from state.models import Container, Item, ItemState, Run, Scope, utcnow
from state.queries import CopiedItem, WorkItem, decode_path, encode_path, scope_filter


class ItemWrites:
    """Mixed into Ledger, which provides `transaction`, `engine` and `_append`."""

    # -- planning --------------------------------------------------------------------------------

    @staticmethod
    def _upsert(s: Session, model, keys: dict, values: dict):
        """The row with `keys`, created or brought up to date with `values`."""
        row = s.scalar(select(model).filter_by(**keys))
        if row is None:
            row = model(**keys, **values)
            s.add(row)
        else:
            for name, value in values.items():
                setattr(row, name, value)
        s.flush()
        return row

    def upsert_scope(self, upn: str, department: str, workload: str, target_owner: str) -> int:
        with self.transaction() as s:
            return self._upsert(s, Scope, {"upn": upn, "workload": workload}, {"department": department, "target_owner": target_owner}).id

    def upsert_container(
        self, scope_id: int, source_id: str, name: str, target_path: tuple[str, ...], source_path: tuple[str, ...] = (), role: str = "",
    ) -> tuple[int, str | None]:
        """Returns the container's row id and its committed delta cursor."""
        with self.transaction() as s:
            values = {"name": name, "target_path": encode_path(target_path), "source_path": encode_path(source_path), "role": role}
            row = self._upsert(s, Container, {"scope_id": scope_id, "source_id": source_id}, values)
            return row.id, row.cursor

    def find_container(self, upn: str, workload: str, source_id: str) -> tuple[int, str | None] | None:
        with Session(self.engine) as s:
            row = s.execute(
                select(Container.id, Container.cursor).join(Scope, Container.scope_id == Scope.id)
                .where(Scope.upn == upn, Scope.workload == workload, Container.source_id == source_id)
            ).first()
            return (row.id, row.cursor) if row else None

    def known_items(self, container_id: int) -> dict[str, tuple[str, str]]:
        with Session(self.engine) as s:
            rows = s.execute(select(Item.source_id, Item.change_key, Item.state).where(Item.container_id == container_id))
            return {r.source_id: (r.change_key, r.state) for r in rows}

    def apply_plan(
        self,
        run_id: int,
        container_id: int,
        upserts: list[tuple],
        removals: list[str],
    ) -> None:
        """Upserts (source_id, change_key, kind, name, size[, listed]) as planned and marks removals, in one batch."""
        with self.transaction() as s:
            existing = {
                row.source_id: row
                for row in s.scalars(
                    select(Item).where(Item.container_id == container_id, Item.source_id.in_([u[0] for u in upserts] + removals))
                )
            }
            for source_id, change_key, kind, name, size, *rest in upserts:
                listed = rest[0] if rest else None
                row = existing.get(source_id)
                if row is None:
                    s.add(Item(container_id=container_id, source_id=source_id, change_key=change_key, kind=kind, name=name, size=size,
                               listed=listed, state=ItemState.PLANNED))
                elif row.change_key != change_key or row.state in (ItemState.REMOVED, ItemState.DELETED):
                    row.change_key, row.kind, row.name, row.size, row.listed = change_key, kind, name, size, listed
                    row.state, row.attempts, row.last_error = ItemState.PLANNED, 0, None
            for source_id in removals:
                row = existing.get(source_id)
                if row is not None and row.state not in (ItemState.REMOVED, ItemState.DELETED):
                    row.state, row.last_error = ItemState.REMOVED, "deleted at source"
                    self._append(s, run_id, "item.removed_at_source", f"item {row.id}", {"source_id": source_id})

    def set_pending_cursor(self, run_id: int, container_id: int, cursor: str, counts: dict[str, int]) -> None:
        with self.transaction() as s:
            row = s.get(Container, container_id)
            row.pending_cursor, row.planned_at = cursor, utcnow()
            self._append(s, run_id, "container.planned", f"container {container_id}", counts)

    def reset_cursor(self, container_id: int) -> None:
        with self.transaction() as s:
            row = s.get(Container, container_id)
            row.cursor = row.pending_cursor = None

    def promote_cursors(self, run_id: int) -> int:
        """A container's new cursor becomes the committed one only once none of its items is pending."""
        with self.transaction() as s:
            pending = select(Item.container_id).where(Item.state == ItemState.PLANNED).distinct()
            rows = s.scalars(select(Container).where(Container.pending_cursor.is_not(None), Container.id.not_in(pending))).all()
            for row in rows:
                row.cursor, row.pending_cursor = row.pending_cursor, None
            if rows:
                self._append(s, run_id, "cursor.promoted", f"{len(rows)} containers", {"containers": [r.id for r in rows]})
            return len(rows)

    # -- copying ---------------------------------------------------------------------------------

    def claim(
        self, run_id: int, max_attempts: int, upns: list[str] | None, workloads: list[str] | None, after_id: int = 0, limit: int = 500,
        lease_seconds: float | None = None,
    ) -> list[WorkItem]:
        """Leases up to `limit` unfinished items (planned, or failed with attempts left) to this run.

        Items come in id order from `after_id` on, so one run tries each item once. With
        `lease_seconds` the lease expires unless renewed, and items whose lease expired (their
        worker died) are taken over."""
        with self.transaction() as s:
            now = utcnow()
            columns = (
                Item.id, Item.source_id, Item.kind, Item.name, Item.change_key, Item.size, Item.dest_key, Item.dest_id,
                Item.put_started_at, Item.attempts, Item.lease_owner, Item.listed, Container.id.label("c_id"), Container.source_id.label("c_source_id"),
                Container.name.label("c_name"), Container.source_path, Container.role, Container.target_path,
                Scope.upn, Scope.workload, Scope.target_owner,
            )
            # One query per state, each an ordered range of the (state, id) index that stops at `limit`;
            # one query with "planned OR failed" makes the database sort every unfinished row, on every claim.
            rows = []
            for in_state in (Item.state == ItemState.PLANNED, (Item.state == ItemState.FAILED) & (Item.attempts < max_attempts)):
                stmt = (
                    select(*columns)
                    .join(Container, Item.container_id == Container.id)
                    .join(Scope, Container.scope_id == Scope.id)
                    .where(in_state, Item.id > after_id, Item.lease_owner.is_(None) | (Item.lease_expires_at < now))
                    .order_by(Item.id)
                    .limit(limit)
                )
                stmt = scope_filter(stmt, upns, workloads)
                if s.get_bind().dialect.name == "postgresql":
                    stmt = stmt.with_for_update(skip_locked=True, of=Item)
                rows += s.execute(stmt).all()
            rows = sorted(rows, key=lambda r: r.id)[:limit]
            if not rows:
                return []
            expires = now + dt.timedelta(seconds=lease_seconds) if lease_seconds else None
            s.execute(update(Item).where(Item.id.in_([r.id for r in rows])).values(lease_owner=run_id, lease_expires_at=expires))
            taken_over: dict[int, list[int]] = {}
            claimed = []
            for r in rows:
                if r.lease_owner is not None:
                    taken_over.setdefault(r.lease_owner, []).append(r.id)
                claimed.append(
                    WorkItem(
                        r.id, r.source_id, r.kind, r.name, r.change_key, r.size,
                        r.c_id, r.c_source_id, r.c_name, decode_path(r.source_path or "[]"), r.role,
                        decode_path(r.target_path), r.upn, r.workload,
                        r.target_owner, r.dest_key, r.dest_id, r.put_started_at is not None, r.attempts, r.listed,
                    )
                )
            for owner, ids in taken_over.items():
                self._append(s, run_id, "items.lease_taken_over", f"{len(ids)} items of run {owner}", {"run": owner, "items": ids})
            return claimed

    def claim_copied(
        self, run_id: int, upns: list[str] | None, workloads: list[str] | None, after_id: int, limit: int, lease_seconds: float,
    ) -> list[CopiedItem]:
        """Leases copied items not yet verified, so that workers sharing a ledger verify each once."""
        with self.transaction() as s:
            now = utcnow()
            stmt = (
                select(Item)
                .join(Container, Item.container_id == Container.id)
                .join(Scope, Container.scope_id == Scope.id)
                .where(
                    Item.id > after_id, Item.state == ItemState.COPIED, Item.dest_key.is_not(None), Item.dest_id.is_not(None),
                    Item.lease_owner.is_(None) | (Item.lease_expires_at < now),
                )
                .order_by(Item.id)
                .limit(limit)
            )
            stmt = scope_filter(stmt, upns, workloads)
            if s.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True, of=Item)
            ids = list(s.scalars(stmt.with_only_columns(Item.id)))
            if ids:
                s.execute(update(Item).where(Item.id.in_(ids)).values(lease_owner=run_id, lease_expires_at=now + dt.timedelta(seconds=lease_seconds)))
        return self.copied_items(upns, workloads, ids=ids) if ids else []

    def renew_leases(self, run_id: int, lease_seconds: float, items_done: int) -> int:
        """The worker's heartbeat: extends its leases and says it is alive; returns the leases held."""
        with self.transaction() as s:
            now = utcnow()
            # Rows the worker is recording right now are skipped, not waited for: their lease ends with that
            # commit, and waiting would deadlock against a batch that updates the same rows in another order.
            mine = select(Item.id).where(Item.lease_owner == run_id)
            if s.get_bind().dialect.name == "postgresql":
                mine = mine.with_for_update(skip_locked=True)
            held = s.execute(
                update(Item).where(Item.id.in_(mine.scalar_subquery())).values(lease_expires_at=now + dt.timedelta(seconds=lease_seconds))
            ).rowcount
            s.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=now, items_done=items_done))
            return held

    def release_leases(self, run_id: int) -> int:
        with self.transaction() as s:
            return s.execute(update(Item).where(Item.lease_owner == run_id).values(lease_owner=None, lease_expires_at=None)).rowcount

    def record_put_intent(self, item_id: int, dest_key: str) -> None:
        with self.transaction() as s:
            s.execute(update(Item).where(Item.id == item_id).values(dest_key=dest_key, put_started_at=utcnow()))

    def record_copied(
        self, run_id: int, item_id: int, dest_key: str, dest_id: str, etag: str | None, size: int, content_hash: str, healed: bool,
        mtime: float | None = None, notes: tuple[str, ...] = (), renamed: dict | None = None,
    ) -> None:
        """`notes`: what the sink could not carry over; `renamed`: {from, to, why} when the target
        refused the item's own name and the mapping made it legal."""
        self.record_copied_many(run_id, [{
            "item_id": item_id, "dest_key": dest_key, "dest_id": dest_id, "etag": etag, "size": size, "content_hash": content_hash,
            "healed": healed, "mtime": mtime, "notes": notes, "renamed": renamed,
        }])

    def record_copied_many(self, run_id: int, copies: list[dict]) -> None:
        """Several items' record_copied in one transaction. Safe to delay: an item written but not yet
        recorded when the process dies is found at the target by the next run's probe, as after any crash."""
        if not copies:
            return
        with self.transaction() as s:
            # Only while this run holds the item: a worker whose lease lapsed and was taken over leaves the record to the taker.
            held_stmt = select(Item.id).where(Item.id.in_([c["item_id"] for c in copies]), Item.lease_owner == run_id)
            if s.get_bind().dialect.name == "postgresql":
                held_stmt = held_stmt.with_for_update()
            held = set(s.scalars(held_stmt))
            copies = [c for c in copies if c["item_id"] in held]
            if not copies:
                return
            now, table = utcnow(), Item.__table__
            s.connection().execute(
                update(table).where(table.c.id == bindparam("b_id")).values(
                    state=ItemState.COPIED, dest_key=bindparam("b_dest_key"), dest_id=bindparam("b_dest_id"), dest_etag=bindparam("b_etag"),
                    size=bindparam("b_size"), dest_mtime=bindparam("b_mtime"), content_hash=bindparam("b_hash"), last_error=None,
                    lease_owner=None, lease_expires_at=None, put_started_at=None, listed=None, updated_at=now,
                ),
                [{"b_id": c["item_id"], "b_dest_key": c["dest_key"], "b_dest_id": c["dest_id"], "b_etag": c["etag"], "b_size": c["size"],
                  "b_mtime": c.get("mtime"), "b_hash": c["content_hash"]} for c in copies],
            )
            events = []
            for c in copies:
                detail: dict = {"dest_key": c["dest_key"], "bytes": c["size"], "sha256": c["content_hash"]}
                if c["healed"]:
                    detail["found_at_target"] = True
                if c.get("notes"):
                    detail["notes"] = list(c["notes"])
                if c.get("renamed"):
                    detail["renamed"] = c["renamed"]
                events.append(("item.copied", f"item {c['item_id']}", detail))
            self._append_many(s, run_id, events)

    def record_removed(self, run_id: int, item_id: int, reason: str) -> None:
        """A copied item the source now marks deleted; its copy stays until deletions are propagated."""
        with self.transaction() as s:
            s.execute(update(Item).where(Item.id == item_id).values(state=ItemState.REMOVED, last_error=reason, lease_owner=None, updated_at=utcnow()))
            self._append(s, run_id, "item.removed_at_source", f"item {item_id}", {"reason": reason})

    def record_deleted(self, run_id: int, item_id: int, was_there: bool) -> None:
        """The copy of an item the source deleted is gone from the target too."""
        with self.transaction() as s:
            s.execute(update(Item).where(Item.id == item_id).values(state=ItemState.DELETED, last_error="deleted at source and at target", updated_at=utcnow()))
            self._append(s, run_id, "item.deleted_at_target", f"item {item_id}", {} if was_there else {"already_gone": True})

    def record_failed(self, run_id: int, item_id: int, reason: str) -> None:
        with self.transaction() as s:
            attempts = s.scalar(
                update(Item).where(Item.id == item_id)
                .values(state=ItemState.FAILED, last_error=reason, lease_owner=None, attempts=Item.attempts + 1, updated_at=utcnow())
                .returning(Item.attempts)
            )
            self._append(s, run_id, "item.failed", f"item {item_id}", {"reason": reason, "attempt": attempts})

    def record_skipped(self, run_id: int, item_id: int, reason: str) -> None:
        with self.transaction() as s:
            s.execute(update(Item).where(Item.id == item_id).values(state=ItemState.SKIPPED, last_error=reason, lease_owner=None, updated_at=utcnow()))
            self._append(s, run_id, "item.skipped", f"item {item_id}", {"reason": reason})

    def retry_failed(self, run_id: int, upns: list[str] | None, workloads: list[str] | None) -> int:
        """Gives items that used up their attempts a fresh set, at an admin's request."""
        with self.transaction() as s:
            ids_stmt = (
                select(Item.id).join(Container, Item.container_id == Container.id).join(Scope, Container.scope_id == Scope.id)
                .where(Item.state.in_([ItemState.FAILED, ItemState.MISMATCH]))
            )
            ids = list(s.scalars(scope_filter(ids_stmt, upns, workloads)))
            if ids:
                s.execute(update(Item).where(Item.id.in_(ids)).values(attempts=0, state=ItemState.PLANNED))
                self._append(s, run_id, "items.retry_requested", f"{len(ids)} items", {})
            return len(ids)

    # -- verification ---------------------------------------------------------------------------

    def record_verifications(self, run_id: int, results: list[tuple[int, str]]) -> None:
        """(item id, problem) pairs, "" meaning verified; recorded in one transaction per batch."""
        if not results:
            return
        with self.transaction() as s:
            table = Item.__table__
            s.connection().execute(
                update(table).where(table.c.id == bindparam("b_id")).values(
                    state=bindparam("b_state"), last_error=bindparam("b_error"), lease_owner=None, lease_expires_at=None, updated_at=utcnow(),
                ),
                [{"b_id": item_id, "b_state": ItemState.MISMATCH if problem else ItemState.VERIFIED, "b_error": problem or None}
                 for item_id, problem in results],
            )
            self._append_many(s, run_id, [
                ("item.mismatch" if problem else "item.verified", f"item {item_id}", {"problem": problem} if problem else {})
                for item_id, problem in results
            ])
