"""Feedback webhooks: batched, HMAC-signed JSON events per app (see :mod:`.dispatcher`)."""

from .dispatcher import WebhookDispatcher, WebhookTarget
from .signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookDispatcher", "WebhookTarget", "sign", "verify"]
