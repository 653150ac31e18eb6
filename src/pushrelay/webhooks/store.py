"""Sending webhook events: claiming them under a lease, then deleting or rescheduling them.

The events themselves are written by the outbox (:mod:`pushrelay.queue.events`). Senders claim
them under a lease exactly like deliveries: ``next_attempt_at`` is the retry time while waiting
and the lease deadline while a POST is in flight, so one index serves "due" and "abandoned by a
crashed process". At-least-once: a crash after the receiver answered and before the row is
deleted sends the event again; ``event_id`` lets receivers tell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, select, update

from ..queue.events import WebhookEventRow, insert_events
from ..queue.models import utcnow
from ..queue.sql_base import lease_rows

__all__ = ["PendingEvent", "WebhookEventStore"]

E = WebhookEventRow


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: int
    app: str
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int  # including the attempt about to be made

    def body(self) -> dict[str, Any]:
        """The event as receivers see it: ``{"type", "app", "event_id", "at", ...}``."""
        return {"type": self.kind, "app": self.app, "event_id": str(self.id), **self.payload}


class WebhookEventStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"

    def add(self, events: Iterable[tuple[str, str, Mapping[str, Any]]]) -> int:
        with self.engine.begin() as conn:
            return insert_events(conn, events)

    def claim(self, owner: str, apps: Sequence[str], *, limit: int, lease: float) -> list[PendingEvent]:
        """Lease up to ``limit`` due events of ``apps``, oldest first."""
        if not apps:
            return []
        now = utcnow()
        stmt = lease_rows(
            E.id,
            where=[E.next_attempt_at <= now, E.app.in_(list(apps))],
            order_by=E.id,
            limit=limit,
            values={
                "lease_owner": owner,
                "next_attempt_at": now + timedelta(seconds=lease),
                "attempts": E.attempts + 1,
            },
            returning=[E.id, E.app, E.kind, E.payload, E.created_at, E.attempts],
            skip_locked=self._pg,
        )
        with self.engine.begin() as conn:
            rows = conn.execute(stmt).all()
        events = [PendingEvent(r.id, r.app, r.kind, dict(r.payload), r.created_at, r.attempts) for r in rows]
        events.sort(key=lambda e: e.id)
        return events

    def delivered(self, owner: str, ids: Sequence[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(E).where(E.id.in_(list(ids)), E.lease_owner == owner))

    def failed(self, owner: str, retries: Sequence[tuple[int, float]], error: str) -> None:
        """Put events back, each due again after its delay in seconds."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                update(E)
                .where(E.id == bindparam("b_id"), E.lease_owner == owner)
                .values(next_attempt_at=bindparam("b_next"), lease_owner=None, last_error=error[:300]),
                [{"b_id": i, "b_next": now + timedelta(seconds=delay)} for i, delay in retries],
            )

    def release(self, owner: str) -> None:
        """Give back what ``owner`` holds (graceful shutdown): due again right now."""
        with self.engine.begin() as conn:
            conn.execute(
                update(E).where(E.lease_owner == owner).values(lease_owner=None, next_attempt_at=utcnow())
            )

    def purge(self, older_than: timedelta) -> dict[str, int]:
        """Drop events older than the retention; returns how many per app."""
        cutoff = utcnow() - older_than
        with self.engine.begin() as conn:
            apps = conn.execute(delete(E).where(E.created_at < cutoff).returning(E.app)).scalars().all()
        dropped: dict[str, int] = {}
        for app in apps:
            dropped[app] = dropped.get(app, 0) + 1
        return dropped

    def next_due(self, apps: Sequence[str]) -> float | None:
        """Seconds until the earliest event of ``apps`` is due (0 when one is), None when none waits."""
        if not apps:
            return None
        with self.engine.connect() as conn:
            first = conn.scalar(select(func.min(E.next_attempt_at)).where(E.app.in_(list(apps))))
        return None if first is None else max(0.0, (first - utcnow()).total_seconds())

    def pending(self) -> dict[str, int]:
        """Events waiting per app (for the metrics)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(E.app, func.count()).group_by(E.app)).all()
        return {str(app): int(n) for app, n in rows}
