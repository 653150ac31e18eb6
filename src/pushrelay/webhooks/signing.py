"""The webhook signature: ``X-Pushrelay-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>``.

The timestamp (``X-Pushrelay-Timestamp``, UNIX seconds) is inside the signed text so that a
captured request cannot be replayed later: receivers reject timestamps older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign", "verify"]

SIGNATURE_HEADER = "X-Pushrelay-Signature"
TIMESTAMP_HEADER = "X-Pushrelay-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0) -> bool:
    """What a receiver runs: constant-time compare, and the timestamp must be recent."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)
