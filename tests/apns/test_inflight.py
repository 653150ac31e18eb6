"""The adaptive in-flight limit over real TLS + HTTP/2 sockets against the sandbox: a slow APNs gets
more than the old fixed 2,000 in flight when the connections carry them, and what the client holds
stays bounded by the streams (plus a small queue) whatever the size of the batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pushrelay import ConfigurationError, Notification
from pushrelay.apns import ApnsClient, TokenAuth
from pushrelay.config import config_from_dict
from pushrelay.config.model import AppConfig
from pushrelay.http2 import AdaptiveLimit
from pushrelay.providers.build import ProviderBuilder
from pushrelay.sandbox import ApnsSandbox

from .conftest import BUNDLE, TEAM

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
    assert limiter.ceiling == 4000  # 3 x 1,000 streams + 1,000 ready to refill them from
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
        # streams and as many ready are the start, and here the ceiling too (one connection)
        assert (client.in_flight_limit, limit.ceiling) == (2000, 2000)
        results = [r async for r in client.send_many((NOTE, TOKEN, i) for i in range(3000))]
        assert all(r.ok for r in results)
        assert limit.rounds >= 1 and limit.baseline is not None


async def test_a_fixed_cap_from_the_configuration_and_the_limit_as_a_gauge(
    sandbox: ApnsSandbox, key_file: Path
) -> None:
    def app(**apns: object) -> AppConfig:
        table = {
            "team_id": TEAM,
            "key_file": str(key_file),
            "endpoint": sandbox.url,
            "ca_file": str(sandbox.ca_file),
        }
        config = config_from_dict({"apps": {"a": {"bundle_id": BUNDLE, "apns": {**table, **apns}}}})
        return config.apps["a"]

    builder = ProviderBuilder()
    fixed = builder.apns_client(app(max_in_flight=500))
    assert fixed.limiter is None and fixed.in_flight_limit == 500
    adaptive = builder.apns_client(app(), "development")
    assert adaptive.limiter is not None

    def gauges() -> dict[tuple[str, ...], float]:
        return {
            (m.name, *s.labels.values()): s.value
            for m in builder.metrics()
            if m.name.startswith("pushrelay_apns_in_flight")
            for s in m.samples
        }

    assert gauges() == {}  # clients not opened yet: nothing to show
    async with fixed, adaptive:
        assert (await fixed.send(NOTE, TOKEN)).ok and (await adaptive.send(NOTE, TOKEN)).ok
        shown = gauges()
    assert shown == {
        ("pushrelay_apns_in_flight_limit", "a", "development"): 2000,  # a connection's streams, x2
        ("pushrelay_apns_in_flight_limit", "a", "production"): 500,
        ("pushrelay_apns_in_flight", "a", "development"): 0,
        ("pushrelay_apns_in_flight", "a", "production"): 0,
    }
    assert gauges() == {}  # closed


@pytest.mark.parametrize("value", [0, -5, "many", 2.5])
def test_a_bad_cap_in_the_configuration_names_the_key(value: object) -> None:
    apns = {"team_id": TEAM, "key_file": "k.p8", "max_in_flight": value}
    with pytest.raises(ConfigurationError, match=r"apps\.a\.apns\.max_in_flight"):
        config_from_dict({"apps": {"a": {"bundle_id": BUNDLE, "apns": apns}}})


@pytest.mark.parametrize("value", [0, True, "2000"])
def test_a_bad_cap_for_the_client_is_refused(value: object) -> None:
    auth = TokenAuth(ec.generate_private_key(ec.SECP256R1()), key_id="ABC123DEFG", team_id=TEAM)
    with pytest.raises(ConfigurationError, match="max_in_flight"):
        ApnsClient(auth, topic=BUNDLE, max_in_flight=value)  # type: ignore[arg-type]
