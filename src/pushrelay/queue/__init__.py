"""The durable outbox: accepted notifications and their per-device deliveries.

:class:`Outbox` is the interface (:mod:`.interface`); :class:`SqlOutbox` the embedded
SQLite/PostgreSQL backend (:mod:`.sql`).
"""

from .interface import (
    AppPause,
    ClaimedDelivery,
    DeliveryState,
    DeviceRef,
    EnqueueResult,
    ExpansionJob,
    Handoff,
    IdempotencyConflict,
    NotificationRequest,
    NotificationState,
    NotificationStatus,
    Outbox,
    Recipients,
    Recorded,
)
from .policy import DEFAULT_EXPIRY, IDEMPOTENCY_WINDOW, RetryPolicy
from .sql import SqlOutbox

__all__ = [
    "DEFAULT_EXPIRY",
    "IDEMPOTENCY_WINDOW",
    "AppPause",
    "ClaimedDelivery",
    "DeliveryState",
    "DeviceRef",
    "EnqueueResult",
    "ExpansionJob",
    "Handoff",
    "IdempotencyConflict",
    "NotificationRequest",
    "NotificationState",
    "NotificationStatus",
    "Outbox",
    "Recipients",
    "Recorded",
    "RetryPolicy",
    "SqlOutbox",
]
