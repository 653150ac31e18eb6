"""Expansion in the SQL outbox: a notification's recipients become one delivery row per device.

A worker claims notifications due for expansion under a lease (``due_at`` is the lease deadline
while it expands), writes their deliveries, and marks them ``sending``. An ``all`` audience is
written chunk by chunk with a cursor committed alongside each chunk, so that a crashed expansion
resumes where it stopped instead of starting over or skipping devices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, select, update

from .errors import describe_error
from .interface import ClaimedDelivery, DeviceRef, ExpansionJob, Handoff, NotificationState, Recipients
from .models import utcnow
from .sql_base import Leasing, N, NewDeliveries, SqlBase, lease_rows
from .wakeup import notify_work

__all__ = ["OutboxExpansion"]

_UNEXPANDED = (NotificationState.SCHEDULED.value, NotificationState.PENDING.value)
_MARK_SENDING = (
    update(N)
    .where(N.id == bindparam("b_id"), N.state == NotificationState.EXPANDING.value)
    .values(
        state=NotificationState.SENDING.value,
        warnings=bindparam("b_w"),
        errors=bindparam("b_e"),
        lease_owner=None,
    )
)


class _LeaseLost(Exception):
    """Raised inside a transaction to roll it back: the expansion lease is not ours any more."""


class OutboxExpansion(SqlBase):
    def claim_expansions(
        self, worker_id: str, *, limit: int, lease: float, notification_id: str | None = None
    ) -> list[ExpansionJob]:
        now = utcnow()
        only = [] if notification_id is None else [N.id == notification_id]
        stmt = lease_rows(
            N.id,
            where=[
                N.state.in_([*_UNEXPANDED, NotificationState.EXPANDING.value]),
                N.due_at <= now,
                N.expires_at > now,
                *only,
            ],
            order_by=N.due_at,
            limit=limit,
            values={
                "state": NotificationState.EXPANDING.value,
                "lease_owner": worker_id,
                "due_at": now + timedelta(seconds=lease),
            },
            returning=[N.id, N.app, N.recipients, N.targets, N.cursor, N.deliver_at_local, N.urgent],
            skip_locked=self._pg,
        )
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        jobs: list[ExpansionJob] = []
        for r in rows:
            try:
                recipients = Recipients.from_json(r.recipients)
                jobs.append(
                    ExpansionJob(
                        r.id,
                        r.app,
                        recipients,
                        tuple(r.targets or ()),
                        r.cursor,
                        r.deliver_at_local,
                        bool(r.urgent),
                    )
                )
            except Exception as exc:  # a row no expansion can read: it fails alone, the claim goes on
                self.fail_expansion(r.id, worker_id, f"unreadable recipients: {describe_error(exc)}")
        return jobs

    def fail_expansion(self, notification_id: str, worker_id: str, reason: str) -> list[str]:
        """End the expansion of ``notification_id`` (leased by ``worker_id``) that raised: the
        notification keeps the deliveries already written, if any, gets ``reason`` among its
        errors and is ``sending``, so it completes like any other (at once without deliveries).
        Nothing else is touched: one bad notification must not hold up the ones claimed with it.
        Returns ``[id]`` when that completes it; ``[]`` when the lease is no longer ours."""
        with self._tx() as conn:
            row = conn.execute(
                select(N.errors).where(
                    N.id == notification_id,
                    N.lease_owner == worker_id,
                    N.state == NotificationState.EXPANDING.value,
                )
            ).first()
            if row is None:
                return []
            errors = [*(row.errors or []), f"expansion failed: {reason}"[:500]]
            conn.execute(
                update(N)
                .where(N.id == notification_id, N.lease_owner == worker_id)
                .values(state=NotificationState.SENDING.value, lease_owner=None, errors=errors)
            )
            return self._complete(conn, [notification_id])

    def add_deliveries(
        self,
        notification_id: str,
        devices: Sequence[DeviceRef],
        *,
        cursor: str | None,
        worker_id: str,
        lease: float,
        schedule: Mapping[str, datetime] | None = None,
        handoff: Handoff | None = None,
    ) -> int:
        """Insert deliveries and move the cursor, in one transaction, while we still hold the
        expansion lease. Returns -1 when the lease was lost (cancelled or taken over): the caller
        must stop expanding. With ``handoff``, up to its room of them are inserted leased to
        ``worker_id`` and listed in its ``taken`` (see :class:`Handoff`).

        The notification row is updated (cursor, lease) last, not first: an ``UPDATE`` locks it
        until commit, and the workers recording this notification's first deliveries meanwhile
        may need that lock (``_complete``); they wait for the commit only, not for the insert.
        The lease is checked again by that ``UPDATE``: lost in between, the rows are rolled back."""
        now = utcnow()
        mine = (
            N.id == notification_id,
            N.lease_owner == worker_id,
            N.state == NotificationState.EXPANDING.value,
        )
        leasing = self._leasing(worker_id, handoff, now)
        taken: list[ClaimedDelivery] = []
        try:
            with self._tx() as conn:
                row = conn.execute(select(N.app, N.expires_at).where(*mine)).first()
                if row is None:
                    return -1
                added, paused = 0, False
                if devices:
                    paused = row.app in self._paused(conn)
                    rows = NewDeliveries()
                    self._new_deliveries(
                        rows,
                        notification_id,
                        row.app,
                        row.expires_at,
                        devices,
                        paused=paused,
                        schedule=schedule,
                        now=now,
                        leasing=leasing,
                    )
                    added = self._insert_rows(conn, rows, now)
                    if leasing is not None:
                        taken = self._insert_leased(conn, leasing, now)
                moved = conn.execute(
                    update(N).where(*mine).values(cursor=cursor, due_at=now + timedelta(seconds=lease))
                ).rowcount
                if not moved:
                    raise _LeaseLost
                if added and not paused:
                    notify_work(conn)  # other workers start sending while we expand the next chunk
        except _LeaseLost:  # cancelled or taken over since the first statement: nothing is kept
            return -1
        if handoff is not None:  # committed: ours to send
            handoff.taken = taken
        return added + len(taken)

    @staticmethod
    def _leasing(worker_id: str, handoff: Handoff | None, now: datetime) -> Leasing | None:
        if handoff is None or handoff.room <= 0:
            return None
        return Leasing(worker_id, handoff.room, now + timedelta(seconds=handoff.lease))

    def expand_many(
        self,
        worker_id: str,
        jobs: Sequence[tuple[str, Sequence[DeviceRef], list[str], list[str]]],
        schedules: Mapping[str, Mapping[str, datetime]] | None = None,
        handoff: Handoff | None = None,
    ) -> list[str]:
        """Resolve several small notifications at once: ``(id, devices, warnings, errors)`` each.

        One transaction for the lot (inserting their deliveries and marking them sending) instead of
        a few per notification: with many single-recipient sends the expansion would otherwise be
        the bottleneck. Jobs whose lease we lost are skipped. Returns the notifications completed
        right away (no device). ``handoff``: as for :meth:`add_deliveries`."""
        with self._tx() as conn:
            done, taken = self._expand_many(conn, worker_id, jobs, schedules, handoff)
        if handoff is not None:  # committed: ours to send
            handoff.taken = taken
        return done

    def _expand_many(
        self,
        conn: Connection,
        worker_id: str,
        jobs: Sequence[tuple[str, Sequence[DeviceRef], list[str], list[str]]],
        schedules: Mapping[str, Mapping[str, datetime]] | None,
        handoff: Handoff | None,
    ) -> tuple[list[str], list[ClaimedDelivery]]:
        mine = {
            r.id: r
            for r in conn.execute(
                select(N.id, N.app, N.expires_at).where(
                    N.id.in_([j[0] for j in jobs]),
                    N.lease_owner == worker_id,
                    N.state == NotificationState.EXPANDING.value,
                )
            )
        }
        paused = self._paused(conn)
        now = utcnow()
        leasing = self._leasing(worker_id, handoff, now)
        rows = NewDeliveries()
        for nid, devices, _w, _e in jobs:
            if (meta := mine.get(nid)) is not None:
                self._new_deliveries(
                    rows,
                    nid,
                    meta.app,
                    meta.expires_at,
                    devices,
                    paused=meta.app in paused,
                    schedule=(schedules or {}).get(nid),
                    now=now,
                    leasing=leasing,
                )
        if self._insert_rows(conn, rows, now) and {m.app for m in mine.values()} - paused:
            notify_work(conn)  # only for rows left pending: the leased ones are ours already
        taken = self._insert_leased(conn, leasing, now) if leasing is not None else []
        # one executemany for the lot (psycopg pipelines it), not a statement per notification
        # in id order, the order in which ``_complete`` locks notification rows
        marks = [
            {"b_id": nid, "b_w": w, "b_e": e}
            for nid, _d, w, e in sorted(jobs, key=lambda j: j[0])
            if nid in mine
        ]
        if marks:
            conn.execute(_MARK_SENDING, marks)
        return self._complete(
            conn, [nid for nid, devices, _w, _e in jobs if nid in mine and not devices]
        ), taken

    def finish_expansion(self, notification_id: str, *, warnings: list[str], errors: list[str]) -> list[str]:
        """Mark the recipients resolved; returns ``[id]`` when that already completes it (no
        device, or every delivery recorded while it was expanding). The ``UPDATE`` to ``sending``
        locks the row until commit: a concurrent ``record`` of its last deliveries waits in
        ``_complete`` and then sees it sending (see ``SqlBase._complete``)."""
        with self._tx() as conn:
            return self._finish_expansion(conn, notification_id, warnings=warnings, errors=errors)

    def _finish_expansion(
        self, conn: Connection, notification_id: str, *, warnings: list[str], errors: list[str]
    ) -> list[str]:
        conn.execute(_MARK_SENDING, [{"b_id": notification_id, "b_w": warnings, "b_e": errors}])
        return self._complete(conn, [notification_id])
