"""What each platform receives for a notification: the providers' own renderers, so that the
composer's preview and the notification page show the bytes a worker would send, and their sizes
against each provider's limit (a render error is reported, naming the field, as the worker would)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .._exceptions import ConfigurationError, NotificationError
from ..apns import payload as apns_payload
from ..config.model import AppConfig
from ..fcm import mapping as fcm_mapping
from ..fcm.settings import FcmSettings
from ..notification import Notification
from ..webpush import payload as webpush_payload

__all__ = ["Rendered", "render_all"]


@dataclass(frozen=True, slots=True)
class Rendered:
    platform: str  # "APNs", "FCM", "Web Push"
    body: str | None  # pretty JSON, or None when it cannot be rendered
    size: int | None  # bytes counted against the limit
    limit: int
    error: str | None = None
    field: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _pretty(raw: bytes | dict[str, Any]) -> str:
    doc = json.loads(raw) if isinstance(raw, bytes) else raw
    return json.dumps(doc, ensure_ascii=False, indent=2)


def _apns(n: Notification, app: AppConfig) -> Rendered:
    try:
        req = apns_payload.render(n, topic=app.bundle_id)
    except NotificationError as exc:
        return Rendered(
            "APNs", None, getattr(exc, "size", None), apns_payload.MAX_PAYLOAD, str(exc), exc.field
        )
    limit = apns_payload.MAX_VOIP_PAYLOAD if req.push_type == "voip" else apns_payload.MAX_PAYLOAD
    note = f"apns-topic {req.topic} · apns-push-type {req.push_type} · apns-priority {req.priority}"
    return Rendered("APNs", _pretty(req.body), len(req.body), limit, note=note)


def _fcm(n: Notification, app: AppConfig) -> Rendered:
    mapping: fcm_mapping.MappingName = "4d"
    options = None
    if app.fcm is not None:
        try:
            settings = FcmSettings.from_mapping(app.fcm, table=f"apps.{app.name}.fcm", base_dir=app.base_dir)
            mapping, options = settings.mapping, settings.android_options()
        except ConfigurationError:
            pass  # the service refuses to start on this; the default mapping is still informative
    try:
        message = fcm_mapping.render(n, mapping=mapping, options=options)
    except NotificationError as exc:
        return Rendered("FCM", None, None, fcm_mapping.MAX_MESSAGE_BYTES, str(exc), exc.field)
    size = fcm_mapping.message_size(message)
    return Rendered(
        "FCM", _pretty({"message": message}), size, fcm_mapping.MAX_MESSAGE_BYTES, note=f"mapping {mapping}"
    )


def _webpush(n: Notification) -> Rendered:
    try:
        body = webpush_payload.render(n)
    except NotificationError as exc:
        size = getattr(exc, "size", None)
        return Rendered("Web Push", None, size, webpush_payload.MAX_PLAINTEXT, str(exc), exc.field)
    return Rendered(
        "Web Push",
        _pretty(body),
        len(body),
        webpush_payload.MAX_PLAINTEXT,
        note="plaintext before encryption",
    )


def render_all(notification: dict[str, Any] | Notification, app: AppConfig) -> list[Rendered]:
    """The APNs, FCM and Web Push renderings of ``notification`` (a stored payload or a new one)."""
    n = Notification.from_dict(notification)
    return [_apns(n, app), _fcm(n, app), _webpush(n)]
