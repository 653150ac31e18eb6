"""Retry timing, kept free of I/O so that it can be reasoned about and tested on its own."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["DEFAULT_EXPIRY", "IDEMPOTENCY_WINDOW", "RetryPolicy"]

DEFAULT_EXPIRY = timedelta(hours=24)
IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits ``base * 2**(n-1)`` capped at ``cap``.

    The delay is drawn between half and all of that value ("equal jitter") so that thousands of
    deliveries failed by the same outage do not come back in one burst, while still growing. A
    provider's ``Retry-After`` is a floor: we never come back sooner than asked.
    """

    base: float = 1.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"retry policy needs 0 < base <= cap, got base={self.base} cap={self.cap}")

    def delay(
        self, attempts: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before the next attempt, after ``attempts`` failed ones."""
        exp = min(self.cap, self.base * (2 ** max(0, min(attempts - 1, 30))))
        r = (rng or random).uniform(0.5, 1.0)
        delay = exp * r
        if retry_after is not None and retry_after > delay:
            delay = float(retry_after)
        return float(delay)
