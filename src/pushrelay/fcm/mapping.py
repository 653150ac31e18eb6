"""Render a :class:`Notification` into the FCM HTTP v1 ``message`` object (without its target).

Two mappings, chosen per app:

``"4d"``
    What an Android app built by 4D for Android reads (SPEC §2): the app builds the notification
    itself from the FCM *data* map, so everything goes there as strings: ``title``, ``body``,
    ``sound``, ``color``, ``imageUrl``, ``url``, ``android_channel_id`` = ``qmobile_channel_id``,
    and every userInfo key (non-text values JSON-encoded: an entity becomes
    ``'{"primaryKey":...}'``, ``dataSynchro`` becomes ``"true"``).

``"standard"``
    What any Android developer expects from FCM: a ``notification`` block (title, body, image) that
    Android displays by itself, userInfo / custom keys in ``data`` (as strings), and ``android``
    options: priority, ttl, collapse key, channel id, color, sound, icon, tag, click action,
    notification count.

Both are pure functions; :func:`validate_message` checks the result the way FCM does (string-only
data, reserved keys, the 4096-byte limit) so a bad notification fails here, naming the field, and
not as an ``INVALID_ARGUMENT`` from Google.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .._exceptions import NotificationError, PayloadTooLargeError
from ..notification import Notification, SoundSpec

__all__ = [
    "MAPPINGS",
    "MAX_MESSAGE_BYTES",
    "QMOBILE_CHANNEL_ID",
    "AndroidOptions",
    "MappingName",
    "data_value",
    "message_size",
    "render",
    "render_4d",
    "render_standard",
    "validate_message",
]

MappingName = Literal["4d", "standard"]
MAPPINGS: frozenset[str] = frozenset({"4d", "standard"})

#: FCM's limit for a message (firebase.google.com, "About FCM messages": 4096 bytes).
MAX_MESSAGE_BYTES = 4096
#: The notification channel the 4D for Android app creates and reads from ``android_channel_id``.
QMOBILE_CHANNEL_ID = "qmobile_channel_id"

# Data keys FCM refuses (firebase.google.com, "Set up a Firebase Cloud Messaging client app": the
# data payload may not use reserved words such as "from", "notification", "message_type", or any
# word starting with "google" or "gcm").
_RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})
_RESERVED_DATA_PREFIXES = ("google", "gcm")


@dataclass(frozen=True, slots=True)
class AndroidOptions:
    """Per-app defaults of the standard mapping (``[apps.X.fcm]`` settings)."""

    channel_id: str | None = None
    icon: str | None = None
    restricted_package_name: str | None = None


def render(
    notification: Notification,
    *,
    mapping: MappingName = "4d",
    options: AndroidOptions | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The FCM ``message`` for ``notification`` without its token/topic/condition, validated."""
    if mapping == "4d":
        message = render_4d(notification, now=now)
    elif mapping == "standard":
        message = render_standard(notification, options or AndroidOptions(), now=now)
    else:
        raise NotificationError(
            f"the FCM mapping must be '4d' or 'standard', got {mapping!r}", field="mapping"
        )
    validate_message(message)
    return message


def render_4d(n: Notification, *, now: float | None = None) -> dict[str, Any]:
    data: dict[str, str] = {}
    for key, value in (
        ("title", n.title),
        ("body", n.body),
        ("sound", _sound_name(n.sound)),
        ("color", n.color),
        ("imageUrl", n.image_url),
        ("url", n.url),  # not in 4D's own payload; harmless for its app, useful to others
    ):
        if value is not None:
            data[key] = value
    data["android_channel_id"] = QMOBILE_CHANNEL_ID
    _merge_data(data, n.user_info, "user_info")
    _merge_data(data, n.custom, "custom")
    # The 4D app builds the visible notification itself from data, so the message must wake it
    # promptly: high priority unless the caller explicitly asked for a low-priority push.
    android: dict[str, Any] = {"priority": "normal" if n.priority in (1, 5) else "high"}
    android.update(_delivery_options(n, now))
    return {"data": data, "android": android}


def render_standard(n: Notification, options: AndroidOptions, *, now: float | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {}
    visible = {
        k: v for k, v in (("title", n.title), ("body", n.body), ("image", n.image_url)) if v is not None
    }
    if visible:
        message["notification"] = visible
    data: dict[str, str] = {}
    if n.url is not None:
        data["url"] = n.url
    _merge_data(data, n.user_info, "user_info")
    _merge_data(data, n.custom, "custom")
    if data:
        message["data"] = data

    android: dict[str, Any] = {}
    if n.priority is not None:
        android["priority"] = "high" if n.priority == 10 else "normal"
    android.update(_delivery_options(n, now))
    if options.restricted_package_name:
        android["restricted_package_name"] = options.restricted_package_name
    # A message without title, body, image, sound or badge stays a data message: adding an
    # android.notification block would make Android display an empty notification.
    if visible or n.sound is not None or n.badge is not None:
        shown: dict[str, Any] = {}
        for key, value in (
            ("channel_id", options.channel_id),
            ("icon", options.icon),
            ("color", n.color),
            ("sound", _sound_name(n.sound)),
            ("tag", n.collapse_id),  # replaces the shown notification, like apns-collapse-id
            ("click_action", n.category),  # FCM's counterpart of the APNs category
            ("notification_count", n.badge),
        ):
            if value is not None:
                shown[key] = value
        if shown:
            android["notification"] = shown
    if android:
        message["android"] = android
    return message


def _delivery_options(n: Notification, now: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if n.collapse_id is not None:
        out["collapse_key"] = n.collapse_id
    if n.expiration is not None:
        # APNs wants an absolute deadline, FCM a relative duration; 0 means "now or never" in both.
        base = time.time() if now is None else now
        out["ttl"] = f"{max(0, int(n.expiration - base))}s"
    return out


def _sound_name(sound: str | SoundSpec | None) -> str | None:
    return sound.name if isinstance(sound, SoundSpec) else sound


def _merge_data(data: dict[str, str], extra: Mapping[str, Any], field: str) -> None:
    for key, value in extra.items():
        if key in data:
            raise NotificationError(
                f"{field} key {key!r} clashes with the {key!r} the FCM mapping already puts in the data map; "
                "rename it",
                field=f"{field}.{key}",
            )
        data[key] = data_value(value)


def data_value(value: Any) -> str:
    """An FCM data value: text as is, anything else as compact JSON (``true``, ``3``, ``{...}``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def message_size(message: Mapping[str, Any]) -> int:
    """The bytes FCM counts against its limit: the message as compact JSON, without its target."""
    counted = {k: v for k, v in message.items() if k not in ("token", "topic", "condition")}
    return len(json.dumps(counted, ensure_ascii=False, separators=(",", ":")).encode())


def validate_message(message: Mapping[str, Any]) -> None:
    """Check what FCM would refuse, raising :class:`NotificationError` naming the field."""
    data = message.get("data", {})
    if not isinstance(data, Mapping):
        raise NotificationError("the FCM data map must be an object", field="data")
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise NotificationError(f"FCM data keys must be non-empty text, got {key!r}", field="data")
        if key in _RESERVED_DATA_KEYS or key.lower().startswith(_RESERVED_DATA_PREFIXES):
            raise NotificationError(
                f"FCM reserves the data key {key!r} (from, notification, message_type, google*, gcm*); "
                "rename it",
                field=f"data.{key}",
            )
        if not isinstance(value, str):
            raise NotificationError(
                f"FCM data values must be text; data.{key} is {type(value).__name__}", field=f"data.{key}"
            )
    size = message_size(message)
    if size > MAX_MESSAGE_BYTES:
        raise PayloadTooLargeError(
            f"the FCM message is {size} bytes; at most {MAX_MESSAGE_BYTES} are allowed",
            size=size,
            limit=MAX_MESSAGE_BYTES,
        )
