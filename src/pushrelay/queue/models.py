"""Tables of the outbox and of the API keys (Alembic revisions ``0002_outbox``,
``0003_pauses_webhook_events`` for :class:`AppPauseRow`, ``0006_outbox_workers`` for
:class:`WorkerRow`).

Times are stored as naive UTC ``DateTime`` values on both SQLite and PostgreSQL so that the same
comparisons (``next_attempt_at <= now``) work unchanged on both; :func:`utcnow` is the only clock.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from ..db import Base
from ..providers.models import ProviderTokenRow  # moved there; kept importable from here

__all__ = [
    "CLAIMABLE",
    "ApiKeyRow",
    "AppPauseRow",
    "CountRow",
    "DeliveryRow",
    "NotificationRow",
    "ProviderTokenRow",
    "WorkerRow",
    "utcnow",
]

# the states of ``queue.sql_base.OPEN``, as the predicate of the partial index of open deliveries
OPEN_SQL = "state IN ('pending', 'in_flight', 'paused')"

_BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


_CLOCK_FILE = os.environ.get("PUSHRELAY_CLOCK_OFFSET_FILE") or None
_clock_cache: tuple[float, float] = (-1.0, 0.0)  # (file mtime, offset in seconds)


def _offset() -> float:
    """Seconds the outbox's clock runs ahead, read from ``PUSHRELAY_CLOCK_OFFSET_FILE`` when set:
    the tests of local-time delivery move a running service to 09:00 in Tokyo without waiting for
    it. Unset (always, in production) it costs nothing. Provider clocks (JWTs) are never moved."""
    global _clock_cache
    if _CLOCK_FILE is None:
        return 0.0
    try:
        mtime = os.stat(_CLOCK_FILE).st_mtime_ns / 1e9
        if mtime != _clock_cache[0]:
            with open(_CLOCK_FILE, encoding="ascii") as fh:
                _clock_cache = (mtime, float(fh.read().strip() or 0))
    except (OSError, ValueError):
        return _clock_cache[1]
    return _clock_cache[1]


def utcnow() -> datetime:
    now = datetime.now(UTC).replace(tzinfo=None)
    return now + timedelta(seconds=_offset()) if _CLOCK_FILE is not None else now


class NotificationRow(Base):
    """One accepted send request. ``due_at`` is when a worker may next pick it up for expansion:
    ``send_at`` while scheduled, the lease deadline while a worker is expanding it."""

    __tablename__ = "outbox_notifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    recipients: Mapped[dict[str, Any]] = mapped_column(JSON)
    targets: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    send_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime())
    due_at: Mapped[datetime] = mapped_column(DateTime())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cursor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    api_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # where the send came from: "api" (POST /v1/notifications), "cli" (pushrelay send), "library"
    surface: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    # local-time delivery (0007): "HH:MM" in each device's zone; urgent ignores the quiet hours
    deliver_at_local: Mapped[str | None] = mapped_column(String(5), nullable=True)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        UniqueConstraint("app", "idempotency_key", name="uq_outbox_notifications_idempotency"),
        Index("ix_outbox_notifications_state_due", "state", "due_at"),
        Index("ix_outbox_notifications_created", "created_at"),
        Index("ix_outbox_notifications_app_created", "app", "created_at"),
    )


# The deliveries a claim may take, as literal SQL: the partial index below is usable only by a
# statement that states its condition with the same constants (a bound parameter proves nothing).
CLAIMABLE = "state IN ('pending', 'in_flight')"


class DeliveryRow(Base):
    """One (notification, device) pair. ``apns_id`` is fixed at creation and reused on every
    attempt; ``next_attempt_at`` is the retry time while pending and the lease deadline while in
    flight, so one index serves both "due retries" and "leases of crashed workers"."""

    __tablename__ = "outbox_deliveries"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("outbox_notifications.id", ondelete="CASCADE")
    )
    app: Mapped[str] = mapped_column(String(200))
    platform: Mapped[str] = mapped_column(String(16))
    environment: Mapped[str | None] = mapped_column(String(16), nullable=True)
    token: Mapped[str] = mapped_column(String(2048))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    apns_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(16))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime())
    expires_at: Mapped[datetime] = mapped_column(DateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(24), nullable=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # when not the apns_id
    token_invalid_since: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    updated_at: Mapped[datetime] = mapped_column(DateTime())
    # held until then: the device's local time asked for, or the end of its app's quiet hours (0007)
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)

    __table_args__ = (
        UniqueConstraint("notification_id", "token", name="uq_outbox_deliveries_notification_token"),
        Index("ix_outbox_deliveries_state_next", "state", "next_attempt_at"),
        # "has this notification an open delivery left?" in one probe, after every recorded batch
        # (0003). On PostgreSQL open ones only (0011): its counts are kept apart (CountRow), so
        # nothing reads the final ones through it, and recording a delivery final writes no entry
        # SQLite keeps the whole index: its status reads count through it
        Index(
            "ix_outbox_deliveries_notification_open",
            "notification_id",
            "state",
            postgresql_where=text(OPEN_SQL),
        ).ddl_if(dialect="postgresql"),
        Index("ix_outbox_deliveries_notification_state", "notification_id", "state").ddl_if(dialect="sqlite"),
        # a claim's rows in the order it takes them, read until it has enough (0010). PostgreSQL
        # only: SQLite reads the (state, next_attempt_at) index state by state, in order, already
        Index("ix_outbox_deliveries_claimable", "next_attempt_at", postgresql_where=text(CLAIMABLE)).ddl_if(
            dialect="postgresql"
        ),
    )


class CountRow(Base):
    """A change in a notification's delivery counts: ``n`` deliveries more (or fewer) under
    ``name``, the outcome of a final one or the state of the others (what its status reports). Its
    status is the sum of its rows (0009). PostgreSQL only: SQLite counts the deliveries (0011).

    Written by statement triggers on ``outbox_deliveries`` (see 0009), so no path that moves a
    delivery can forget it: one row per name per statement, insert-only, as a counter row updated
    by every recording transaction of every worker would be a row they all queue on. The rows of a
    notification are folded into one per name when it completes (and while a large one sends, by
    the sweep)."""

    __tablename__ = "outbox_counts"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("outbox_notifications.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(24))
    n: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_outbox_counts_notification_name", "notification_id", "name"),)


class AppPauseRow(Base):
    """An app whose deliveries are parked because a provider called its configuration broken (or
    an operator paused it). One row per app: the row's existence *is* the pause."""

    __tablename__ = "app_pauses"

    app: Mapped[str] = mapped_column(String(200), primary_key=True)
    reason: Mapped[str] = mapped_column(String(300))
    platform: Mapped[str | None] = mapped_column(String(16), nullable=True)
    paused_at: Mapped[datetime] = mapped_column(DateTime())
    paused_by: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)


class WorkerRow(Base):
    """A worker process that holds (or held) leases, and its last heartbeat. Each heartbeat renews
    every lease the worker holds in one statement per table (see :mod:`.leases`); a worker whose
    heartbeat stops loses them when they run out."""

    __tablename__ = "outbox_workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime())


class ApiKeyRow(Base):
    """An API key. Only the SHA-256 of its secret part is stored (see :mod:`pushrelay.server.apikeys`)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    apps: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty = every app
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
