"""Scripted devices and outages: Apple's error answers, GOAWAY, resets, drops and delays on demand."""

from __future__ import annotations

import asyncio

import pytest

from pushrelay.sandbox import ApnsSandbox

from .conftest import FakeClock, Issue, Sender
from .h2client import ConnectionClosed, H2TestClient, StreamWasReset

REFUSED_STREAM = 7


@pytest.mark.parametrize(
    ("behaviour", "status", "reason"),
    [
        ("unregistered", 410, "Unregistered"),
        ("expired_token", 410, "ExpiredToken"),
        ("bad_token", 400, "BadDeviceToken"),
        ("not_for_topic", 400, "DeviceTokenNotForTopic"),
        ("rate_limited", 429, "TooManyRequests"),
        ("unavailable", 503, "ServiceUnavailable"),
        ("internal", 500, "InternalServerError"),
        ("shutdown", 503, "Shutdown"),
    ],
)
async def test_scripted_answers(
    issue: Issue,
    sandbox: ApnsSandbox,
    send: Sender,
    clock: FakeClock,
    behaviour: str,
    status: int,
    reason: str,
) -> None:
    token = issue()
    sandbox.script(token, behaviour)
    for _ in range(2):  # times=None: every request
        response = await send(token)
        assert (response.status, response.reason) == (status, reason)
        if status == 410:
            assert response.json["timestamp"] == int(clock.now * 1000)  # ms; "now" unless scripted
        else:
            assert "timestamp" not in response.json
    assert sandbox.received(token) == []
    assert sandbox.stats.rejected[reason] == 2


async def test_unregistered_with_a_given_timestamp(issue: Issue, sandbox: ApnsSandbox, send: Sender) -> None:
    token = issue()
    sandbox.script(token, "unregistered", timestamp_ms=1_700_000_000_123)
    response = await send(token)
    assert response.json == {"reason": "Unregistered", "timestamp": 1_700_000_000_123}


async def test_times_then_normal_delivery(issue: Issue, sandbox: ApnsSandbox, send: Sender) -> None:
    token = issue()
    sandbox.script(token, "unavailable", times=2)
    statuses = [(await send(token)).status for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert len(sandbox.received(token)) == 1


async def test_scripts_queue_up_and_an_open_ended_one_is_replaced(
    issue: Issue, sandbox: ApnsSandbox, send: Sender
) -> None:
    token = issue()
    sandbox.script(token, "unavailable", times=1)
    sandbox.script(token, "unregistered")
    assert [(await send(token)).reason for _ in range(3)] == [
        "ServiceUnavailable",
        "Unregistered",
        "Unregistered",
    ]
    sandbox.script(token, "bad_token", times=1)  # replaces the open-ended "unregistered"
    assert [(await send(token)).status for _ in range(2)] == [400, 200]
    sandbox.script(token, "internal")
    sandbox.clear_scripts(token)
    assert (await send(token)).status == 200


async def test_validation_comes_before_the_device_script(
    issue: Issue, sandbox: ApnsSandbox, send: Sender
) -> None:
    token = issue()
    sandbox.script(token, "unregistered", times=1)
    assert (await send(token, apns_priority="7")).reason == "BadPriority"
    assert (await send(token)).reason == "Unregistered"  # the script was not used up by the bad request
    assert (await send(token)).status == 200


async def test_other_tokens_are_unaffected(issue: Issue, sandbox: ApnsSandbox, send: Sender) -> None:
    sandbox.script(issue(), "unregistered")
    assert (await send(issue())).status == 200


async def test_reset_refuses_the_stream_and_keeps_the_connection(
    issue: Issue, sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    token = issue()
    sandbox.script(token, "reset", times=1)
    with pytest.raises(StreamWasReset) as exc:
        await send(token)
    assert exc.value.error_code == REFUSED_STREAM
    assert (await send(token)).status == 200  # same connection
    assert sandbox.stats.resets_sent == 1 and sandbox.stats.connections == 1
    assert len(sandbox.received(token)) == 1


async def test_drop_aborts_the_connection(
    issue: Issue, sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    token = issue()
    sandbox.script(token, "drop", times=1)
    with pytest.raises(ConnectionClosed):
        await send(token)
    await asyncio.wait_for(client.closed.wait(), 5)
    assert client.goaway is None  # no goodbye: the TCP connection just ended
    fresh = await H2TestClient.connect(sandbox.url, sandbox.ca_file)
    try:
        assert (await send(token, via=fresh)).status == 200
    finally:
        await fresh.close()
    assert sandbox.stats.connections_dropped == 1
    assert len(sandbox.received(token)) == 1


async def test_goaway_answers_lower_streams_and_drops_higher_ones(
    issue: Issue, sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    assert (await send()).status == 200  # stream 1; the stream limit is raised
    slow, leaving, later = issue(), issue(), issue()
    sandbox.script(slow, "delay", seconds=0.3, times=1)
    sandbox.script(leaving, "goaway", times=1)
    # Started in this order, they get streams 3, 5 and 7.
    tasks = [asyncio.create_task(send(token)) for token in (slow, leaving, later)]
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert client.goaway is not None
    assert client.goaway.last_stream_id == 3  # the stream before the scripted one
    assert client.goaway.error_code == 0  # NO_ERROR
    assert client.goaway.debug_data == b'{"reason":"Shutdown"}'
    first, second, third = results
    assert not isinstance(first, BaseException) and first.status == 200  # in flight below the limit: answered
    assert isinstance(second, ConnectionClosed) and isinstance(third, ConnectionClosed)  # never processed
    await asyncio.wait_for(client.closed.wait(), 5)  # then the server closes the connection
    assert len(sandbox.received(slow)) == 1
    assert sandbox.received(leaving) == [] and sandbox.received(later) == []
    assert sandbox.stats.goaways_sent == 1


async def test_goaway_on_the_first_stream(
    issue: Issue, sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    token = issue()
    sandbox.script(token, "goaway", times=1, reason="Maintenance")
    with pytest.raises(ConnectionClosed):
        await send(token)
    assert client.goaway is not None
    assert (client.goaway.last_stream_id, client.goaway.debug_data) == (0, b'{"reason":"Maintenance"}')


async def test_delay_answers_later_and_others_are_not_held_up(
    issue: Issue, sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    assert (await send()).status == 200  # raise the stream limit first
    slow, quick = issue(), issue()
    sandbox.script(slow, "delay", seconds=0.3)
    slow_task = asyncio.create_task(send(slow))
    quick_task = asyncio.create_task(send(quick))
    done, _ = await asyncio.wait({slow_task, quick_task}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {quick_task}
    assert (await slow_task).status == 200
    assert len(sandbox.received(slow)) == 1


async def test_outage_answers_every_device_request(sandbox: ApnsSandbox, send: Sender) -> None:
    sandbox.set_outage()
    response = await send()
    assert (response.status, response.reason) == (503, "ServiceUnavailable")
    sandbox.set_outage(500, "InternalServerError")
    response = await send()
    assert (response.status, response.reason) == (500, "InternalServerError")
    sandbox.clear_outage()
    assert (await send()).status == 200
    assert len(sandbox.all_received()) == 1


async def test_clear_received(sandbox: ApnsSandbox, send: Sender) -> None:
    await send()
    sandbox.clear_received()
    assert sandbox.all_received() == []


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("ab" * 32, "explode"), {}, "behaviour: expected one of unregistered"),
        (("ab" * 32, "unregistered"), {"times": 0}, "times: expected a positive integer"),
        (("ab" * 32, "unregistered"), {"times": True}, "times"),
        (("ab" * 32, "unregistered"), {"colour": "red"}, "takes no parameter 'colour'"),
        (("ab" * 32, "delay"), {"seconds": "soon"}, "params.seconds: expected a non-negative number"),
        (("ab" * 32, "delay"), {"seconds": -1}, "params.seconds"),
        (("not hex", "unregistered"), {}, "token: expected a hex device token"),
    ],
)
def test_script_arguments_are_checked(args: tuple[str, str], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ApnsSandbox().script(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "reason"), [(200, "Fine"), (503, ""), ("503", "x")])
def test_outage_arguments_are_checked(status: object, reason: str) -> None:
    with pytest.raises(ValueError, match=r"status|reason"):
        ApnsSandbox().set_outage(status, reason)  # type: ignore[arg-type]
