"""What became of one delivery attempt to one device, in provider-neutral terms.

Every provider (APNs, FCM, Web Push) classifies its answers into the same five classes, so that
the registry, the outbox and the metrics never need to know which provider spoke.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["DeliveryResult", "Outcome"]


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    """The provider accepted the notification for this device."""
    TOKEN_DEAD = "token_dead"  # noqa: S105 - an outcome name, not a secret
    """The token will never work again: retire the device (410 Unregistered, BadDeviceToken...)."""
    RETRY = "retry"
    """Transient: try again later with backoff (429, 500, 503, connection errors)."""
    CONFIG_BROKEN = "config_broken"
    """The app's credentials or topic are wrong: stop sending for that app and alert."""
    PAYLOAD_REJECTED = "payload_rejected"
    """This notification will never be accepted as it is (too large, bad header values)."""
    EXPIRED = "expired"
    """The notification's deadline passed before it could be delivered (set by the outbox)."""
    FAILED = "failed"
    """Cannot be delivered for a local reason (e.g. no simulator tooling); never retried."""

    @property
    def is_final(self) -> bool:
        return self is not Outcome.RETRY


@dataclass(slots=True)
class DeliveryResult:
    """The answer for one (notification, device) pair.

    ``status`` is the provider's HTTP status (0 when no answer was received), ``reason`` the
    provider's reason text (``"Unregistered"``, ``"UNAVAILABLE"``...) or a local explanation,
    ``provider_id`` the provider's id for the message (``apns-id`` for APNs), ``token_invalid_since``
    the APNs 410 timestamp in milliseconds, ``retry_after`` the delay the provider asked for, in
    seconds. ``tag`` carries the caller's correlation value through batch sends untouched.
    """

    token: str
    outcome: Outcome
    status: int = 0
    reason: str | None = None
    provider_id: str | None = None
    token_invalid_since: int | None = None
    retry_after: float | None = None
    attempts: int = 1
    tag: object = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.DELIVERED

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "token": self.token,
            "outcome": self.outcome.value,
            "status": self.status,
            "reason": self.reason,
            "apns_id": self.provider_id,
            "attempts": self.attempts,
        }
        if self.token_invalid_since is not None:
            d["token_invalid_since"] = self.token_invalid_since
        if self.retry_after is not None:
            d["retry_after"] = self.retry_after
        return d
