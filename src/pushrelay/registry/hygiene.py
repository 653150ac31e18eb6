"""Token hygiene: turning delivery outcomes into retirements.

A provider's verdict that a token is dead (:attr:`Outcome.TOKEN_DEAD`: APNs 410 Unregistered,
400 BadDeviceToken, 400 DeviceTokenNotForTopic; FCM UNREGISTERED...) retires the device, so
later sends skip it. One subtlety: APNs answers 410 with the time it learned the token was
invalid (``token_invalid_since``, milliseconds). An app that registered the same token again
*after* that moment proved it is alive, so the device is kept. Without a timestamp, the instant
the send started plays the same role: a registration that arrived while we were sending wins.

:func:`retirement_for` is the pure decision; :func:`retire_dead_tokens` applies a batch of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..outcome import DeliveryResult, Outcome
from .devices import DeviceRegistry

__all__ = ["Retirement", "retire_dead_tokens", "retirement_for", "retirement_reason"]


@dataclass(frozen=True, slots=True)
class Retirement:
    token: str
    reason: str
    registered_before: datetime
    """Retire only if the device's last registration is not later than this."""


def retirement_reason(result: DeliveryResult) -> str:
    """The text stored as the device's ``retired_reason``, e.g. ``"410 Unregistered"``."""
    reason = result.reason or result.outcome.value
    return f"{result.status} {reason}" if result.status else reason


def retirement_for(result: DeliveryResult, *, sent_at: datetime) -> Retirement | None:
    """Whether (and under which condition) ``result`` retires its device."""
    if result.outcome is not Outcome.TOKEN_DEAD:
        return None
    before = sent_at
    if result.token_invalid_since is not None:
        before = datetime.fromtimestamp(result.token_invalid_since / 1000, UTC)
    return Retirement(result.token, retirement_reason(result), before)


def retire_dead_tokens(
    registry: DeviceRegistry, app: str, results: Iterable[DeliveryResult], *, sent_at: datetime
) -> list[str]:
    """Retire the devices of ``app`` that ``results`` report dead; returns the retired tokens."""
    items = [
        (r.token, r.reason, r.registered_before)
        for r in (retirement_for(res, sent_at=sent_at) for res in results)
        if r is not None
    ]
    return registry.retire_many(app, items) if items else []
