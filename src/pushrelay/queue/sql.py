"""The embedded outbox on SQLite or PostgreSQL.

Claims are one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`` statement. On PostgreSQL
the inner select takes ``FOR UPDATE SKIP LOCKED`` so that many workers claim disjoint chunks
without waiting on each other. SQLite has a single writer anyway: the statement runs under the
database write lock, and a process-local lock keeps this process's threads (API + workers) from
contending for it and hitting ``database is locked``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from ..outcome import DeliveryResult, Outcome
from .interface import (
    ClaimedDelivery,
    DeliveryState,
    EnqueueResult,
    ExpansionJob,
    IdempotencyConflict,
    NotificationRequest,
    NotificationState,
    NotificationStatus,
    Recipients,
)
from .models import DeliveryRow, NotificationRow, utcnow
from .policy import DEFAULT_EXPIRY, IDEMPOTENCY_WINDOW, RetryPolicy

__all__ = ["DeliveryPage", "SqlOutbox"]

N = NotificationRow
D = DeliveryRow
_OPEN = (DeliveryState.PENDING.value, DeliveryState.IN_FLIGHT.value)
_UNEXPANDED = (NotificationState.SCHEDULED.value, NotificationState.PENDING.value)


def request_hash(req: NotificationRequest) -> str:
    """Fingerprint of what was asked, to tell a replay of an idempotent request from a conflict."""
    doc = {
        "app": req.app,
        "notification": req.notification,
        "recipients": req.recipients.to_json(),
        "send_at": req.send_at.isoformat() if req.send_at else None,
        "expires_at": req.expires_at.isoformat() if req.expires_at else None,
        "targets": sorted(req.targets),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _naive(dt: datetime | None) -> datetime | None:
    if dt is None or dt.tzinfo is None:
        return dt
    return (dt - dt.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]


class DeliveryPage(list[dict[str, Any]]):
    next_cursor: int | None = None


class SqlOutbox:
    """:class:`~pushrelay.queue.interface.Outbox` on a SQLAlchemy engine."""

    def __init__(self, engine: Engine, *, retry: RetryPolicy | None = None) -> None:
        self.engine = engine
        self.retry = retry or RetryPolicy()
        self._pg = engine.dialect.name == "postgresql"
        self._write_lock = nullcontext() if self._pg else threading.Lock()

    # -- transactions ------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    def _insert(self, table: Any) -> Any:
        return pg_insert(table) if self._pg else sqlite_insert(table)

    # -- accepting ---------------------------------------------------------------------------
    def enqueue(self, request: NotificationRequest) -> EnqueueResult:
        """Commit the request; with an idempotency key seen in the last 24 h, return the first one."""
        now = utcnow()
        send_at = _naive(request.send_at)
        expires_at = _naive(request.expires_at) or now + DEFAULT_EXPIRY
        digest = request_hash(request)
        key = request.idempotency_key
        for _ in range(2):  # second round only after losing an insert race on the same key
            try:
                with self._tx() as conn:
                    if key is not None:
                        found = self._existing_key(conn, request.app, key, digest, now)
                        if found is not None:
                            return EnqueueResult(found, created=False)
                    nid = str(uuid.uuid4())
                    scheduled = send_at is not None and send_at > now
                    conn.execute(
                        insert(N).values(
                            id=nid,
                            app=request.app,
                            state=(
                                NotificationState.SCHEDULED if scheduled else NotificationState.PENDING
                            ).value,
                            payload=request.notification,
                            recipients=request.recipients.to_json(),
                            targets=list(request.targets),
                            created_at=now,
                            send_at=send_at,
                            expires_at=expires_at,
                            due_at=send_at if scheduled else now,
                            warnings=[],
                            errors=[],
                            idempotency_key=key,
                            request_hash=digest,
                            api_key_id=request.api_key_id,
                        )
                    )
                    return EnqueueResult(nid, created=True)
            except IntegrityError:
                if key is None:
                    raise
        raise RuntimeError("idempotency key insert kept conflicting")  # pragma: no cover

    def _existing_key(self, conn: Connection, app: str, key: str, digest: str, now: datetime) -> str | None:
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
                    .where(D.notification_id == notification_id, D.state == DeliveryState.PENDING.value)
                    .values(state=DeliveryState.CANCELLED.value, updated_at=now)
                )
        return self.status(notification_id)

    # -- reading -----------------------------------------------------------------------------
    def status(self, notification_id: str) -> NotificationStatus | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(N).where(N.id == notification_id)).first()
            if row is None:
                return None
            counts = self._counts(conn, notification_id)
        return self._status_from(row, counts)

    @staticmethod
    def _status_from(row: Any, counts: dict[str, int]) -> NotificationStatus:
        return NotificationStatus(
            id=row.id,
            app=row.app,
            state=row.state,
            created_at=row.created_at,
            send_at=row.send_at,
            expires_at=row.expires_at,
            completed_at=row.completed_at,
            counts=counts,
            warnings=list(row.warnings or []),
            errors=list(row.errors or []),
            notification=dict(row.payload or {}),
            recipients=dict(row.recipients or {}),
            idempotency_key=row.idempotency_key,
        )

    @staticmethod
    def _counts(conn: Connection, notification_id: str) -> dict[str, int]:
        counts: dict[str, int] = {"total": 0}
        rows = conn.execute(
            select(D.state, D.outcome, func.count())
            .where(D.notification_id == notification_id)
            .group_by(D.state, D.outcome)
        )
        for state, outcome, n in rows:
            name = str(outcome if state == DeliveryState.DONE.value else state)
            counts[name] = counts.get(name, 0) + int(n)
            counts["total"] += int(n)
        return counts

    def list_notifications(
        self,
        *,
        app: str | None = None,
        apps: Sequence[str] | None = None,
        state: str | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[NotificationStatus]:
        """Most recent first; ``before`` is the (created_at, id) of the last item of the previous page."""
        q = select(N).order_by(N.created_at.desc(), N.id.desc()).limit(limit)
        if app is not None:
            q = q.where(N.app == app)
        if apps:
            q = q.where(N.app.in_(list(apps)))
        if state is not None:
            q = q.where(N.state == state)
        if before is not None:
            ts, last_id = before
            q = q.where((N.created_at < ts) | and_(N.created_at == ts, N.id < last_id))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            return [self._status_from(r, self._counts(conn, r.id)) for r in rows]

    def deliveries(self, notification_id: str, *, limit: int = 100, after: int = 0) -> DeliveryPage:
        q = (
            select(D)
            .where(D.notification_id == notification_id, D.id > after)
            .order_by(D.id)
            .limit(limit + 1)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        page = DeliveryPage(
            {
                "platform": r.platform,
                "token": r.token,
                "email": r.email,
                "environment": r.environment,
                "state": r.state,
                "outcome": r.outcome,
                "status": r.status,
                "reason": r.reason,
                "apns_id": r.apns_id,
                "attempts": r.attempts,
                "token_invalid_since": r.token_invalid_since,
                "updated_at": r.updated_at,
                "_id": r.id,
            }
            for r in rows[:limit]
        )
        page.next_cursor = int(rows[limit - 1].id) if len(rows) > limit else None
        return page

    # -- expansion: recipients -> deliveries -------------------------------------------------
    def claim_expansions(self, worker_id: str, *, limit: int, lease: float) -> list[ExpansionJob]:
        now = utcnow()
        sub = (
            select(N.id)
            .where(
                N.state.in_([*_UNEXPANDED, NotificationState.EXPANDING.value]),
                N.due_at <= now,
                N.expires_at > now,
            )
            .order_by(N.due_at)
            .limit(limit)
        )
        if self._pg:
            sub = sub.with_for_update(skip_locked=True)
        stmt = (
            update(N)
            .where(N.id.in_(sub.scalar_subquery()))
            .values(
                state=NotificationState.EXPANDING.value,
                lease_owner=worker_id,
                due_at=now + timedelta(seconds=lease),
            )
            .returning(N.id, N.app, N.recipients, N.targets, N.cursor)
        )
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        return [
            ExpansionJob(r.id, r.app, Recipients.from_json(r.recipients), tuple(r.targets or ()), r.cursor)
            for r in rows
        ]

    def add_deliveries(
        self,
        notification_id: str,
        devices: Sequence[tuple[str, str, str | None, str | None]],
        *,
        cursor: str | None,
        worker_id: str,
        lease: float,
    ) -> int:
        """Insert deliveries for ``(platform, token, environment, email)`` and move the cursor, in one
        transaction, while we still hold the expansion lease. Returns -1 when the lease was lost
        (cancelled or taken over): the caller must stop expanding."""
        now = utcnow()
        with self._tx() as conn:
            row = conn.execute(
                update(N)
                .where(
                    N.id == notification_id,
                    N.lease_owner == worker_id,
                    N.state == NotificationState.EXPANDING.value,
                )
                .values(cursor=cursor, due_at=now + timedelta(seconds=lease))
                .returning(N.expires_at)
            ).first()
            if row is None:
                return -1
            if not devices:
                return 0
            values = [
                {
                    "notification_id": notification_id,
                    "app": "",
                    "platform": p,
                    "token": t,
                    "environment": env,
                    "email": email,
                    "apns_id": str(uuid.uuid4()),
                    "state": DeliveryState.PENDING.value,
                    "next_attempt_at": now,
                    "expires_at": row.expires_at,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for p, t, env, email in devices
            ]
            app = conn.execute(select(N.app).where(N.id == notification_id)).scalar_one()
            for v in values:
                v["app"] = app
            added = 0
            for i in range(0, len(values), 500):  # SQLite allows ~32k bound values per statement
                stmt = (
                    self._insert(D.__table__)
                    .values(values[i : i + 500])
                    .on_conflict_do_nothing(index_elements=["notification_id", "token"])
                    .returning(D.id)
                )
                added += len(conn.execute(stmt).all())
            return added

    def expand_many(
        self,
        worker_id: str,
        jobs: Sequence[tuple[str, Sequence[tuple[str, str, str | None, str | None]], list[str], list[str]]],
    ) -> list[str]:
        """Resolve several small notifications at once: ``(id, devices, warnings, errors)`` each.

        One transaction for the lot (inserting their deliveries and marking them sending) instead of
        a few per notification: with many single-recipient sends the expansion would otherwise be
        the bottleneck. Jobs whose lease we lost are skipped. Returns the notifications completed
        right away (no device)."""
        now = utcnow()
        with self._tx() as conn:
            mine = set(
                conn.execute(
                    select(N.id).where(
                        N.id.in_([j[0] for j in jobs]),
                        N.lease_owner == worker_id,
                        N.state == NotificationState.EXPANDING.value,
                    )
                ).scalars()
            )
            meta = {
                r.id: (r.app, r.expires_at)
                for r in conn.execute(select(N.id, N.app, N.expires_at).where(N.id.in_(list(mine))))
            }
            values: list[dict[str, Any]] = []
            for nid, devices, warnings, errors in jobs:
                if nid not in mine:
                    continue
                app, expires_at = meta[nid]
                values += [
                    {
                        "notification_id": nid,
                        "app": app,
                        "platform": p,
                        "token": t,
                        "environment": env,
                        "email": email,
                        "apns_id": str(uuid.uuid4()),
                        "state": DeliveryState.PENDING.value,
                        "next_attempt_at": now,
                        "expires_at": expires_at,
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for p, t, env, email in devices
                ]
                conn.execute(
                    update(N)
                    .where(N.id == nid)
                    .values(
                        state=NotificationState.SENDING.value,
                        warnings=warnings,
                        errors=errors,
                        lease_owner=None,
                    )
                )
            for i in range(0, len(values), 500):
                conn.execute(
                    self._insert(D.__table__)
                    .values(values[i : i + 500])
                    .on_conflict_do_nothing(index_elements=["notification_id", "token"])
                )
            return self._complete(conn, sorted(mine))

    def summaries(self, ids: Sequence[str]) -> list[NotificationStatus]:
        """Statuses of several notifications in two queries (for completion events)."""
        if not ids:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(select(N).where(N.id.in_(list(ids)))).all()
            counts: dict[str, dict[str, int]] = {r.id: {"total": 0} for r in rows}
            q = (
                select(D.notification_id, D.state, D.outcome, func.count())
                .where(D.notification_id.in_(list(ids)))
                .group_by(D.notification_id, D.state, D.outcome)
            )
            for nid, state, outcome, n in conn.execute(q):
                c = counts[nid]
                name = str(outcome if state == DeliveryState.DONE.value else state)
                c[name] = c.get(name, 0) + int(n)
                c["total"] += int(n)
        return [self._status_from(r, counts[r.id]) for r in rows]

    def finish_expansion(self, notification_id: str, *, warnings: list[str], errors: list[str]) -> list[str]:
        """Mark the recipients resolved; returns ``[id]`` when that already completes it (no devices)."""
        with self._tx() as conn:
            conn.execute(
                update(N)
                .where(N.id == notification_id, N.state == NotificationState.EXPANDING.value)
                .values(
                    state=NotificationState.SENDING.value, warnings=warnings, errors=errors, lease_owner=None
                )
            )
            return self._complete(conn, [notification_id])

    # -- delivery ----------------------------------------------------------------------------
    def claim(self, worker_id: str, *, limit: int, lease: float) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries, including those whose previous lease ran out."""
        now = utcnow()
        sub = (
            select(D.id)
            .where(D.state.in_(_OPEN), D.next_attempt_at <= now, D.expires_at > now)
            .order_by(D.next_attempt_at)
            .limit(limit)
        )
        if self._pg:
            sub = sub.with_for_update(skip_locked=True)
        stmt = (
            update(D)
            .where(D.id.in_(sub.scalar_subquery()))
            .values(
                state=DeliveryState.IN_FLIGHT.value,
                lease_owner=worker_id,
                next_attempt_at=now + timedelta(seconds=lease),
                attempts=D.attempts + 1,
                updated_at=now,
            )
            .returning(
                D.id, D.notification_id, D.app, D.platform, D.environment, D.token, D.apns_id, D.attempts
            )
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

    def record(self, worker_id: str, results: Sequence[tuple[ClaimedDelivery, DeliveryResult]]) -> list[str]:
        """Store outcomes; transient ones go back to pending with backoff (or end as ``expired``).

        A row whose lease we lost meanwhile is left alone: its new owner records it. Returns the ids
        of notifications that this completed."""
        if not results:
            return []
        now = utcnow()
        final: list[dict[str, Any]] = []
        again: list[dict[str, Any]] = []
        with self._tx() as conn:
            expiry = dict(
                conn.execute(select(D.id, D.expires_at).where(D.id.in_([c.id for c, _ in results]))).all()
            )
            for claimed, res in results:
                base = {
                    "b_id": claimed.id,
                    "b_status": res.status,
                    "b_reason": (res.reason or "")[:300] or None,
                }
                if res.outcome is Outcome.RETRY:
                    nxt = now + timedelta(seconds=self.retry.delay(claimed.attempts, res.retry_after))
                    exp = expiry.get(claimed.id)
                    if exp is None or nxt < exp:
                        again.append({**base, "b_next": nxt})
                        continue
                    final.append(
                        {
                            **base,
                            "b_outcome": Outcome.EXPIRED.value,
                            "b_pid": None,
                            "b_tis": None,
                            "b_reason": f"expired after {claimed.attempts} attempts; last: {res.reason}"[
                                :300
                            ],
                        }
                    )
                    continue
                final.append(
                    {
                        **base,
                        "b_outcome": res.outcome.value,
                        "b_pid": res.provider_id,
                        "b_tis": res.token_invalid_since,
                    }
                )
            mine = and_(
                D.id == bindparam("b_id"),
                D.lease_owner == worker_id,
                D.state == DeliveryState.IN_FLIGHT.value,
            )
            if final:
                conn.execute(
                    update(D)
                    .where(mine)
                    .values(
                        state=DeliveryState.DONE.value,
                        outcome=bindparam("b_outcome"),
                        status=bindparam("b_status"),
                        reason=bindparam("b_reason"),
                        provider_id=bindparam("b_pid"),
                        token_invalid_since=bindparam("b_tis"),
                        lease_owner=None,
                        updated_at=now,
                    ),
                    final,
                )
            if again:
                conn.execute(
                    update(D)
                    .where(mine)
                    .values(
                        state=DeliveryState.PENDING.value,
                        status=bindparam("b_status"),
                        reason=bindparam("b_reason"),
                        next_attempt_at=bindparam("b_next"),
                        lease_owner=None,
                        updated_at=now,
                    ),
                    again,
                )
            if not final:
                return []
            return self._complete(conn, sorted({c.notification_id for c, _ in results}))

    def release(self, worker_id: str) -> int:
        """Give back everything leased by ``worker_id`` (graceful shutdown): due again right now."""
        now = utcnow()
        with self._tx() as conn:
            n = conn.execute(
                update(D)
                .where(D.lease_owner == worker_id, D.state == DeliveryState.IN_FLIGHT.value)
                .values(state=DeliveryState.PENDING.value, lease_owner=None, next_attempt_at=now)
            ).rowcount
            conn.execute(
                update(N)
                .where(N.lease_owner == worker_id, N.state == NotificationState.EXPANDING.value)
                .values(lease_owner=None, due_at=now)
            )
        return int(n or 0)

    def sweep(self) -> list[str]:
        """End what passed its deadline as ``expired``; returns the notifications this completed."""
        now = utcnow()
        with self._tx() as conn:
            touched = (
                conn.execute(
                    update(D)
                    .where(D.state.in_(_OPEN), D.expires_at <= now, D.next_attempt_at <= now)
                    .values(
                        state=DeliveryState.DONE.value,
                        outcome=Outcome.EXPIRED.value,
                        lease_owner=None,
                        reason=func.coalesce(D.reason, "expired before it could be delivered"),
                        updated_at=now,
                    )
                    .returning(D.notification_id)
                )
                .scalars()
                .all()
            )
            unsent = (
                conn.execute(
                    update(N)
                    .where(
                        N.state.in_([*_UNEXPANDED, NotificationState.EXPANDING.value]), N.expires_at <= now
                    )
                    .values(
                        state=NotificationState.COMPLETED.value,
                        completed_at=now,
                        lease_owner=None,
                        errors=["the notification expired before it could be sent"],
                    )
                    .returning(N.id)
                )
                .scalars()
                .all()
            )
            return list(unsent) + self._complete(conn, sorted(set(touched)))

    def _complete(self, conn: Connection, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        open_left = exists().where(D.notification_id == N.id, D.state.in_(_OPEN))
        done: list[str] = []
        for i in range(0, len(ids), 500):
            done += (
                conn.execute(
                    update(N)
                    .where(
                        N.id.in_(list(ids[i : i + 500])),
                        N.state == NotificationState.SENDING.value,
                        ~open_left,
                    )
                    .values(state=NotificationState.COMPLETED.value, completed_at=utcnow())
                    .returning(N.id)
                )
                .scalars()
                .all()
            )
        return done

    def payloads(self, ids: Sequence[str]) -> dict[str, tuple[dict[str, Any], float]]:
        """Notification payloads and their deadline (UNIX seconds) for the workers."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(N.id, N.payload, N.expires_at).where(N.id.in_(list(ids)))).all()
        return {r.id: (dict(r.payload), r.expires_at.replace(tzinfo=UTC).timestamp()) for r in rows}

    def queue_depth(self) -> dict[str, int]:
        """Open deliveries per state, for the metrics."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(D.state, func.count()).where(D.state.in_(_OPEN)).group_by(D.state)
            ).all()
        return {str(s): int(n) for s, n in rows}

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))
