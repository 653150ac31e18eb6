"""Leases in the SQL outbox: short, renewed by a heartbeat while a worker holds them.

A claim leases rows for ``lease`` seconds: a delivery's ``next_attempt_at`` (and an expanding
notification's ``due_at``) is its lease deadline while a worker holds it. A live worker renews
every lease it holds with one heartbeat (one ``UPDATE`` per table, every third of the lease), so a
lease can be short (30 s by default) without a slow chunk losing it. A worker killed with ``kill -9``
stops renewing: its rows become claimable again within one lease of its last heartbeat.

A lease is renewed for at most ``hold`` seconds after its claim: a chunk that hangs in a live
worker is handed to another one instead of being renewed forever. The results the first worker
records afterwards are *lost*: :meth:`~pushrelay.queue.sql.SqlOutbox.record` leaves such rows to
their new owner and says how many there were.

``outbox_workers`` keeps one row per worker process with its last heartbeat, so that operators
(and the metrics) see which workers are alive.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from sqlalchemy import delete, func, select, update

from .interface import DeliveryState, NotificationState
from .models import WorkerRow, utcnow
from .sql_base import _IN_CHUNK, D, N, SqlBase

__all__ = ["OutboxLeases"]

W = WorkerRow


class OutboxLeases(SqlBase):
    def heartbeat(
        self,
        worker_id: str,
        *,
        lease: float,
        hold: float | None = None,
        deliveries: Collection[int] | None = None,
        expansions: Collection[str] | None = None,
    ) -> int:
        """Say ``worker_id`` is alive and push the deadline of the leases it holds to ``lease``
        seconds from now (only those claimed less than ``hold`` seconds ago, when given). Returns
        the number of deliveries renewed.

        ``deliveries`` and ``expansions`` name the work the worker is still doing (None: all it
        holds). A worker passes them so that what one of its loops gave up on after an error is
        not renewed: that lease runs out and the work goes back to the queue (or it was failed)."""
        now = utcnow()
        until = now + timedelta(seconds=lease)
        renew = [D.lease_owner == worker_id, D.state == DeliveryState.IN_FLIGHT.value]
        if hold is not None:
            renew.append(D.updated_at > now - timedelta(seconds=hold))  # updated_at: claimed at
        expanding = [N.lease_owner == worker_id, N.state == NotificationState.EXPANDING.value]
        renewed = 0
        with self._tx() as conn:
            conn.execute(
                self._insert(W.__table__)
                .values(id=worker_id[:64], started_at=now, heartbeat_at=now)
                .on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now})
            )
            if deliveries is None:
                renewed = conn.execute(update(D).where(*renew).values(next_attempt_at=until)).rowcount
            else:
                ids = sorted(deliveries)
                for i in range(0, len(ids), _IN_CHUNK):
                    renewed += conn.execute(
                        update(D)
                        .where(D.id.in_(ids[i : i + _IN_CHUNK]), *renew)
                        .values(next_attempt_at=until)
                    ).rowcount
            if expansions is None:
                conn.execute(update(N).where(*expanding).values(due_at=until))
            elif expansions:
                nids = sorted(expansions)
                for i in range(0, len(nids), _IN_CHUNK):
                    conn.execute(
                        update(N).where(N.id.in_(nids[i : i + _IN_CHUNK]), *expanding).values(due_at=until)
                    )
        return int(renewed or 0)

    def forget_worker(self, worker_id: str) -> None:
        """A worker that stopped cleanly (after :meth:`release`) is not listed any more."""
        with self._tx() as conn:
            conn.execute(delete(W).where(W.id == worker_id[:64]))

    def live_workers(self, within: float) -> int:
        """Workers whose last heartbeat is less than ``within`` seconds old."""
        since = utcnow() - timedelta(seconds=within)
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(W).where(W.heartbeat_at > since)).scalar_one()
            )

    def forget_dead_workers(self, older_than: float) -> int:
        """Drop the rows of workers silent for ``older_than`` seconds (their leases ran out long ago)."""
        since = utcnow() - timedelta(seconds=older_than)
        with self._tx() as conn:
            return int(conn.execute(delete(W).where(W.heartbeat_at <= since)).rowcount or 0)
