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
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, exists, func, insert, literal_column, select, update
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
from .models import CLAIMABLE, AppPauseRow, utcnow
from .pauses import OutboxPauses
from .policy import DEFAULT_EXPIRY, IDEMPOTENCY_WINDOW
from .sql_base import IS_OPEN, OPEN, C, D, N, fold_counts, lease_rows, sqlite_time, unnest_params
from .sql_expand import OutboxExpansion
from .sql_reads import DeliveryPage, OutboxReads
from .wakeup import OutboxWakeups, notify_work

__all__ = ["DeliveryPage", "SqlOutbox", "request_hash"]

_CLAIMABLE = (DeliveryState.PENDING.value, DeliveryState.IN_FLIGHT.value)
# written as constants, not parameters: only then can the planners prove that the partial index of
# claimable rows (models.CLAIMABLE) holds every row the claim wants and read it in order
_CLAIMABLE_SQL = D.state.in_([literal_column(f"'{state}'") for state in _CLAIMABLE])
assert str(_CLAIMABLE_SQL.compile()).endswith(CLAIMABLE.split(" ", 1)[1])
_NOT_SENT = (
    NotificationState.SCHEDULED.value,
    NotificationState.PENDING.value,
    NotificationState.EXPANDING.value,
)


# what recording an answer writes, with the PostgreSQL types of the columns; ``next_attempt_at``
# None: kept (a final answer leaves the last lease deadline there)
_RECORD_TYPES = {
    "id": "bigint",
    "state": "varchar",
    "outcome": "varchar",
    "status": "integer",
    "reason": "varchar",
    "provider_id": "varchar",
    "token_invalid_since": "bigint",
    "next_attempt_at": "timestamp",
}
# Only rows still leased to us. The state test is written so that no index can serve it: without
# statistics (a fresh or fast-growing table), PostgreSQL judged ``state = 'in_flight'`` the most
# selective condition and read every in-flight row of the table through the state index for
# each batch, most of the database's CPU when recording; by primary key it is one probe a row.
_MINE = "d.lease_owner = %(owner)s AND d.state || '' = 'in_flight'"
_SQLITE_RECORD = (
    "UPDATE outbox_deliveries SET state = ?, outcome = ?, status = ?, reason = ?, provider_id = ?, "
    "token_invalid_since = ?, next_attempt_at = coalesce(?, next_attempt_at), lease_owner = NULL, "
    "updated_at = ? WHERE id = ? AND lease_owner = ? AND state = 'in_flight'"
)


@lru_cache(maxsize=64)
def _pg_record_sql(arrays: frozenset[str]) -> str:
    """One ``UPDATE ... FROM unnest(...)`` for a whole batch of answers, whatever their kinds: the
    columns that differ between answers are binary arrays, the others one parameter each."""
    names = [c for c in _RECORD_TYPES if c in arrays]

    def value(c: str) -> str:
        return f"v.{c}" if c in arrays else f"CAST(%({c})s AS {_RECORD_TYPES[c]})"

    sets = ", ".join(f"{c} = {value(c)}" for c in _RECORD_TYPES if c not in ("id", "next_attempt_at"))
    unnest = ", ".join(f"%({c})b::{_RECORD_TYPES[c]}[]" for c in names)
    return (
        # built from the constant table above only: no outside text reaches this statement
        f"UPDATE outbox_deliveries AS d SET {sets}, "  # noqa: S608
        f"next_attempt_at = coalesce({value('next_attempt_at')}, d.next_attempt_at), "
        f"lease_owner = NULL, updated_at = %(now)s FROM unnest({unnest}) AS v({', '.join(names)}) "
        f"WHERE d.id = {value('id')} AND {_MINE}"
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
                        IS_OPEN,
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
                _CLAIMABLE_SQL,
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
            if self._pg and notification_id is None:
                # the table of a send under way is never analysed in time: believing it small,
                # PostgreSQL read every due row and sorted them, per claim. Without a sort, the
                # partial index of claimable rows is read in order until the limit
                conn.exec_driver_sql("SET LOCAL enable_sort = off")
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
        columns = self._outcomes(results, expiry, self._paused(conn), now, park_broken)
        # rows still ours: the rest went to another worker when our lease ran out. One statement
        # for the batch; both drivers sum the rows of an executemany's parameter sets in rowcount
        if self._pg:
            # by primary key, always: on a table without statistics yet (a first large send) the
            # planner took the lease test for one row in 10,000s, and joined the batch to a scan
            # of the whole table (0.6 s a batch of 200 at 20k rows inserted leased, never updated)
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            arrays, params = unnest_params(columns, always="id")
            sql = _pg_record_sql(arrays)
            stored = conn.exec_driver_sql(sql, {**params, "owner": worker_id, "now": now}).rowcount
        else:
            columns["next_attempt_at"] = [
                None if t is None else sqlite_time(t) for t in columns["next_attempt_at"]
            ]
            ids, stamp = columns.pop("id"), sqlite_time(now)
            rows = [(*row, stamp, i, worker_id) for *row, i in zip(*columns.values(), ids, strict=True)]
            stored = conn.exec_driver_sql(_SQLITE_RECORD, rows).rowcount
        lost = len(results) - int(stored)
        if DeliveryState.DONE.value not in columns["state"]:
            return Recorded([], lost)
        return Recorded(self._complete(conn, sorted({c.notification_id for c, _ in results})), lost)

    def _outcomes(
        self,
        results: Sequence[tuple[ClaimedDelivery, DeliveryResult]],
        expiry: dict[int, datetime],
        paused: set[str],
        now: datetime,
        park_broken: bool = True,
    ) -> dict[str, list[Any]]:
        """What to write for each answer, column by column (see :data:`_RECORD_TYPES`). A final
        answer with nothing of its own to keep (the provider's id is the row's apns-id), most of a
        batch, leaves ``provider_id`` and ``token_invalid_since`` empty and the lease deadline in
        ``next_attempt_at``."""
        done = DeliveryState.DONE.value
        cols: dict[str, list[Any]] = {name: [] for name in _RECORD_TYPES}
        ids, states, outcomes, statuses = cols["id"], cols["state"], cols["outcome"], cols["status"]
        reasons, pids, tiss, nexts = (
            cols["reason"],
            cols["provider_id"],
            cols["token_invalid_since"],
            cols["next_attempt_at"],
        )
        for claimed, res in results:
            reason = (res.reason or "")[:300] or None
            state, outcome, pid, tis = done, None, None, None
            next_at: datetime | None = now
            if (res.outcome is Outcome.CONFIG_BROKEN and park_broken) or (
                res.outcome is Outcome.RETRY and claimed.app in paused
            ):
                state = DeliveryState.PAUSED.value
            elif res.outcome is Outcome.RETRY:
                retry_at = now + timedelta(seconds=self.retry.delay(claimed.attempts, res.retry_after))
                next_at, deadline = retry_at, expiry.get(claimed.id)
                if deadline is None or retry_at < deadline:
                    state = DeliveryState.PENDING.value
                else:
                    outcome = Outcome.EXPIRED.value
                    reason = f"expired after {claimed.attempts} attempts; last: {res.reason}"[:300]
            elif res.provider_id in (None, claimed.apns_id) and res.token_invalid_since is None:
                outcome, next_at = res.outcome.value, None
            else:
                outcome, pid, tis = res.outcome.value, res.provider_id, res.token_invalid_since
            ids.append(claimed.id)
            states.append(state)
            outcomes.append(outcome)
            statuses.append(res.status)
            reasons.append(reason)
            pids.append(pid)
            tiss.append(tis)
            nexts.append(next_at)
        return cols

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
                .where(D.notification_id == notification_id, IS_OPEN, D.state == DeliveryState.PENDING.value)
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
                    D.notification_id == notification_id, IS_OPEN, D.state == DeliveryState.PENDING.value
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
            completed = [r.id for r in unsent] + self._complete(conn, sorted(touched))
        if self._pg:
            self._compact_counts()
        return completed

    def _compact_counts(self, more_than: int = 64) -> None:
        """Fold the count rows of the notifications still sending that have gathered more than
        ``more_than`` (two or three a claimed and recorded batch): a large send's status stays a
        read of a few rows until it completes and is folded for good."""
        many = select(func.count()).select_from(C).where(C.notification_id == N.id).scalar_subquery()
        with self._tx() as conn:
            ids = conn.execute(
                select(N.id).where(N.state == NotificationState.SENDING.value, many > more_than)
            ).scalars()
            fold_counts(conn, list(ids))

    def complete_stragglers(self, limit: int = 500) -> list[str]:
        """Complete notifications still ``sending`` although none of their deliveries is open.

        Every write that finishes a notification's last delivery completes it in the same
        transaction (see ``_complete``), so this finds nothing unless that failed somewhere: it is
        the safety net that keeps a notification from staying ``sending`` forever, and what it
        finds is counted (``pushrelay_completions_swept_total``)."""
        open_left = exists().where(D.notification_id == N.id, IS_OPEN)
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
