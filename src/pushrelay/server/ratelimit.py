"""Token buckets per key, client address or device (in process memory: each API process limits
on its own). Buckets that have refilled are dropped, so a fleet of devices costs memory only
while its devices are active."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``rate`` requests per second on average, bursts of up to ``burst``.

    :meth:`take` returns 0 when the request may proceed, otherwise the whole number of seconds to
    wait before a token is available (the ``Retry-After`` value).
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate limit needs rate > 0 and burst >= 1, got rate={rate} burst={burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    _PRUNE_AT = 10_000  # buckets; a full one carries no state worth keeping

    def take(self, key: str) -> int:
        now = self._clock()
        with self._lock:
            if len(self._buckets) >= self._PRUNE_AT and key not in self._buckets:
                self._prune(now)
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(float(self.burst), now)
            b.tokens = min(float(self.burst), b.tokens + (now - b.stamp) * self.rate)
            b.stamp = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0
            return max(1, math.ceil((1.0 - b.tokens) / self.rate))

    def _prune(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]

    def __len__(self) -> int:
        return len(self._buckets)
