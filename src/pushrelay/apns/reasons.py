"""APNs answers classified into pushrelay outcomes — the table is data, with its source.

Source: Apple, "Handling notification responses from APNs" (developer.apple.com, Table 2 "Status
codes" and Table 3 "Error reasons"), as summarised in SPEC §3. Token-level reasons retire the token,
transient ones are retried by the outbox with backoff (never by the client), configuration ones stop
the app's sending until an operator fixes the credentials or topic, and the rest reject this payload
only.
"""

from __future__ import annotations

from ..outcome import Outcome

__all__ = ["REASONS", "classify"]

T, R, C, P = Outcome.TOKEN_DEAD, Outcome.RETRY, Outcome.CONFIG_BROKEN, Outcome.PAYLOAD_REJECTED

#: (HTTP status, reason) -> outcome.
REASONS: dict[tuple[int, str], Outcome] = {
    # 400 Bad request
    (400, "BadCollapseId"): P,
    (400, "BadDeviceToken"): T,  # also: a sandbox token sent to production (check the environment)
    (400, "BadExpirationDate"): P,
    (400, "BadMessageId"): P,
    (400, "BadPriority"): P,
    (400, "BadTopic"): C,
    (400, "DeviceTokenNotForTopic"): T,
    (400, "DuplicateHeaders"): P,
    (400, "IdleTimeout"): R,  # the connection idled out: the next attempt reconnects
    (400, "InvalidPushType"): P,
    (400, "MissingDeviceToken"): T,
    (400, "MissingTopic"): C,
    (400, "PayloadEmpty"): P,
    (400, "TopicDisallowed"): C,
    # 403 Forbidden: the credentials are wrong
    (403, "BadCertificate"): C,
    (403, "BadCertificateEnvironment"): C,
    (403, "ExpiredProviderToken"): R,  # the client mints a new JWT; the next attempt uses it
    (403, "Forbidden"): C,
    (403, "InvalidProviderToken"): C,
    (403, "MissingProviderToken"): C,
    (403, "UnrelatedKeyIdInToken"): C,
    (403, "BadEnvironmentKeyIdInToken"): C,
    (404, "BadPath"): C,
    (405, "MethodNotAllowed"): C,
    (410, "Unregistered"): T,
    (410, "ExpiredToken"): T,
    (413, "PayloadTooLarge"): P,
    (429, "TooManyProviderTokenUpdates"): R,
    (429, "TooManyRequests"): R,  # the same device too often
    (500, "InternalServerError"): R,
    (503, "ServiceUnavailable"): R,
    (503, "Shutdown"): R,
}

#: Outcome for a status whose reason is missing or not in the table.
_BY_STATUS: dict[int, Outcome] = {400: P, 403: C, 404: C, 405: C, 410: T, 413: P, 429: R}


def classify(status: int, reason: str | None) -> Outcome:
    """The outcome of one APNs answer."""
    if status == 200:
        return Outcome.DELIVERED
    if reason is not None:
        found = REASONS.get((status, reason))
        if found is not None:
            return found
    if status >= 500:
        return Outcome.RETRY
    return _BY_STATUS.get(status, Outcome.PAYLOAD_REJECTED)
