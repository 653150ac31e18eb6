"""From a ``POST /v1/notifications`` body to an outbox request: every check that names a field.

Pure (no I/O), shared by the single and the batch endpoint; ``prefix`` places a batch item's
fields (``notifications.3.recipients``), the way the request validation names them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from .._exceptions import NotificationError, PayloadTooLargeError
from ..apns.payload import render
from ..config.model import AppConfig
from ..local_time import is_urgent, parse_local_time
from ..notification import Notification
from ..providers.payload_check import check_payloads
from ..queue.interface import NotificationRequest, Recipients
from .errors import ApiError
from .schemas import SendBody

__all__ = ["naive_utc", "request_from"]

# the times every provider can express (UNIX epoch seconds) and date arithmetic cannot overflow
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def naive_utc(dt: datetime | None, field: str) -> datetime | None:
    """``dt`` in UTC without zone (the outbox's clock), refusing a time without a zone."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        raise ApiError(
            422,
            "invalid_request",
            f"{field} must include a time zone (e.g. 2030-01-01T09:00:00Z)",
            field=field,
        )
    try:
        utc = dt.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        utc = None
    if utc is None or not _EARLIEST <= utc < _LATEST:
        raise ApiError(
            422,
            "invalid_request",
            f"{field} must be between 1970-01-01 and 9999-01-01 UTC, got {dt.isoformat()}",
            field=field,
        )
    return utc.replace(tzinfo=None)


def _check_badge(note: dict[str, Any], prefix: str) -> None:
    """4D numbers are reals: 3.0 is the badge 3, but 3.5 is no badge count (the library truncates
    it as the 4D component does; over HTTP the caller hears about it)."""
    badge = note.get("badge")
    if isinstance(badge, float) and math.isfinite(badge) and not badge.is_integer():
        raise ApiError(
            422,
            "invalid_notification",
            f"badge must be a whole number (3 or 3.0), got {badge!r}",
            field=f"{prefix}notification.badge",
        )


def _check_variant_sizes(n: Notification) -> None:
    """Each language is a payload of its own: the largest variant must fit the 4 KB that APNs,
    FCM and Web Push all allow (the per-platform limits are the accept check's business)."""
    if not n.localizations:
        return
    for tag, variant in n.variants():
        if tag is None:
            continue
        try:
            render(variant, topic="accept.check")  # only the size matters here, not the topic
        except PayloadTooLargeError as exc:
            raise PayloadTooLargeError(
                f"the {tag} variant: {exc}", size=exc.size, limit=exc.limit, field=f"localizations.{tag}"
            ) from None


def request_from(
    body: SendBody, *, key_id: str, now: datetime, prefix: str = "", app: AppConfig | None = None
) -> NotificationRequest:
    """``app``: the app's settings, to render the payload for each platform it can reach (without
    them, only the 4 KB every provider allows is checked)."""
    note = dict(body.notification)
    _check_badge(note, prefix)
    if body.priority is not None:
        note["priority"] = body.priority
    if body.collapse_id is not None:
        note["collapse_id"] = body.collapse_id
    try:
        notification = Notification.from_dict(note)
        if app is not None:
            check_payloads(notification, app, body.targets or ())
        else:
            _check_variant_sizes(notification)
        payload = notification.to_dict()
    except NotificationError as exc:
        field = f"{prefix}notification.{exc.field}" if exc.field else f"{prefix}notification"
        raise ApiError(422, "invalid_notification", str(exc), field=field) from None
    r = body.recipients
    if r.all and (r.emails or r.device_tokens):
        raise ApiError(
            422,
            "invalid_request",
            "give either all: true or emails/device_tokens",
            field=f"{prefix}recipients",
        )
    if not r.all and not r.emails and not r.device_tokens:
        raise ApiError(
            422,
            "no_recipient",
            "Both mails and deviceTokens collections are empty",
            field=f"{prefix}recipients",
        )
    if body.deliver_at_local is not None:
        try:
            parse_local_time(body.deliver_at_local, "deliver_at_local")
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc), field=f"{prefix}deliver_at_local") from None
    urgent = is_urgent(body.urgent, notification.interruption_level)
    send_at = naive_utc(body.send_at, f"{prefix}send_at")
    expires_at = naive_utc(body.expires_at, f"{prefix}expires_at")
    if expires_at is not None and expires_at <= max(now, send_at or now):
        raise ApiError(
            422,
            "invalid_request",
            "expires_at must be after now and after send_at",
            field=f"{prefix}expires_at",
        )
    return NotificationRequest(
        app=body.app,
        notification=payload,
        recipients=Recipients(tuple(r.emails), tuple(r.device_tokens), r.all),
        send_at=send_at,
        expires_at=expires_at,
        targets=tuple(body.targets or ()),
        idempotency_key=body.idempotency_key,
        api_key_id=key_id,
        deliver_at_local=body.deliver_at_local,
        urgent=urgent,
    )
