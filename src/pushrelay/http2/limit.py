"""How many requests to keep in flight: a limit that adapts to the latency seen (sans-IO).

By Little's law a sender has ``rate x latency`` requests in flight. A fixed cap therefore fixes the
rate at ``cap / latency``: 2,000 in flight against an APNs 54 ms away is 37k/s at most, however many
connections are open, while the same cap against an overloaded provider only deepens its queue.
:class:`AdaptiveLimit` looks for the number instead (the approach of Netflix's concurrency-limits,
Gradient2, with a TCP-like slow start so that a batch of a few seconds reaches it):

* **Rounds.** Answers are taken in rounds of about one limit's worth (one round trip when the limit
  is in use). A round's latency is the median of its answers, so that one slow straggler does not
  count as congestion.
* **Baseline.** The unloaded latency is the lowest round latency seen. It is allowed to creep up by
  ``drift`` per round, so that a peer that became slower for good (not because of us) is learned
  again instead of being backed off from forever; sending less lowers the latency again when the
  queueing was ours, and the minimum catches that.
* **Growth.** While a round's latency stays within ``tolerance`` x the baseline, more requests only
  add rate: the limit doubles each round (slow start) until the first sign of congestion, then grows
  by √limit per round.
* **Backoff.** Latency above ``tolerance`` x baseline means requests queue somewhere (at the peer,
  or in this process): the limit is multiplied by ``tolerance x baseline / latency`` (at least by
  0.5), but latency alone never takes it below the *floor*: one connection's streams and as many
  ready behind them. A sender that is itself the bottleneck sees its latency grow with what it
  sends too, and there fewer in flight only costs CPU (against the null APNs: 38 us of CPU per
  notification at 37 in flight, 25 us at 1,000, and 10-18 % less rate with 250 ready instead of
  1,000). What the peer itself offered on one connection is no overload. An overload answer (the
  caller decides which: 503, FCM's 429) is unambiguous: it halves the limit, once per round, down
  to ``minimum``, and the limit then grows back additively.
* **Ceiling.** Never more than the streams the connections can carry (connections x the peer's
  SETTINGS_MAX_CONCURRENT_STREAMS, see :meth:`set_capacity`) plus one connection's streams ready in
  the pool's queue. That queue is on purpose: the answers of one read free many streams at once,
  and the pool refills them from it in the same write instead of waiting for the producer; and a
  pool opens its next connection only when work is waiting.

So a slow but healthy endpoint gets as many requests in flight as all the connections' streams
carry, one whose latency grows with what we send keeps to one connection's worth (and its queue),
and one that answers "overloaded" gets less.

The class does no I/O and reads no clock: callers feed it latencies (:meth:`sample`), and tests
check its decisions for given samples.
"""

from __future__ import annotations

import math

__all__ = ["AdaptiveLimit"]


class AdaptiveLimit:
    """An in-flight limit fed with answer latencies; :attr:`value` is the limit to apply now."""

    def __init__(
        self,
        *,
        initial: int = 256,
        minimum: int = 32,
        maximum: int = 100_000,
        tolerance: float = 2.0,
        drift: float = 0.02,
        min_round: int = 16,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(f"need 1 <= minimum <= initial <= maximum, got {minimum}, {initial}, {maximum}")
        if tolerance <= 1.0:
            raise ValueError(f"tolerance must be above 1.0, got {tolerance}")
        self.minimum = minimum
        self.maximum = maximum
        self.tolerance = tolerance
        self.drift = drift
        self.min_round = min_round
        self.limit = initial  # before the ceiling (see value)
        #: the streams the connections can carry plus one connection's ready; None until a peer said
        self.ceiling: int | None = None
        #: one connection's streams and as many ready: latency alone never lowers the limit below this
        self.floor = minimum
        self.overloads = 0  # rounds with an overload answer
        #: lowest round latency (s), the "unloaded" latency; None until a round completed
        self.baseline: float | None = None
        self.last_latency: float | None = None  # the last round's median, for stats
        self.slow_start = True
        self.rounds = 0
        self.backoffs = 0  # rounds that lowered the limit (latency or overload)
        self._samples: list[float] = []
        self._overloaded = False
        self._round_size = max(min_round, initial)  # answers per round: kept ready, sample() is hot

    @property
    def value(self) -> int:
        """The limit to apply: the adaptive one, never above the ceiling."""
        if self.ceiling is None:
            return self.limit
        return max(1, min(self.limit, self.ceiling))

    def set_capacity(self, streams: int, per_connection: int) -> None:
        """The streams the connections can carry (connections x MAX_CONCURRENT_STREAMS), and one
        connection's share of them."""
        self.ceiling = max(self.minimum, streams + per_connection)
        self.floor = max(self.minimum, min(2 * per_connection, self.ceiling, self.maximum))
        if self.overloads == 0 and self.limit < self.floor:
            # what the peer offers on one connection is a safe start; slow start goes on from there
            self.limit = self.floor
        self._round_size = max(self.min_round, self.value)

    def sample(self, latency: float, *, overloaded: bool = False) -> None:
        """One answer: the seconds from its request's send to the answer, and whether the peer said
        it is overloaded."""
        # called for every answer: kept to an append and a comparison
        samples = self._samples
        samples.append(latency)
        if overloaded:
            self._overloaded = True
        if len(samples) >= self._round_size:
            self._end_round()

    def _end_round(self) -> None:
        samples = self._samples
        samples.sort()
        latency = samples[len(samples) // 2]
        self._samples = []
        self.rounds += 1
        self.last_latency = latency
        if self.baseline is None or latency < self.baseline:
            self.baseline = latency
        else:
            # forget slowly: a lasting change of the peer's own latency is learned again
            self.baseline = min(latency, self.baseline * (1.0 + self.drift))
        limit = self.value  # decisions are about the limit that was applied
        if self._overloaded:
            self._overloaded = False
            self.slow_start = False
            self.backoffs += 1
            self.overloads += 1
            new = limit * 0.5
        elif latency > self.tolerance * self.baseline:
            self.slow_start = False
            if limit > self.floor:
                self.backoffs += 1
            # never below the floor on latency alone (nor lower than an overload already put it)
            new = max(min(self.floor, limit), limit * max(0.5, self.tolerance * self.baseline / latency))
        elif self.slow_start:
            new = limit * 2.0
        else:
            new = limit + math.sqrt(limit)
        top = self.maximum if self.ceiling is None else min(self.maximum, self.ceiling)
        self.limit = max(self.minimum, min(top, int(new)))
        self._round_size = max(self.min_round, self.value)
