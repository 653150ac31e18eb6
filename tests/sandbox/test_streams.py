"""HTTP/2 behaviour: the stream limit (1 until valid credentials), violations, flow control, PING."""

from __future__ import annotations

import asyncio
import json

from pushrelay.sandbox import ApnsSandbox

from .conftest import BUNDLE, Issue, Sender
from .h2client import H2TestClient, StreamWasReset

REFUSED_STREAM = 7


def headers(bearer: str) -> list[tuple[str, str]]:
    return [("authorization", bearer), ("apns-topic", BUNDLE), ("apns-push-type", "alert")]


async def test_one_stream_until_a_valid_token_then_the_configured_limit(
    sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    assert client.max_streams_seen == [1]
    assert (await send()).status == 200
    assert client.max_streams_seen == [1, 1000]
    assert sandbox.stats.stream_limit_violations == 0


async def test_opening_a_second_stream_too_early_is_refused_and_counted(
    issue: Issue, sandbox: ApnsSandbox, bearer: str
) -> None:
    rogue = await H2TestClient.connect(sandbox.url, sandbox.ca_file, obey_limits=False)
    try:
        first = rogue.open_stream("/3/device/" + issue(), headers(bearer))
        second = rogue.open_stream("/3/device/" + issue(), headers(bearer))
        body = json.dumps({"aps": {"alert": "hi"}}).encode()
        answer = await rogue.finish_stream(first, body)
        try:
            await rogue.finish_stream(second, body)
            raise AssertionError("the second stream should have been refused")
        except StreamWasReset as exc:
            assert exc.error_code == REFUSED_STREAM
    finally:
        await rogue.close()
    assert answer.status == 200
    assert sandbox.stats.stream_limit_violations == 1
    assert len(sandbox.all_received()) == 1


async def test_pipelining_past_the_limit_is_caught_even_when_answers_are_quick(
    issue: Issue, sandbox: ApnsSandbox, bearer: str
) -> None:
    """Complete requests sent back to back before the limit was raised: the second one is a violation,
    although the server had already answered the first (the client could not have seen that answer)."""
    rogue = await H2TestClient.connect(sandbox.url, sandbox.ca_file, obey_limits=False)
    body = json.dumps({"aps": {"alert": "hi"}}).encode()
    try:
        results = await asyncio.gather(
            *(rogue.request("POST", "/3/device/" + issue(), headers(bearer), body) for _ in range(3)),
            return_exceptions=True,
        )
    finally:
        await rogue.close()
    assert not isinstance(results[0], BaseException) and results[0].status == 200
    assert all(isinstance(r, StreamWasReset) for r in results[1:])
    assert sandbox.stats.stream_limit_violations == 2


async def test_burst_with_large_payloads_keeps_flow_control_moving(
    issue: Issue, sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    """1,000 requests of ~2.5 KB (2.5 MB, far beyond the 64 KB windows) sent at once."""
    body = json.dumps({"aps": {"alert": "x" * 2500}})
    tokens = [issue() for _ in range(1000)]
    results = await asyncio.gather(*(send(token, body=body) for token in tokens))
    assert {r.status for r in results} == {200}
    assert len(sandbox.all_received()) == 1000
    stats = sandbox.stats
    assert stats.stream_limit_violations == 0
    assert stats.max_streams_in_use > 1  # the client really multiplexed
    assert client.peak_in_flight <= 1000


async def test_large_control_answer_is_sent_under_flow_control(
    issue: Issue, sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    body = json.dumps({"aps": {"alert": "y" * 2000}})
    await asyncio.gather(*(send(issue(), body=body) for _ in range(100)))
    response = await client.request("GET", "/_sandbox/received")
    assert response.status == 200
    assert len(response.body) > 200_000  # several flow-control windows
    assert len(response.json["received"]) == 100


async def test_ping_is_answered_and_idle_connections_stay_open(
    sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    await client.ping()
    for _ in range(100):
        if client.pings_acknowledged:
            break
        await asyncio.sleep(0.01)
    assert client.pings_acknowledged == 1
    await asyncio.sleep(0.2)
    assert (await send()).status == 200
    assert sandbox.stats.connections == 1
