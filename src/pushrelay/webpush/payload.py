"""What a browser's service worker receives, and the RFC 8030 headers that go with it.

The plaintext is JSON, shaped after Declarative Web Push (WebKit, W3C Push API proposal) so that
Safari can show it without a service worker, while any service worker reads it with
``event.data.json()``::

    {"web_push": 8030,                      # only when title and url are set (declarative needs both)
     "notification": {"title", "body", "navigate": url, "image": imageUrl, "tag": collapseId},
     "app_badge": badge,
     "data": {...userInfo}}                 # plus every ``custom`` key at the top level

Headers: ``TTL`` (required: from the notification's expiration, else the client's default),
``Urgency`` from the priority (10 high, 5 normal, 1 low), ``Topic`` from the collapse id (a
collapse id that is not already ≤ 32 base64url characters is hashed into one, so the same id always
gives the same topic).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any

from .._exceptions import NotificationError, PayloadTooLargeError
from ..notification import Notification

__all__ = ["DEFAULT_TTL", "MAX_PLAINTEXT", "headers", "render", "topic_for"]

#: RFC 8291 §4: a 4096-byte body holds at most 3993 bytes of plaintext in one aes128gcm record.
MAX_PLAINTEXT = 3993
#: Four weeks, what the push services keep a message at most.
DEFAULT_TTL = 28 * 24 * 3600
_URGENCY = {10: "high", 5: "normal", 1: "low"}
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


def render(notification: Notification) -> bytes:
    """The JSON plaintext for ``notification``; raises PayloadTooLargeError above 3993 bytes."""
    n = notification
    doc: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    for key, value in (
        ("title", n.title),
        ("body", n.body),
        ("navigate", n.url),
        ("image", n.image_url),
        ("tag", n.collapse_id),
    ):
        if value is not None:
            shown[key] = value
    if n.title is not None and n.url is not None:
        doc["web_push"] = 8030
    if shown:
        doc["notification"] = shown
    if n.badge is not None:
        doc["app_badge"] = n.badge
    if n.user_info:
        doc["data"] = dict(n.user_info)
    for key, value in n.custom.items():
        if key in doc:
            raise NotificationError(
                f"custom key {key!r} clashes with the Web Push payload's own {key!r}", field=f"custom.{key}"
            )
        doc[key] = value
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    if len(body) > MAX_PLAINTEXT:
        raise PayloadTooLargeError(
            f"the Web Push payload is {len(body)} bytes; at most {MAX_PLAINTEXT} fit in an encrypted message",
            size=len(body),
            limit=MAX_PLAINTEXT,
        )
    return body


def topic_for(collapse_id: str) -> str:
    """A valid RFC 8030 Topic for ``collapse_id``: itself when it fits, else a stable hash of it."""
    if _TOPIC.fullmatch(collapse_id):
        return collapse_id
    digest = hashlib.sha256(collapse_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


def headers(
    notification: Notification, *, default_ttl: int = DEFAULT_TTL, now: float | None = None
) -> dict[str, str]:
    """``TTL``, and ``Urgency`` / ``Topic`` when the notification asks for them."""
    n = notification
    if n.expiration is not None:
        base = time.time() if now is None else now
        ttl = max(0, int(n.expiration - base))
    else:
        ttl = default_ttl
    out = {"ttl": str(ttl)}
    if n.priority is not None:
        out["urgency"] = _URGENCY[n.priority]
    if n.collapse_id is not None:
        out["topic"] = topic_for(n.collapse_id)
    return out
