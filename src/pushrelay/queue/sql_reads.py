"""Read-only queries of the SQL outbox: statuses, listings, delivery pages, metrics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select

from .interface import NotificationStatus
from .sql_base import OPEN, D, N, SqlBase, outcome_counts, status_from_row

__all__ = ["DeliveryPage", "OutboxReads"]


class DeliveryPage(list[dict[str, Any]]):
    next_cursor: int | None = None


class OutboxReads(SqlBase):
    def status(self, notification_id: str) -> NotificationStatus | None:
        found = self.summaries([notification_id])
        return found[0] if found else None

    def summaries(self, ids: Sequence[str]) -> list[NotificationStatus]:
        """Statuses of several notifications in two queries."""
        out: list[NotificationStatus] = []
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                rows = conn.execute(select(N).where(N.id.in_(list(ids[i : i + 500])))).all()
                counts = outcome_counts(conn, [r.id for r in rows])
                out += [status_from_row(r, counts[r.id]) for r in rows]
        return out

    def list_notifications(
        self,
        *,
        app: str | None = None,
        apps: Sequence[str] | None = None,
        state: str | None = None,
        surface: str | None = None,
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
        if surface is not None:
            q = q.where(N.surface == surface)
        if before is not None:
            ts, last_id = before
            q = q.where((N.created_at < ts) | and_(N.created_at == ts, N.id < last_id))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            counts = outcome_counts(conn, [r.id for r in rows])
        return [status_from_row(r, counts[r.id]) for r in rows]

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
                # when it is due again; for one that expired unsent, when it would have been
                "next_attempt_at": r.next_attempt_at
                if r.state == "pending" or r.outcome == "expired"
                else None,
                "token_invalid_since": r.token_invalid_since,
                "scheduled_for": r.scheduled_for,
                "updated_at": r.updated_at,
                "_id": r.id,
            }
            for r in rows[:limit]
        )
        page.next_cursor = int(rows[limit - 1].id) if len(rows) > limit else None
        return page

    def payloads(self, ids: Sequence[str]) -> dict[str, tuple[dict[str, Any], float]]:
        """Notification payloads and their deadline (UNIX seconds) for the workers."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(N.id, N.payload, N.expires_at).where(N.id.in_(list(ids)))).all()
        return {r.id: (dict(r.payload), r.expires_at.replace(tzinfo=UTC).timestamp()) for r in rows}

    def queue_depth(self) -> dict[str, int]:
        """Open deliveries per state, for the metrics."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(D.state, func.count()).where(D.state.in_(OPEN)).group_by(D.state)
            ).all()
        return {str(s): int(n) for s, n in rows}

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))
