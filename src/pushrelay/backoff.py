"""The one backoff of pushrelay: exponential with jitter, a provider's Retry-After as a floor.

Used by the outbox for redelivery (:class:`pushrelay.queue.RetryPolicy` is this class) and by the
HTTP/2 pool between reconnects. It is a core module, free of I/O, so that protocol packages
(``http2/``) can use it without importing ``queue/``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Attempt n waits ``base * 2**(n-1)`` capped at ``cap``, drawn between half and all of it.

    "Equal jitter": thousands of deliveries failed by the same outage do not come back in one
    burst, while the wait still grows. A provider's ``Retry-After`` is a floor: we never come back
    sooner than asked.
    """

    base: float = 1.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")

    def delay(
        self, attempts: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before the next attempt, after ``attempts`` failed ones."""
        exp = min(self.cap, self.base * (2 ** max(0, min(attempts - 1, 30))))
        delay = exp * (rng or random).uniform(0.5, 1.0)
        if retry_after is not None and retry_after > delay:
            delay = float(retry_after)
        return float(delay)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
