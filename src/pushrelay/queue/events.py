"""Webhook events waiting to be sent: the table, and how the outbox adds to it.

An event is written in the transaction that makes it true (a notification's completion is
inserted by the outbox in the same transaction that completes it), so that a crash loses neither.
The sending side is :mod:`pushrelay.webhooks.store`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Connection, DateTime, Index, Integer, String, insert
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base
from .models import utcnow

__all__ = ["WebhookEventRow", "insert_events"]

_BigId = BigInteger().with_variant(Integer(), "sqlite")


class WebhookEventRow(Base):
    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)

    __table_args__ = (
        Index("ix_webhook_events_next", "next_attempt_at"),
        Index("ix_webhook_events_created", "created_at"),
    )


E = WebhookEventRow


def insert_events(conn: Connection, events: Iterable[tuple[str, str, Mapping[str, Any]]]) -> int:
    """Add ``(app, kind, data)`` events inside the caller's transaction; returns how many."""
    now = utcnow()
    rows = [
        {
            "app": app,
            "kind": kind,
            "payload": {"at": _unix(now), **data},
            "created_at": now,
            "next_attempt_at": now,
            "attempts": 0,
        }
        for app, kind, data in events
    ]
    for i in range(0, len(rows), 500):
        conn.execute(insert(E), rows[i : i + 500])
    return len(rows)


def _unix(naive_utc: datetime) -> float:
    return (naive_utc - datetime(1970, 1, 1)).total_seconds()
