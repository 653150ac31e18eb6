"""The outbox contract: what the API, the library and the workers need from a durable queue.

The embedded backend is SQL (:mod:`pushrelay.queue.sql`); a distributed one (Redis Streams) must
fit behind the same :class:`Outbox` protocol. The contract in short:

* :meth:`Outbox.enqueue` returns only once the request is durable (committed).
* Work is handed out in *chunks* under a short *lease* that the worker's heartbeat renews while it
  holds them (:meth:`Outbox.heartbeat`): a worker that dies without recording its chunk stops
  renewing, and the deliveries become claimable again (at-least-once delivery). Each
  delivery keeps the ``apns_id`` it was given when it was created, so a resend after a crash carries
  the same id and the device (and Apple) can recognise the duplicate.
* Transient outcomes go back to the queue with exponential backoff and jitter, never past the
  notification's ``expires_at``: what is still undelivered then ends as ``expired``.
* A provider that calls an app's configuration broken (``config_broken``: a revoked key, a topic
  the key may not push to) *pauses* the app: its deliveries are parked, neither sent nor dropped,
  until an operator resumes it (:meth:`Outbox.resume`); they still end as ``expired`` at their
  deadline.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..outcome import DeliveryResult

DeviceRef = tuple[str, str, str | None, str | None]
"""One device a notification goes to: ``(platform, token, environment, email)``."""


class NotificationState(enum.StrEnum):
    SCHEDULED = "scheduled"  # accepted, send_at in the future
    PENDING = "pending"  # accepted, waiting for a worker to resolve its recipients
    EXPANDING = "expanding"  # a worker is resolving recipients into deliveries
    SENDING = "sending"  # deliveries exist, some not final yet
    COMPLETED = "completed"  # every delivery is final
    CANCELLED = "cancelled"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # waiting (first attempt or retry at next_attempt_at)
    IN_FLIGHT = "in_flight"  # leased by a worker until next_attempt_at
    PAUSED = "paused"  # its app is paused (configuration broken): kept until resumed or expired
    DONE = "done"  # final outcome recorded
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Recipients:
    """Who receives: emails and/or raw device tokens, or every device of the app."""

    emails: tuple[str, ...] = ()
    device_tokens: tuple[str, ...] = ()
    all: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"emails": list(self.emails), "device_tokens": list(self.device_tokens), "all": self.all}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recipients:
        return cls(tuple(data.get("emails", ())), tuple(data.get("device_tokens", ())), bool(data.get("all")))


@dataclass(frozen=True, slots=True)
class NotificationRequest:
    """One accepted send: a notification (as its JSON-ready dict) for some recipients of an app."""

    app: str
    notification: dict[str, Any]
    recipients: Recipients
    send_at: datetime | None = None
    expires_at: datetime | None = None  # default: accepted + 24 h
    targets: tuple[str, ...] = ()  # platform filter ("ios", "android", "web"); empty = all
    idempotency_key: str | None = None
    api_key_id: str | None = None
    surface: str = "api"  # where it came from: "api", "cli" (pushrelay send), "library" (PushNotification)
    deliver_at_local: str | None = None  # "HH:MM": each device at that time in its own zone
    urgent: bool = False  # not held by the app's quiet hours


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    id: str
    created: bool  # False: an earlier request with the same idempotency key is returned


class IdempotencyConflict(Exception):
    """The idempotency key was used within 24 h for a different request."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(f"idempotency key already used for notification {existing_id} with a different body")
        self.existing_id = existing_id
        self.index: int | None = None  # which request of an enqueue_many


@dataclass(frozen=True, slots=True)
class ExpansionJob:
    """A notification whose recipients a worker must turn into deliveries."""

    notification_id: str
    app: str
    recipients: Recipients
    targets: tuple[str, ...]
    cursor: str | None  # resume point of a crashed expansion of ``all``
    deliver_at_local: str | None = None
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    notification_id: str
    app: str
    platform: str
    environment: str | None
    token: str
    apns_id: str
    attempts: int  # including the attempt about to be made


@dataclass(slots=True)
class Handoff:
    """Leave to insert up to ``room`` of an expansion's new deliveries already leased to the worker
    that expands them, for ``lease`` seconds, as :meth:`Outbox.claim` would lease them (in flight,
    the attempt counted): no claim and no second row version for those. Only deliveries due now, of
    an app that is not paused and not expired, are taken; the rest are inserted ``pending`` as
    usual, for any worker to claim. ``taken`` is filled once the transaction has committed."""

    room: int
    lease: float
    taken: list[ClaimedDelivery] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :meth:`Outbox.record` did: the notifications it completed, and how many results it
    could not store because their lease had gone to another worker (that worker records them)."""

    completed: list[str] = field(default_factory=list)
    lost: int = 0


@dataclass(frozen=True, slots=True)
class Overdue:
    """Deliveries of ``app`` due for a while and not claimed: ``count``, the oldest due time."""

    app: str
    count: int
    oldest_due: datetime  # naive UTC, like the table


@dataclass(frozen=True, slots=True)
class AppPause:
    """Why an app's deliveries are parked, since when, and under which credentials."""

    app: str
    reason: str  # e.g. "403 InvalidProviderToken"
    platform: str | None  # the provider that refused, None for an operator's pause
    paused_at: datetime
    paused_by: str  # a worker id, or "operator"
    fingerprint: str | None  # of the credentials that were refused (see pushrelay.server.pausing)


@dataclass(slots=True)
class NotificationStatus:
    id: str
    app: str
    state: str
    created_at: datetime
    send_at: datetime | None
    expires_at: datetime
    completed_at: datetime | None
    counts: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notification: dict[str, Any] = field(default_factory=dict)
    recipients: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    surface: str = "api"
    deliver_at_local: str | None = None
    urgent: bool = False

    @property
    def success(self) -> bool:
        """4D's meaning: at least one device was reached."""
        return self.counts.get("delivered", 0) > 0


class Outbox(Protocol):
    """The durable queue behind the API, the library and the workers."""

    def enqueue(self, request: NotificationRequest) -> EnqueueResult: ...

    def enqueue_many(self, requests: Sequence[NotificationRequest]) -> list[EnqueueResult]: ...

    def cancel(self, notification_id: str) -> NotificationStatus | None: ...

    def status(self, notification_id: str) -> NotificationStatus | None: ...

    def claim_expansions(
        self, worker_id: str, *, limit: int, lease: float, notification_id: str | None = None
    ) -> list[ExpansionJob]: ...

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
    ) -> int: ...

    def expand_many(
        self,
        worker_id: str,
        jobs: Sequence[tuple[str, Sequence[DeviceRef], list[str], list[str]]],
        schedules: Mapping[str, Mapping[str, datetime]] | None = None,
        handoff: Handoff | None = None,
    ) -> list[str]: ...

    def finish_expansion(
        self, notification_id: str, *, warnings: list[str], errors: list[str]
    ) -> list[str]: ...

    def fail_expansion(self, notification_id: str, worker_id: str, reason: str) -> list[str]: ...

    def claim(
        self, worker_id: str, *, limit: int, lease: float, notification_id: str | None = None
    ) -> list[ClaimedDelivery]: ...

    def postpone(self, worker_id: str, items: Sequence[tuple[ClaimedDelivery, datetime]]) -> None: ...

    def next_due(self, notification_id: str) -> datetime | None: ...

    def idle_wait(self, poll: float, longest: float) -> float: ...

    def record(
        self,
        worker_id: str,
        results: Sequence[tuple[ClaimedDelivery, DeliveryResult]],
        *,
        park_broken: bool = True,
    ) -> Recorded: ...

    def abandon(self, notification_id: str, reason: str) -> list[str]: ...

    def release(self, worker_id: str) -> int: ...

    def heartbeat(
        self,
        worker_id: str,
        *,
        lease: float,
        hold: float | None = None,
        deliveries: Collection[int] | None = None,
        expansions: Collection[str] | None = None,
    ) -> int: ...

    def forget_worker(self, worker_id: str) -> None: ...

    def live_workers(self, within: float) -> int: ...

    def summaries(self, ids: Sequence[str]) -> list[NotificationStatus]: ...

    def payloads(self, ids: Sequence[str]) -> dict[str, tuple[dict[str, Any], float]]: ...

    def sweep(self) -> list[str]: ...

    def complete_stragglers(self, limit: int = 500) -> list[str]: ...

    def overdue(self, older_than: float) -> list[Overdue]: ...

    def pause(
        self, app: str, reason: str, *, platform: str | None, by: str, fingerprint: str | None
    ) -> bool: ...

    def resume(self, app: str) -> int | None: ...

    def paused_apps(self) -> list[AppPause]: ...
