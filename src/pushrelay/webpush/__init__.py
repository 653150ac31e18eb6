"""Web Push: VAPID (RFC 8292), aes128gcm encryption (RFC 8291), delivery (RFC 8030), the allow-list.

See ``docs/webpush.md``.
"""

from __future__ import annotations

from .allowlist import DEFAULT_ALLOWED_HOSTS, EndpointAllowList
from .client import WebPushClient
from .encryption import encrypt
from .outcomes import classify
from .payload import DEFAULT_TTL, MAX_PLAINTEXT, render, topic_for
from .settings import WebPushSettings
from .subscription import SubscriptionError, WebSubscription
from .vapid import VapidKey, VapidKeyPair, generate_vapid_keys

__all__ = [
    "DEFAULT_ALLOWED_HOSTS",
    "DEFAULT_TTL",
    "MAX_PLAINTEXT",
    "EndpointAllowList",
    "SubscriptionError",
    "VapidKey",
    "VapidKeyPair",
    "WebPushClient",
    "WebPushSettings",
    "WebSubscription",
    "classify",
    "encrypt",
    "generate_vapid_keys",
    "render",
    "topic_for",
]
