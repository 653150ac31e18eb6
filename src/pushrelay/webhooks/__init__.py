"""Feedback webhooks: durable, batched, HMAC-signed JSON events per app (see :mod:`.dispatcher`)."""

from .dispatcher import WebhookDispatcher, WebhookSettings, WebhookTarget
from .signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from .store import WebhookEventStore

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookDispatcher",
    "WebhookEventStore",
    "WebhookSettings",
    "WebhookTarget",
    "sign",
    "verify",
]
