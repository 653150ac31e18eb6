"""The embedded outbox on SQLite or PostgreSQL: accepting, claiming, recording, sweeping.

Claims are one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`` statement. On PostgreSQL
the inner select takes ``FOR UPDATE SKIP LOCKED`` so that many workers claim disjoint chunks
without waiting on each other; SQLite has a single writer anyway (see :mod:`.sql_base`).

The class is assembled from the parts in :mod:`.sql_expand` (recipients to deliveries),
:mod:`.sql_reads` (statuses, pages) and :mod:`.pauses` (apps whose configuration is broken).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..outcome import DeliveryResult, Outcome
from .interface import (
    ClaimedDelivery,
    DeliveryState,
    EnqueueResult,
    IdempotencyConflict,
    NotificationRequest,
    NotificationState,
    NotificationStatus,
    Overdue,
    Recorded,
)
from .leases import OutboxLeases
from .models import AppPauseRow, utcnow
from .pauses import OutboxPauses
from .policy import DEFAULT_EXPIRY, IDEMPOTENCY_WINDOW
from .sql_base import OPEN, D, N, lease_rows
from .sql_expand import OutboxExpansion
from .sql_reads import DeliveryPage, OutboxReads
from .wakeup import OutboxWakeups, notify_work

__all__ = ["DeliveryPage", "SqlOutbox", "request_hash"]

_CLAIMABLE = (DeliveryState.PENDING.value, DeliveryState.IN_FLIGHT.value)
_NOT_SENT = (
    NotificationState.SCHEDULED.value,
    NotificationState.PENDING.value,
    NotificationState.EXPANDING.value,
)


# one answer that is not like the others of its batch (see SqlOutbox._outcomes)
_RECORD_ONE = (
    update(D)
    .where(
        D.id == bindparam("b_id"),
        D.lease_owner == bindparam("b_owner"),
        D.state == DeliveryState.IN_FLIGHT.value,
    )
    .values(
        state=bindparam("b_state"),
        outcome=bindparam("b_outcome"),
        status=bindparam("b_status"),
        reason=bindparam("b_reason"),
        provider_id=bindparam("b_pid"),
        token_invalid_since=bindparam("b_tis"),
        next_attempt_at=bindparam("b_next"),
        lease_owner=None,
        updated_at=bindparam("b_now"),
    )
)


def request_hash(req: NotificationRequest) -> str:
    """Fingerprint of what was asked, to tell a replay of an idempotent request from a conflict."""
    doc: dict[str, Any] = {
        "app": req.app,
        "notification": req.notification,
        "recipients": req.recipients.to_json(),
        "send_at": req.send_at.isoformat() if req.send_at else None,
        "expires_at": req.expires_at.isoformat() if req.expires_at else None,
        "targets": sorted(req.targets),
    }
    if req.deliver_at_local is not None or req.urgent:  # absent before 0007: older hashes still match
        doc["deliver_at_local"] = req.deliver_at_local
        doc["urgent"] = req.urgent
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _naive(dt: datetime | None) -> datetime | None:
    if dt is None or dt.tzinfo is None:
        return dt
    return (dt - dt.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]


class SqlOutbox(OutboxExpansion, OutboxReads, OutboxPauses, OutboxLeases, OutboxWakeups):
    """:class:`~pushrelay.queue.interface.Outbox` on a SQLAlchemy engine."""

    # -- accepting ---------------------------------------------------------------------------
    def enqueue(self, request: NotificationRequest) -> EnqueueResult:
        """Commit the request; with an idempotency key seen in the last 24 h, return the first one."""
        return self.enqueue_many([request])[0]

    def enqueue_many(self, requests: Sequence[NotificationRequest]) -> list[EnqueueResult]:
        """Commit every request in one transaction, or none (an :class:`IdempotencyConflict` names
        the request by ``index``)."""
        for attempt in range(2):  # a second round only after losing an insert race on a key
            try:
                with self._tx() as conn:
                    return self._enqueue(conn, requests, utcnow())
            except IntegrityError:
                if attempt or not any(r.idempotency_key for r in requests):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _enqueue(
        self, conn: Connection, requests: Sequence[NotificationRequest], now: datetime
    ) -> list[EnqueueResult]:
        results: list[EnqueueResult] = []
        rows: list[dict[str, Any]] = []
        in_batch: dict[tuple[str, str], tuple[str, str]] = {}  # the same key twice in one batch
        for index, request in enumerate(requests):
            digest = request_hash(request)
            key = request.idempotency_key
            if key is not None:
                found = in_batch.get((request.app, key))
                try:
                    if found is not None and found[1] != digest:
                        raise IdempotencyConflict(found[0])
                    existing = found[0] if found else self._existing_key(conn, request.app, key, digest, now)
                except IdempotencyConflict as exc:
                    exc.index = index
                    raise
                if existing is not None:
                    results.append(EnqueueResult(existing, created=False))
                    continue
            row = self._notification_row(request, digest, now)
            if key is not None:
                in_batch[(request.app, key)] = (row["id"], digest)
            rows.append(row)
            results.append(EnqueueResult(row["id"], created=True))
        if rows:
            conn.execute(insert(N), rows)
            if any(row["state"] == NotificationState.PENDING.value for row in rows):
                notify_work(conn)  # delivered at commit: workers elsewhere wake and expand it
        return results

    @staticmethod
    def _notification_row(request: NotificationRequest, digest: str, now: datetime) -> dict[str, Any]:
        send_at = _naive(request.send_at)
        scheduled = send_at is not None and send_at > now
        return {
            "id": str(uuid.uuid4()),
            "app": request.app,
            "state": (NotificationState.SCHEDULED if scheduled else NotificationState.PENDING).value,
            "payload": request.notification,
            "recipients": request.recipients.to_json(),
            "targets": list(request.targets),
            "created_at": now,
            "send_at": send_at,
            "expires_at": _naive(request.expires_at) or now + DEFAULT_EXPIRY,
            "due_at": send_at if scheduled else now,
            "completed_at": None,
            "lease_owner": None,
            "cursor": None,
            "warnings": [],
            "errors": [],
            "idempotency_key": request.idempotency_key,
            "request_hash": digest,
            "api_key_id": request.api_key_id,
            "surface": request.surface,
            "deliver_at_local": request.deliver_at_local,
            "urgent": request.urgent,
        }

    @staticmethod
    def _existing_key(conn: Connection, app: str, key: str, digest: str, now: datetime) -> str | None:
        row = conn.execute(
            select(N.id, N.created_at, N.request_hash).where(N.app == app, N.idempotency_key == key)
        ).first()
        if row is None:
            return None
        if row.created_at <= now - IDEMPOTENCY_WINDOW:
            # the window is over: free the key for this new request, keep the old notification
            conn.execute(update(N).where(N.id == row.id).values(idempotency_key=None))
            return None
        if row.request_hash != digest:
            raise IdempotencyConflict(row.id)
        return str(row.id)

    def cancel(self, notification_id: str) -> NotificationStatus | None:
        """Cancel what is not delivered yet. Deliveries already in flight finish and are recorded."""
        now = utcnow()
        with self._tx() as conn:
            changed = conn.execute(
                update(N)
                .where(
                    N.id == notification_id,
                    N.state.not_in([NotificationState.COMPLETED, NotificationState.CANCELLED]),
                )
                .values(state=NotificationState.CANCELLED.value, completed_at=now, lease_owner=None)
            ).rowcount
            if changed:
                conn.execute(
                    update(D)
                    .where(
                        D.notification_id == notification_id,
                        D.state.in_([DeliveryState.PENDING.value, DeliveryState.PAUSED.value]),
                    )
                    .values(state=DeliveryState.CANCELLED.value, updated_at=now)
                )
        return self.status(notification_id)

    # -- delivery ----------------------------------------------------------------------------
    def claim(
        self, worker_id: str, *, limit: int, lease: float, notification_id: str | None = None
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries of apps that are not paused, including those whose
        previous lease ran out (only those of ``notification_id`` if given: the inline worker)."""
        now = utcnow()
        only = [] if notification_id is None else [D.notification_id == notification_id]
        stmt = lease_rows(
            D.id,
            where=[
                D.state.in_(_CLAIMABLE),
                D.next_attempt_at <= now,
                D.expires_at > now,
                D.app.not_in(select(AppPauseRow.app)),
                *only,
            ],
            order_by=D.next_attempt_at,
            limit=limit,
            values={
                "state": DeliveryState.IN_FLIGHT.value,
                "lease_owner": worker_id,
                "next_attempt_at": now + timedelta(seconds=lease),
                "attempts": D.attempts + 1,
                "updated_at": now,
            },
            returning=[
                D.id,
                D.notification_id,
                D.app,
                D.platform,
                D.environment,
                D.token,
                D.apns_id,
                D.attempts,
            ],
            skip_locked=self._pg,
        )
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        out = [
            ClaimedDelivery(
                r.id, r.notification_id, r.app, r.platform, r.environment, r.token, r.apns_id, r.attempts
            )
            for r in rows
        ]
        out.sort(key=lambda c: c.id)
        return out

    def record(
        self,
        worker_id: str,
        results: Sequence[tuple[ClaimedDelivery, DeliveryResult]],
        *,
        park_broken: bool = True,
    ) -> Recorded:
        """Store outcomes. Transient ones go back to pending with backoff (or end as ``expired``),
        ``config_broken`` ones are parked (their app is paused, see :mod:`.pauses`) unless
        ``park_broken`` is false (a one-shot send: final), the rest are final.

        A row whose lease we lost meanwhile is left alone (its new owner records it) and counted
        in the answer's ``lost``. Returns that and the notifications this completed."""
        if not results:
            return Recorded()
        with self._tx() as conn:
            return self._record(conn, worker_id, results, utcnow(), park_broken)

    def _record(
        self,
        conn: Connection,
        worker_id: str,
        results: Sequence[tuple[ClaimedDelivery, DeliveryResult]],
        now: datetime,
        park_broken: bool = True,
    ) -> Recorded:
        retried = [c.id for c, res in results if res.outcome is Outcome.RETRY]
        expiry: dict[int, datetime] = {}
        if retried:
            expiry = dict(conn.execute(select(D.id, D.expires_at).where(D.id.in_(retried))).all())
        alike, rows = self._outcomes(results, expiry, self._paused(conn), now, park_broken)
        mine = (D.lease_owner == worker_id, D.state == DeliveryState.IN_FLIGHT.value)
        stored = 0  # rows still ours: the rest went to another worker when our lease ran out
        for (outcome, status, reason), ids in alike.items():
            for i in range(0, len(ids), 500):
                stored += conn.execute(
                    update(D)
                    .where(D.id.in_(ids[i : i + 500]), *mine)
                    .values(
                        state=DeliveryState.DONE.value,
                        outcome=outcome,
                        status=status,
                        reason=reason,
                        lease_owner=None,
                        updated_at=now,
                    )
                ).rowcount
        if rows:
            # executemany: both drivers sum the rows of every parameter set into rowcount
            stored += conn.execute(
                _RECORD_ONE, [{**row, "b_owner": worker_id, "b_now": now} for row in rows]
            ).rowcount
        lost = len(results) - stored
        if not alike and all(row["b_state"] != DeliveryState.DONE.value for row in rows):
            return Recorded([], lost)
        return Recorded(self._complete(conn, sorted({c.notification_id for c, _ in results})), lost)

    def _outcomes(
        self,
        results: Sequence[tuple[ClaimedDelivery, DeliveryResult]],
        expiry: dict[int, datetime],
        paused: set[str],
        now: datetime,
        park_broken: bool = True,
    ) -> tuple[dict[tuple[str, int, str | None], list[int]], list[dict[str, Any]]]:
        """What to write for each answer. Most answers in a batch are alike (200 OK, nothing of their
        own to keep: the provider's id is the row's apns-id), and are grouped so that one
        ``UPDATE ... WHERE id IN (...)`` per kind records them; the others get a row each."""
        alike: dict[tuple[str, int, str | None], list[int]] = {}
        rows: list[dict[str, Any]] = []
        for claimed, res in results:
            reason = (res.reason or "")[:300] or None
            row: dict[str, Any] = {"b_id": claimed.id, "b_status": res.status, "b_reason": reason, "b_outcome": None,
                   "b_pid": None, "b_tis": None, "b_next": now, "b_state": DeliveryState.DONE.value}  # fmt: skip
            if (res.outcome is Outcome.CONFIG_BROKEN and park_broken) or (
                res.outcome is Outcome.RETRY and claimed.app in paused
            ):
                row["b_state"] = DeliveryState.PAUSED.value
            elif res.outcome is Outcome.RETRY:
                row["b_next"] = now + timedelta(seconds=self.retry.delay(claimed.attempts, res.retry_after))
                deadline = expiry.get(claimed.id)
                if deadline is None or row["b_next"] < deadline:
                    row["b_state"] = DeliveryState.PENDING.value
                else:
                    row["b_outcome"] = Outcome.EXPIRED.value
                    row["b_reason"] = f"expired after {claimed.attempts} attempts; last: {res.reason}"[:300]
            elif res.provider_id in (None, claimed.apns_id) and res.token_invalid_since is None:
                alike.setdefault((res.outcome.value, res.status, reason), []).append(claimed.id)
                continue
            else:
                row.update(b_outcome=res.outcome.value, b_pid=res.provider_id, b_tis=res.token_invalid_since)
            rows.append(row)
        return alike, rows

    def postpone(self, worker_id: str, items: Sequence[tuple[ClaimedDelivery, datetime]]) -> None:
        """Give back claimed deliveries unsent, due at the given (aware) time: their target is under
        a provider's Retry-After. The claim is not counted as an attempt: nothing was requested."""
        if not items:
            return
        now = utcnow()
        with self._tx() as conn:
            for claimed, until in items:
                conn.execute(
                    update(D)
                    .where(
                        D.id == claimed.id,
                        D.lease_owner == worker_id,
                        D.state == DeliveryState.IN_FLIGHT.value,
                    )
                    .values(
                        state=DeliveryState.PENDING.value,
                        lease_owner=None,
                        next_attempt_at=_naive(until),
                        attempts=D.attempts - 1,
                        reason=f"deferred: the provider asked to wait until {until:%Y-%m-%dT%H:%M:%SZ}",
                        updated_at=now,
                    )
                )

    def abandon(self, notification_id: str, reason: str) -> list[str]:
        """End the pending deliveries of a one-shot send whose call is over as ``expired`` with
        ``reason`` (typically: deferred until a provider's Retry-After). Returns ``[id]`` when that
        completes the notification."""
        now = utcnow()
        with self._tx() as conn:
            conn.execute(
                update(D)
                .where(D.notification_id == notification_id, D.state == DeliveryState.PENDING.value)
                .values(
                    state=DeliveryState.DONE.value,
                    outcome=Outcome.EXPIRED.value,
                    reason=func.substr(reason + ": " + func.coalesce(D.reason, ""), 1, 300),
                    updated_at=now,
                )
            )
            return self._complete(conn, [notification_id])

    def next_due(self, notification_id: str) -> datetime | None:
        """When the next pending delivery of ``notification_id`` is due (aware UTC), or None when
        none is pending (all final, or in flight with some worker)."""
        with self.engine.connect() as conn:
            due = conn.execute(
                select(func.min(D.next_attempt_at)).where(
                    D.notification_id == notification_id, D.state == DeliveryState.PENDING.value
                )
            ).scalar()
        return due.replace(tzinfo=UTC) if due is not None else None

    def release(self, worker_id: str) -> int:
        """Give back everything leased by ``worker_id`` (graceful shutdown): due again right now."""
        now = utcnow()
        with self._tx() as conn:
            n = conn.execute(
                update(D)
                .where(D.lease_owner == worker_id, D.state == DeliveryState.IN_FLIGHT.value)
                .values(state=DeliveryState.PENDING.value, lease_owner=None, next_attempt_at=now)
            ).rowcount
            given_back = conn.execute(
                update(N)
                .where(N.lease_owner == worker_id, N.state == NotificationState.EXPANDING.value)
                .values(lease_owner=None, due_at=now)
            ).rowcount
            if n or given_back:
                notify_work(conn)  # the other workers take it over now, not at their next poll
        return int(n or 0)

    def sweep(self) -> list[str]:
        """End what passed its deadline as ``expired`` (parked deliveries included), and make due
        again what is parked for an app no longer paused. Returns the notifications this
        completed."""
        now = utcnow()
        with self._tx() as conn:
            expired_deliveries = (
                update(D)
                .where(D.state.in_(OPEN), D.expires_at <= now, D.next_attempt_at <= now)
                .values(
                    state=DeliveryState.DONE.value,
                    outcome=Outcome.EXPIRED.value,
                    lease_owner=None,
                    reason=func.coalesce(D.reason, "expired before it could be delivered"),
                    updated_at=now,
                )
                .returning(D.notification_id)
            )
            never_sent = (
                update(N)
                .where(N.state.in_(_NOT_SENT), N.expires_at <= now)
                .values(
                    state=NotificationState.COMPLETED.value,
                    completed_at=now,
                    lease_owner=None,
                    errors=["the notification expired before it could be sent"],
                )
                .returning(N.id, N.app)
            )
            touched = set(conn.execute(expired_deliveries).scalars())
            unsent = conn.execute(never_sent).all()
            if self._unpark_orphans(conn):
                notify_work(conn)
            self._completion_events(conn, [r.id for r in unsent if r.app in self.event_apps])
            return [r.id for r in unsent] + self._complete(conn, sorted(touched))

    def complete_stragglers(self, limit: int = 500) -> list[str]:
        """Complete notifications still ``sending`` although none of their deliveries is open.

        Every write that finishes a notification's last delivery completes it in the same
        transaction (see ``_complete``), so this finds nothing unless that failed somewhere: it is
        the safety net that keeps a notification from staying ``sending`` forever, and what it
        finds is counted (``pushrelay_completions_swept_total``)."""
        open_left = exists().where(D.notification_id == N.id, D.state.in_(OPEN))
        with self._tx() as conn:
            ids = list(
                conn.execute(
                    select(N.id).where(N.state == NotificationState.SENDING.value, ~open_left).limit(limit)
                ).scalars()
            )
            return self._complete(conn, ids)

    def overdue(self, older_than: float) -> list[Overdue]:
        """Per app, the open deliveries due more than ``older_than`` seconds ago and still not
        claimed (``pending``) or whose lease ran out that long ago (``in_flight``), apps that are
        paused left out: a healthy worker claims what is due within a poll."""
        now = utcnow()
        late = now - timedelta(seconds=older_than)
        query = (
            select(D.app, func.count(), func.min(D.next_attempt_at))
            .where(
                D.state.in_(_CLAIMABLE),
                D.next_attempt_at <= late,
                D.expires_at > now,
                D.app.not_in(select(AppPauseRow.app)),
            )
            .group_by(D.app)
            .order_by(D.app)
        )
        with self.engine.connect() as conn:
            return [Overdue(app, int(n), oldest) for app, n, oldest in conn.execute(query)]
