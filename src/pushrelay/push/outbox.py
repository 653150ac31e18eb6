"""The durable mode of ``PushNotification``: commit to the outbox, let the service's workers send.

    push = PushNotification("myapp")
    nid = push.enqueue({"title": "Hi"}, "test@4d.com")      # committed when it returns
    result = push.wait(nid, timeout=30)                     # the 4D shape plus deliveries

``send()`` delivers from the calling process and loses what is in flight if that process dies;
``enqueue()`` returns once the request is committed to the same database the service uses, and
the workers of ``pushrelay serve`` / ``pushrelay worker`` deliver it with retries, backoff and
crash safety. This module builds the outbox request from the library's arguments and turns an
outbox status back into a :class:`~pushrelay.push.result.PushResult`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import Engine

from .._exceptions import ConfigurationError, NotificationError
from ..config.model import AppConfig, Config
from ..fourd.recipients import Recipients
from ..local_time import is_urgent, parse_local_time
from ..notification import Notification
from ..outcome import Outcome
from ..queue.interface import NotificationRequest, NotificationStatus
from ..queue.interface import Recipients as OutboxRecipients
from ..queue.sql import SqlOutbox
from ..registry.devices import DeviceRegistry
from ..registry.tokens import PLATFORMS
from .result import Delivery, PushResult, messages

__all__ = ["TERMINAL", "build_request", "inline_request", "result_from", "shared_outbox"]

TERMINAL = ("completed", "cancelled")

_outboxes: weakref.WeakKeyDictionary[Engine, SqlOutbox] = weakref.WeakKeyDictionary()
_outboxes_lock = threading.Lock()


def shared_outbox(registry: DeviceRegistry) -> SqlOutbox:
    """The outbox in the registry's database, one per engine (it holds the SQLite write lock that
    the process's threads share), kept as long as the engine is."""
    engine = registry.db.engine
    with _outboxes_lock:
        outbox = _outboxes.get(engine)
        if outbox is None:
            outbox = _outboxes[engine] = SqlOutbox(engine)
        return outbox


def _utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise NotificationError(f"{field} must be a datetime, got {type(value).__name__}", field=field)
    if value.tzinfo is None:
        raise NotificationError(
            f"{field} must include a time zone (e.g. datetime.now(UTC) + timedelta(hours=1))", field=field
        )
    return value.astimezone(UTC)


def build_request(
    app: AppConfig,
    config: Config,
    notification: Notification,
    recipients: Recipients | None,
    *,
    targets: tuple[str, ...],
    send_at: datetime | None = None,
    expires_at: datetime | None = None,
    idempotency_key: str | None = None,
    deliver_at_local: str | time | None = None,
    urgent: bool | None = None,
) -> NotificationRequest:
    """The outbox request for ``enqueue`` (``recipients=None``: every device of the app)."""
    if config.apps.get(app.name) != app:
        # the workers read credentials from the configuration file, not from this process
        raise ConfigurationError(
            f"enqueue needs an app declared in {config.where} (the service's workers deliver it with "
            f"the credentials configured there); {app.name!r} is not, or is given with other settings",
            field="app",
        )
    if recipients is not None and recipients.empty:
        raise NotificationError(messages.BOTH_EMPTY, field="recipients")
    send_at_utc = _utc(send_at, "send_at")
    expires_at_utc = _utc(expires_at, "expires_at")
    if expires_at_utc is not None and expires_at_utc <= max(
        datetime.now(UTC), send_at_utc or datetime.now(UTC)
    ):
        raise NotificationError("expires_at must be after now and after send_at", field="expires_at")
    if idempotency_key is not None and not (
        isinstance(idempotency_key, str) and 0 < len(idempotency_key) <= 200
    ):
        raise NotificationError(
            "idempotency_key must be a text of 1 to 200 characters", field="idempotency_key"
        )
    local = _local_time(deliver_at_local)
    if urgent is not None and not isinstance(urgent, bool):
        raise NotificationError(f"urgent must be true or false, got {urgent!r}", field="urgent")
    who = (
        OutboxRecipients(all=True)
        if recipients is None
        else OutboxRecipients(emails=recipients.emails, device_tokens=recipients.tokens)
    )
    return NotificationRequest(
        app=app.name,
        notification=notification.to_dict(),
        recipients=who,
        send_at=send_at_utc,
        expires_at=expires_at_utc,
        targets=() if set(targets) == set(PLATFORMS) else targets,
        idempotency_key=idempotency_key,
        deliver_at_local=local,
        urgent=is_urgent(urgent, notification.interruption_level),
    )


def inline_request(
    app: AppConfig,
    notification: Notification,
    recipients: Recipients | None,
    *,
    targets: tuple[str, ...],
    surface: str,
) -> NotificationRequest:
    """The outbox request of a ``send()`` / ``pushrelay send`` delivered in the calling process
    (``recipients=None``: every device of the app). Unlike :func:`build_request`, the app may be
    one the configuration file does not declare: this process delivers it, with these settings."""
    who = (
        OutboxRecipients(all=True)
        if recipients is None
        else OutboxRecipients(emails=recipients.emails, device_tokens=recipients.tokens)
    )
    return NotificationRequest(
        app=app.name,
        notification=notification.to_dict(),
        recipients=who,
        targets=() if set(targets) == set(PLATFORMS) else targets,
        surface=surface,
        # the call waits for the outcomes: the app's quiet hours hold what the service accepts only
        urgent=True,
    )


def _local_time(value: str | time | None) -> str | None:
    """``"09:00"`` or ``time(9, 0)`` as the outbox keeps it (``"HH:MM"``)."""
    if value is None:
        return None
    if isinstance(value, time):
        if value.second or value.microsecond or value.tzinfo is not None:
            raise NotificationError(
                "deliver_at_local is a wall-clock time to the minute, without zone (the device's is used)",
                field="deliver_at_local",
            )
        return f"{value:%H:%M}"
    try:
        parse_local_time(value, "deliver_at_local")
    except ValueError as exc:
        raise NotificationError(str(exc), field="deliver_at_local") from None
    return str(value)


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def result_from(
    status: NotificationStatus,
    deliveries: Iterable[Mapping[str, Any]],
    *,
    unregistered: Collection[str] = (),
) -> PushResult:
    """A finished notification as ``send()`` would have answered: 4D's ``success`` / ``warnings``
    / ``errors`` plus one :class:`Delivery` per device that got a final outcome (``unregistered``:
    raw tokens that are not in the registry). A delivery that ended unsent while a provider asked
    to wait carries the time it was due (``deferred_until``)."""
    result = PushResult(warnings=list(status.warnings), errors=list(status.errors))
    for d in deliveries:
        if d.get("outcome") is None:  # cancelled before it was sent
            continue
        delivery = Delivery(
            platform=d["platform"],
            token=d["token"],
            email=d.get("email"),
            outcome=Outcome(d["outcome"]),
            status=d.get("status") or 0,
            reason=d.get("reason"),
            apns_id=d.get("apns_id"),
            environment=d.get("environment"),
            registered=d["token"] not in unregistered,
            deferred_until=_aware(d.get("next_attempt_at"))
            if d["outcome"] == Outcome.EXPIRED.value
            else None,
        )
        result.deliveries.append(delivery)
        if delivery.ok:
            result.success = True
        else:
            result.warnings.append(
                messages.failed(delivery.platform, delivery.email, delivery.token, delivery.reason)
            )
    if status.state == "cancelled":
        result.errors.append(f"the notification {status.id} was cancelled")
    return result
