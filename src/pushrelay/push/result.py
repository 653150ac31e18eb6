"""What a send returns: the 4D response shape, plus one :class:`Delivery` per device.

``success`` is true when at least one device accepted the notification (4D's rule); ``warnings``
name recipient-level problems, ``errors`` global ones, in 4D's words where 4D has them. Tokens
in warning texts are masked (warnings end up in logs); :attr:`Delivery.token` keeps the full token
for the caller, and ``str()`` / ``repr()`` of a delivery mask it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..fourd.messages import messages
from ..outcome import Outcome
from ..registry.tokens import mask_token

__all__ = ["Delivery", "PushResult", "messages"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome for one device."""

    platform: str
    token: str = field(repr=False)
    email: str | None
    outcome: Outcome
    status: int = 0
    reason: str | None = None
    apns_id: str | None = None
    environment: str | None = None
    registered: bool = True
    """False for a raw token that is not in the registry."""
    retired: bool = False
    """True when this delivery's answer retired the device."""
    deferred_until: datetime | None = None
    """Not sent: it was due again at this time (a provider's Retry-After, or the retry policy)
    when the call's timeout ended."""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.DELIVERED

    @property
    def masked_token(self) -> str:
        return mask_token(self.token)

    def __repr__(self) -> str:
        return (
            f"Delivery(platform={self.platform!r}, token={self.masked_token!r}, email={self.email!r}, "
            f"outcome={self.outcome.value!r}, status={self.status}, reason={self.reason!r})"
        )

    __str__ = __repr__

    def to_dict(self) -> dict[str, Any]:
        out = {
            "platform": self.platform,
            "token": self.token,
            "email": self.email,
            "outcome": self.outcome.value,
            "status": self.status,
            "reason": self.reason,
            "apns_id": self.apns_id,
            "environment": self.environment,
            "registered": self.registered,
            "retired": self.retired,
        }
        if self.deferred_until is not None:
            out["deferred_until"] = self.deferred_until.isoformat()
        return out


@dataclass
class PushResult:
    success: bool = False
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    notification_id: str | None = None
    """The id of the notification's record in the outbox (``pushrelay notifications status``)."""

    def counts(self) -> dict[str, int]:
        """Deliveries per outcome, e.g. ``{"delivered": 3, "token_dead": 1}``."""
        out: dict[str, int] = {}
        for d in self.deliveries:
            out[d.outcome.value] = out.get(d.outcome.value, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{success, warnings, errors}`` as 4D returns it, plus ``deliveries``."""
        return {
            "success": self.success,
            "warnings": list(self.warnings),
            "errors": list(self.errors),
            "deliveries": [d.to_dict() for d in self.deliveries],
        }
