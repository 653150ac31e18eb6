"""Retry timing of the outbox: the one backoff implementation (:mod:`pushrelay.backoff`).

The outbox owns retries: provider clients make one request per delivery and return its result,
and a transient result comes back here, to wait ``RetryPolicy.delay(attempts, retry_after)``.
"""

from __future__ import annotations

from datetime import timedelta

from ..backoff import Backoff

__all__ = ["DEFAULT_EXPIRY", "IDEMPOTENCY_WINDOW", "RetryPolicy"]

DEFAULT_EXPIRY = timedelta(hours=24)
IDEMPOTENCY_WINDOW = timedelta(hours=24)

#: The outbox's redelivery backoff; the same class the HTTP/2 pool reconnects with.
RetryPolicy = Backoff
