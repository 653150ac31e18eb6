"""The one backoff: exponential with equal jitter, capped, a provider's Retry-After as a floor."""

from __future__ import annotations

import random

import pytest

from pushrelay.backoff import Backoff
from pushrelay.queue.policy import RetryPolicy


def test_grows_exponentially_within_the_jitter_band_and_stops_at_the_cap() -> None:
    b, rng = Backoff(base=1.0, cap=30.0), random.Random(7)
    for attempts, full in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (60, 30.0)]:
        delays = [b.delay(attempts, rng=rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), (attempts, min(delays), max(delays))
        assert max(delays) - min(delays) > full / 4  # jittered, not one fixed value


def test_retry_after_is_a_floor_never_a_ceiling() -> None:
    b = Backoff(base=1.0, cap=300.0)
    assert b.delay(1, retry_after=120) == 120.0
    assert 64 <= b.delay(8, retry_after=1) <= 128


def test_the_outbox_and_the_http2_pool_share_it() -> None:
    assert RetryPolicy is Backoff
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0)
    with pytest.raises(ValueError, match="cap"):
        Backoff(base=5, cap=1)
