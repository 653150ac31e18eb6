"""Push-service answers classified into pushrelay outcomes — the table is data, with its source.

Source: RFC 8030 §5 (201 Created = accepted; 404/410 = the subscription is gone), RFC 8030 §8.4
(413 for a body too large, 429 with Retry-After), RFC 8292 §4 (401/403 when the VAPID header is
missing or invalid), as summarised in SPEC §5. The push services (FCM, Mozilla autopush, Apple,
WNS) follow these codes.
"""

from __future__ import annotations

from ..outcome import Outcome

__all__ = ["STATUSES", "classify"]

T, R, C, P = Outcome.TOKEN_DEAD, Outcome.RETRY, Outcome.CONFIG_BROKEN, Outcome.PAYLOAD_REJECTED

#: HTTP status -> (outcome, reason text).
STATUSES: dict[int, tuple[Outcome, str]] = {
    200: (Outcome.DELIVERED, "accepted"),
    201: (Outcome.DELIVERED, "created"),
    202: (Outcome.DELIVERED, "accepted"),
    400: (P, "the push service refused the request (bad header or encoding)"),
    401: (C, "the push service refused the VAPID authorization"),
    403: (C, "the push service refused the VAPID key or claims"),
    404: (T, "the subscription does not exist"),
    410: (T, "the subscription has expired or was unsubscribed"),
    413: (P, "the encrypted payload is too large"),
    429: (R, "too many requests"),
}


def classify(status: int) -> tuple[Outcome, str]:
    """The outcome of one push-service answer, with a reason that never quotes the endpoint."""
    found = STATUSES.get(status)
    if found is not None:
        return found
    if status >= 500:
        return R, f"push service error {status}"
    return Outcome.FAILED, f"unexpected answer {status} from the push service"
