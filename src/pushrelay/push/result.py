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

from ..outcome import Outcome
from ..registry.tokens import mask_token

__all__ = ["Delivery", "PushResult", "messages"]


class messages:
    """Warning and error texts. Those 4D also produces are spelled exactly as 4D spells them."""

    NO_RECIPIENT_GIVEN = "No recipient given"
    NO_RECIPIENT_FOUND = "No recipient found"
    BOTH_EMPTY = "Both mails and deviceTokens collections are empty"
    RAW_TOKEN_EMAIL = "No mail address specified, raw deviceToken was given"  # noqa: S105
    DATACLASS_EMPTY = "DataClass name cannot be empty"
    DATACLASS_UNDEFINED = "DataClass is not defined correctly"
    DATACLASS_TYPE = "First parameter must be a DataClass, an Entity or a Text (dataClass name)"

    _PLATFORM_NAMES = {"ios": "iOS", "android": "Android", "web": "web"}

    @staticmethod
    def no_session(email: str) -> str:
        return f"No session file was found for the following mail address : {email}"

    @staticmethod
    def no_device_for_targets(email: str) -> str:
        # 4D's text for "sessions exist but none is usable"
        return f"We couldn't find related deviceTokens to the following mail address : {email}"

    @classmethod
    def failed(cls, platform: str, email: str | None, token: str, reason: str | None) -> str:
        name = cls._PLATFORM_NAMES.get(platform, platform)
        who = f"[{email or cls.RAW_TOKEN_EMAIL} ; {mask_token(token)}]"
        text = f"Failed to send {name} push notification to : {who}"
        return f"{text} ({reason})" if reason else text

    @classmethod
    def retired(cls, email: str | None, token: str, retired_at: datetime | None, reason: str | None) -> str:
        when = f" on {retired_at:%Y-%m-%d}" if retired_at else ""
        why = f" ({reason})" if reason else ""
        return (
            f"Skipped retired device [{email or cls.RAW_TOKEN_EMAIL} ; {mask_token(token)}]: "
            f"retired{when}{why}; it is used again when the app registers it again"
        )

    @staticmethod
    def retired_skipped(app: str, count: int) -> str:
        return (
            f"{count} retired device(s) of app {app} were skipped; "
            "they are used again when the app registers them again"
        )

    @staticmethod
    def unregistered_sent(token: str, app: str) -> str:
        return f"The device token {mask_token(token)} is not registered for app {app}; sent anyway"

    @staticmethod
    def unregistered_refused(token: str, app: str) -> str:
        return (
            f"The device token {mask_token(token)} is not registered for app {app}; not sent "
            "(registered_tokens_only is set)"
        )

    @staticmethod
    def not_in_targets(token: str, platform: str, targets: tuple[str, ...]) -> str:
        wanted = ", ".join(targets)
        return f"The device token {mask_token(token)} is a {platform} device, not among the targets: {wanted}"


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
        return {
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


@dataclass
class PushResult:
    success: bool = False
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

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
