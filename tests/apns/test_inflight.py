"""The adaptive in-flight limit over real TLS + HTTP/2 sockets against the sandbox: a slow APNs gets
more than the old fixed 2,000 in flight when the connections carry them, and what the client holds
stays bounded by the streams (plus a small queue) whatever the size of the batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pushrelay import Notification
from pushrelay.apns import ApnsClient
from pushrelay.http2 import AdaptiveLimit
from pushrelay.sandbox import ApnsSandbox

NOTE = Notification(title="t", body="b")
TOKEN = f"{7:064x}"  # issued by the fixture
MakeClient = Callable[..., ApnsClient]


async def test_a_slow_apns_gets_more_than_2000_in_flight_and_memory_stays_bounded(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    sandbox.script(TOKEN, "delay", seconds=1.0)  # every answer a second late: a far, healthy APNs
    n = 7000
    pulled = 0

    def items() -> Iterator[tuple[Notification, str, int]]:
        nonlocal pulled
        for i in range(n):
            pulled += 1
            yield NOTE, TOKEN, i

    # three connections of the sandbox's 1,000 streams
    async with make_client(connections=3) as client:
        assert client.max_in_flight is None and client.limiter is not None  # adaptive by default
        ok = answered = peak_streams = peak_requests = peak_held = 0
        async for result in client.send_many(items()):
            ok += result.ok
            answered += 1
            peak_streams = max(peak_streams, client.pool.in_flight)
            peak_requests = max(peak_requests, client.pool.in_flight + client.pool.queued)
            peak_held = max(peak_held, pulled - answered)  # items taken and not yet handed back
        limiter = client.limiter
    assert ok == n
    assert peak_streams > 2000  # the old fixed default could never have had these out
    assert limiter.ceiling == 3750  # 3 x 1,000 streams + a 25 % queue to refill them from
    # never more requests than that, however long the batch; the items held also count answers
    # read in one go and not yet handed to the caller (at most as many again)
    assert peak_requests <= limiter.ceiling
    assert peak_held <= 2 * limiter.ceiling
    assert limiter.backoffs == 0


async def test_a_fixed_cap_still_caps(sandbox: ApnsSandbox, make_client: MakeClient) -> None:
    sandbox.script(TOKEN, "delay", seconds=0.3)
    async with make_client(connections=3, max_in_flight=100) as client:
        assert client.limiter is None and client.in_flight_limit == 100
        peak = 0
        async for result in client.send_many((NOTE, TOKEN, i) for i in range(400)):
            assert result.ok
            peak = max(peak, client.pool.in_flight + client.pool.queued)
    assert peak <= 100


async def test_the_limit_is_learned_once_per_client_and_shown(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    limit = AdaptiveLimit(initial=50)
    async with make_client(max_in_flight=limit) as client:
        assert client.limiter is limit and client.in_flight_limit == 50
        assert (await client.send(NOTE, TOKEN)).ok
        # the sandbox raised its stream limit to 1,000 after the first answer: one connection's
        # streams are the start, and the ceiling is what one connection carries plus its queue
        assert (client.in_flight_limit, limit.ceiling) == (1000, 1250)
        results = [r async for r in client.send_many((NOTE, TOKEN, i) for i in range(3000))]
        assert all(r.ok for r in results)
        assert limit.rounds >= 2 and limit.baseline is not None
