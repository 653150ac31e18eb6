"""Render a :class:`Notification` into the APNs request: JSON body and header values.

The JSON follows what the 4D Mobile App Server component sends (SPEC §2): ``aps.alert`` with title /
subtitle / body, badge truncated to an integer, ``data.media-url`` plus ``mutable-content: 1`` for an
image, and every userInfo key at the top level. Push type, topic suffix and priority are chosen from
the content when not given (a background push is always priority 5).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._exceptions import NotificationError, PayloadTooLargeError
from ..notification import Notification, SoundSpec

__all__ = ["MAX_PAYLOAD", "MAX_VOIP_PAYLOAD", "TOPIC_SUFFIX", "ApnsRequest", "render"]

MAX_PAYLOAD = 4096
MAX_VOIP_PAYLOAD = 5120

#: push type -> suffix appended to the bundle id to form apns-topic (SPEC §3).
TOPIC_SUFFIX: dict[str, str] = {
    "alert": "",
    "background": "",
    "mdm": "",
    "voip": ".voip",
    "complication": ".complication",
    "fileprovider": ".pushkit.fileprovider",
    "location": ".location-query",
    "liveactivity": ".push-type.liveactivity",
    "pushtotalk": ".voip-ptt",
    "widgets": ".push-type.widgets",
}


@dataclass(frozen=True, slots=True)
class ApnsRequest:
    """Everything but the device token and apns-id: the same for every device of a notification."""

    body: bytes
    topic: str
    push_type: str
    priority: int
    expiration: int | None = None
    collapse_id: str | None = None


def render(notification: Notification, *, topic: str) -> ApnsRequest:
    """Build the APNs request for ``notification`` sent to the app whose bundle id is ``topic``."""
    n = notification
    push_type = n.push_type or _derive_push_type(n)
    priority = n.priority if n.priority is not None else (5 if push_type == "background" else 10)
    if push_type == "background" and priority == 10:
        raise NotificationError("a background push must use priority 5 (or 1), not 10", field="priority")
    suffix = TOPIC_SUFFIX[push_type]
    full_topic = topic if (not suffix or topic.endswith(suffix)) else topic + suffix
    body = json.dumps(_payload(n, push_type), ensure_ascii=False, separators=(",", ":")).encode()
    limit = MAX_VOIP_PAYLOAD if push_type == "voip" else MAX_PAYLOAD
    if len(body) > limit:
        raise PayloadTooLargeError(
            f"the APNs payload is {len(body)} bytes; at most {limit} are allowed for push type {push_type}",
            size=len(body),
            limit=limit,
        )
    return ApnsRequest(body, full_topic, push_type, priority, n.expiration, n.collapse_id)


def _derive_push_type(n: Notification) -> str:
    if n.content_state is not None or n.event is not None:
        return "liveactivity"
    if n.content_available and not n.has_visible_content:
        return "background"
    return "alert"


def _payload(n: Notification, push_type: str) -> dict[str, Any]:
    aps: dict[str, Any] = {}
    alert: dict[str, Any] = {}
    for key, value in (
        ("title", n.title),
        ("subtitle", n.subtitle),
        ("body", n.body),
        ("launch-image", n.launch_image),
        ("title-loc-key", n.title_loc_key),
        ("title-loc-args", n.title_loc_args),
        ("subtitle-loc-key", n.subtitle_loc_key),
        ("subtitle-loc-args", n.subtitle_loc_args),
        ("loc-key", n.loc_key),
        ("loc-args", n.loc_args),
    ):
        if value is not None:
            alert[key] = list(value) if isinstance(value, tuple) else value
    if push_type == "background":
        if alert or n.sound is not None or n.badge is not None:
            raise NotificationError(
                "a background push carries no alert, sound or badge (only content-available)",
                field="push_type",
            )
        aps["content-available"] = 1
    else:
        if alert:
            aps["alert"] = alert
        if n.badge is not None:
            aps["badge"] = n.badge
        if n.sound is not None:
            aps["sound"] = n.sound.to_json() if isinstance(n.sound, SoundSpec) else n.sound
        if n.content_available:
            aps["content-available"] = 1
    extras: tuple[tuple[str, Any], ...] = (
        ("category", n.category),
        ("thread-id", n.thread_id),
        ("target-content-id", n.target_content_id),
        ("interruption-level", n.interruption_level),
        ("relevance-score", n.relevance_score),
        ("filter-criteria", n.filter_criteria),
        ("timestamp", n.timestamp),
        ("event", n.event),
        ("content-state", n.content_state),
        ("dismissal-date", n.dismissal_date),
        ("stale-date", n.stale_date),
        ("attributes-type", n.attributes_type),
        ("attributes", n.attributes),
    )
    for key, extra in extras:
        if extra is not None:
            aps[key] = dict(extra) if isinstance(extra, Mapping) else extra
    payload: dict[str, Any] = {"aps": aps}
    if n.image_url:
        # 4D's notification service extension downloads data.media-url; it only runs with mutable-content
        payload["data"] = {"media-url": n.image_url}
        aps["mutable-content"] = 1
    if n.mutable_content is not None:
        if n.mutable_content:
            aps["mutable-content"] = 1
        else:
            aps.pop("mutable-content", None)
    if n.url is not None:
        payload["url"] = (
            n.url
        )  # not in 4D's iOS payload; top level so the app can read it (color stays Android-only)
    for key, value in n.user_info.items():
        payload[key] = value
    for key, value in n.custom.items():
        payload[key] = value
    return payload
