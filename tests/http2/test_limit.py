"""The adaptive in-flight limit's decisions for given latency samples (sans-IO: no clock, no socket)."""

from __future__ import annotations

import pytest

from pushrelay.http2 import AdaptiveLimit


def round_of(limit: AdaptiveLimit, latency: float, *, overloaded: int = 0) -> int:
    """Feed one full round of answers at ``latency`` s (``overloaded`` of them say so); the new value."""
    n = max(limit.min_round, limit.value)
    for i in range(n):
        limit.sample(latency, overloaded=i < overloaded)
    return limit.value


def test_a_slow_endpoint_gets_every_stream_the_connections_carry() -> None:
    # 4 connections of 1,000 streams against a 54 ms APNs whose latency does not depend on us
    limit = AdaptiveLimit()
    limit.set_capacity(4000, 1000)
    assert limit.value == 2000  # the start: one connection's streams, and as many ready behind them
    values = [round_of(limit, 0.054) for _ in range(4)]
    assert values == [4000, 5000, 5000, 5000]  # slow start, then the ceiling: streams + one connection's
    assert limit.backoffs == 0 and limit.baseline == pytest.approx(0.054)


def test_the_ceiling_follows_the_streams_and_never_caps_the_limit_it_learned() -> None:
    limit = AdaptiveLimit()
    limit.set_capacity(1000, 1000)
    for _ in range(3):
        round_of(limit, 0.054)
    assert limit.value == 2000  # one connection: 1,000 streams and 1,000 ready to refill them
    limit.set_capacity(3000, 1000)  # three connections now
    assert limit.value == 2000  # not jumped to: it is earned with a round at this latency
    assert round_of(limit, 0.054) == 4000


def test_before_any_peer_said_the_initial_limit_applies() -> None:
    limit = AdaptiveLimit(initial=300)
    assert (limit.value, limit.ceiling) == (300, None)
    limit.set_capacity(4, 1)  # APNs starts a connection at one stream
    assert limit.value == 32  # the minimum: the ceiling is at least that
    limit.set_capacity(4000, 1000)  # and raises it after the first answer
    assert limit.value == 2000


def test_latency_growing_with_the_load_backs_off_but_not_below_one_connection() -> None:
    limit = AdaptiveLimit()
    limit.set_capacity(4000, 1000)
    assert round_of(limit, 0.010) == 4000
    assert round_of(limit, 0.010) == 5000
    # now requests queue: 4 x the baseline means twice too many (tolerance 2; the baseline has
    # crept up by 2 % a round, hence not exactly half)
    assert round_of(limit, 0.040) == 2550
    assert not limit.slow_start and limit.backoffs == 1
    # at most halved per round, and latency alone stops at the floor: one connection's streams
    # and as many ready
    assert round_of(limit, 0.060) == 2000
    assert round_of(limit, 0.060) == 2000
    # within tolerance again: additive growth (√limit per round), no more doubling
    assert round_of(limit, 0.015) == 2044
    assert round_of(limit, 0.015) == 2089


def test_a_moderate_rise_is_tolerated() -> None:
    limit = AdaptiveLimit()
    limit.set_capacity(8000, 1000)
    round_of(limit, 0.050)
    assert round_of(limit, 0.095) == 8000  # under 2 x 50 ms: no queueing worth backing off
    assert limit.backoffs == 0


def test_overload_answers_halve_it_below_the_floor_then_it_grows_back_additively() -> None:
    limit = AdaptiveLimit()
    limit.set_capacity(2000, 1000)
    assert round_of(limit, 0.050) == 3000
    assert round_of(limit, 0.050, overloaded=1) == 1500  # one 503 in a round: halved, once
    assert round_of(limit, 0.050, overloaded=300) == 750
    assert round_of(limit, 0.050, overloaded=1) == 375
    assert limit.overloads == 3
    assert round_of(limit, 0.050) == 394  # recovery is additive (AIMD), not a jump back
    limit.set_capacity(2000, 1000)  # a connection change does not undo an overload either
    assert limit.value == 394
    for _ in range(10):
        round_of(limit, 0.050, overloaded=1)
    assert limit.value == 32  # the minimum


def test_one_straggler_in_a_round_is_not_congestion() -> None:
    limit = AdaptiveLimit()
    limit.set_capacity(4000, 1000)
    round_of(limit, 0.050)
    for i in range(limit.value):
        limit.sample(30.0 if i % 10 == 0 else 0.050)  # 10 % timeouts-to-be: the median ignores them
    assert limit.value == 5000 and limit.backoffs == 0


def test_a_peer_that_became_slower_for_good_is_learned_again() -> None:
    # not our doing: its latency does not fall when we send less, so the baseline creeps up to it
    limit = AdaptiveLimit()
    limit.set_capacity(4000, 1000)
    round_of(limit, 0.020)
    for _ in range(60):
        round_of(limit, 0.100)
    assert limit.baseline is not None and limit.baseline > 0.05  # > 100 ms / tolerance: no backoff
    before = limit.value
    round_of(limit, 0.100)
    assert limit.value > before  # growing again


def test_rounds_have_a_minimum_size() -> None:
    limit = AdaptiveLimit(initial=4, minimum=1, min_round=16)
    for _ in range(15):
        limit.sample(0.01)
    assert limit.rounds == 0  # 4 answers are too few to judge a latency by
    limit.sample(0.01)
    assert limit.rounds == 1 and limit.value == 8


@pytest.mark.parametrize(
    "kwargs",
    [{"minimum": 0}, {"initial": 10, "minimum": 20}, {"initial": 10, "maximum": 5}, {"tolerance": 1.0}],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AdaptiveLimit(**kwargs)  # type: ignore[arg-type]
