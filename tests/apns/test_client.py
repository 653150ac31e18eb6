"""The APNs client over real TLS + HTTP/2 sockets against the sandbox: outcomes, one request per
delivery (retrying is the outbox's job), resends only of what APNs never processed, no loss."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pushrelay import Notification, NotificationError, Outcome
from pushrelay.apns import ApnsClient, CertificateAuth, SyncApnsClient, TokenAuth
from pushrelay.sandbox import ApnsSandbox

from .conftest import BUNDLE, TEAM, FakeClock, issue_devices

NOTE = Notification(title="This is title", body="Here is the content of this notification")
MakeClient = Callable[..., ApnsClient]


def tok(i: int) -> str:
    return f"{i:064x}"


async def test_delivers_and_the_device_receives_the_4d_payload(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    async with make_client() as client:
        result = await client.send(NOTE, tok(1))
    assert (result.outcome, result.status, result.attempts) == (Outcome.DELIVERED, 200, 1)
    (got,) = sandbox.received(tok(1))
    assert got.apns_id == result.provider_id
    assert got.payload == {
        "aps": {"alert": {"title": "This is title", "body": "Here is the content of this notification"}}
    }
    assert (got.topic, got.push_type, got.priority) == (BUNDLE, "alert", 10)


async def test_apns_id_given_by_the_caller_is_used(sandbox: ApnsSandbox, make_client: MakeClient) -> None:
    apns_id = "0f3c2a4e-8b1d-4c7a-9e2f-1a2b3c4d5e6f"
    async with make_client() as client:
        result = await client.send(NOTE, tok(2), apns_id=apns_id)
    assert result.provider_id == apns_id
    assert sandbox.received(tok(2))[0].apns_id == apns_id


@pytest.mark.parametrize(
    ("behaviour", "outcome", "status", "reason"),
    [
        ("unregistered", Outcome.TOKEN_DEAD, 410, "Unregistered"),
        ("expired_token", Outcome.TOKEN_DEAD, 410, "ExpiredToken"),
        ("bad_token", Outcome.TOKEN_DEAD, 400, "BadDeviceToken"),
        ("not_for_topic", Outcome.TOKEN_DEAD, 400, "DeviceTokenNotForTopic"),
        ("rate_limited", Outcome.RETRY, 429, "TooManyRequests"),
        ("unavailable", Outcome.RETRY, 503, "ServiceUnavailable"),
        ("internal", Outcome.RETRY, 500, "InternalServerError"),
        ("shutdown", Outcome.RETRY, 503, "Shutdown"),
    ],
)
async def test_every_device_error_class(
    sandbox: ApnsSandbox, make_client: MakeClient, behaviour: str, outcome: Outcome, status: int, reason: str
) -> None:
    sandbox.script(tok(3), behaviour)
    async with make_client() as client:
        result = await client.send(NOTE, tok(3))
        ok = await client.send(NOTE, tok(4))  # other devices are unaffected
    assert (result.outcome, result.status, result.reason) == (outcome, status, reason)
    assert result.attempts == 1
    assert sandbox.stats.requests == 2  # one request per delivery, transient answers included
    assert ok.ok and sandbox.received(tok(3)) == []
    if behaviour == "unregistered":
        assert isinstance(result.token_invalid_since, int)


async def test_transient_failure_is_returned_not_retried_and_the_caller_resends_the_same_apns_id(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    sandbox.script(tok(5), "unavailable", times=2)
    apns_id = "0f3c2a4e-8b1d-4c7a-9e2f-1a2b3c4d5e70"
    async with make_client() as client:
        answers = [await client.send(NOTE, tok(5), apns_id=apns_id) for _ in range(3)]
        assert client.stats.sent == 3
    assert [(r.outcome, r.status, r.reason, r.attempts) for r in answers] == [
        (Outcome.RETRY, 503, "ServiceUnavailable", 1),
        (Outcome.RETRY, 503, "ServiceUnavailable", 1),
        (Outcome.DELIVERED, 200, None, 1),
    ]
    assert sandbox.stats.requests == 3
    (got,) = sandbox.received(tok(5))
    assert got.apns_id == apns_id == answers[-1].provider_id


async def test_an_apns_that_always_fails_gets_one_request_per_send(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    sandbox.set_outage(500, "InternalServerError")
    async with make_client() as client:
        results = [r async for r in client.send_many((NOTE, tok(i), i) for i in range(40))]
    assert {(r.outcome, r.status, r.reason, r.attempts) for r in results} == {
        (Outcome.RETRY, 500, "InternalServerError", 1)
    }
    assert sandbox.stats.requests == 40 and client.pool.stats.resent_unprocessed == 0


async def test_configuration_error_stops_the_app_without_sending_more(
    sandbox: ApnsSandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    other = sandbox.create_key("OTHERTEAM1", "KEY0000001", tmp_path / "o")  # may not push to BUNDLE
    async with make_client(auth=TokenAuth.from_file(other, team_id="OTHERTEAM1")) as client:
        first = await client.send(NOTE, tok(6))
        requests = sandbox.stats.requests
        results = [r async for r in client.send_many((NOTE, tok(i), i) for i in range(10, 60))]
        assert client.broken == "400 TopicDisallowed"
    assert (first.outcome, first.reason) == (Outcome.CONFIG_BROKEN, "TopicDisallowed")
    assert {r.outcome for r in results} == {Outcome.CONFIG_BROKEN}
    assert sandbox.stats.requests == requests  # nothing more reached APNs
    assert sandbox.stats.stream_limit_violations == 0


async def test_unknown_key_is_a_configuration_error_and_the_stream_limit_stays_one(
    sandbox: ApnsSandbox, make_client: MakeClient, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    rogue = TokenAuth(ec.generate_private_key(ec.SECP256R1()), key_id="ROGUE00001", team_id=TEAM)
    async with make_client(auth=rogue) as client:
        results = [r async for r in client.send_many((NOTE, tok(i), i) for i in range(100))]
    assert Counter(r.reason for r in results)["InvalidProviderToken"] >= 1
    assert {r.outcome for r in results} == {Outcome.CONFIG_BROKEN}
    assert sandbox.stats.max_streams_in_use == 1 and sandbox.stats.stream_limit_violations == 0


async def test_invalid_token_and_notification_are_refused_locally(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    async with make_client() as client:
        result = await client.send(NOTE, "not-a-token")
        with pytest.raises(NotificationError) as exc:
            await client.send(Notification(body="x" * 5000), tok(7))
    assert (result.outcome, result.status) == (Outcome.TOKEN_DEAD, 0)
    assert exc.value.field == "payload"
    assert sandbox.stats.requests == 0


async def test_jwt_is_refreshed_after_45_minutes_and_shared(
    tmp_path: Path, key_file: Path, clock: FakeClock
) -> None:
    async with ApnsSandbox(directory=tmp_path / "sb", clock=clock) as sb:
        sb.add_topic(BUNDLE, TEAM)
        issue_devices(sb)
        sb.create_key(TEAM, "KEYCLOCK01", tmp_path)
        auth = TokenAuth.from_file(tmp_path / "AuthKey_KEYCLOCK01.p8", team_id=TEAM, clock=clock)
        async with ApnsClient(
            auth, topic=BUNDLE, endpoint=sb.url, ca_file=sb.ca_file, connections=2
        ) as client:
            for step in range(12):  # 12 x 10 minutes: two hours of sending
                results = [r async for r in client.send_many((NOTE, tok(i), i) for i in range(50))]
                assert all(r.ok for r in results), (step, Counter(r.reason for r in results))
                clock.advance(600)
        assert auth.mints == 3  # at 0, 50 and 100 minutes: never sooner than 20, never older than 60
        assert sb.stats.rejected["TooManyProviderTokenUpdates"] == 0


async def test_expired_provider_token_mints_once_drops_the_connection_and_the_next_attempt_works(
    tmp_path: Path, clock: FakeClock
) -> None:
    sandbox_clock = FakeClock(clock.now)
    async with ApnsSandbox(directory=tmp_path / "sb", clock=sandbox_clock) as sb:
        sb.add_topic(BUNDLE, TEAM)
        issue_devices(sb)
        sb.create_key(TEAM, "KEYEXPIRE1", tmp_path)
        auth = TokenAuth.from_file(tmp_path / "AuthKey_KEYEXPIRE1.p8", team_id=TEAM, clock=clock)
        async with ApnsClient(auth, topic=BUNDLE, endpoint=sb.url, ca_file=sb.ca_file) as client:
            assert (await client.send(NOTE, tok(1))).ok
            clock.advance(30 * 60)  # our token is 30 minutes old: no scheduled refresh yet
            sandbox_clock.advance(61 * 60)  # ...but APNs thinks it is 61 minutes old
            refused = await client.send(NOTE, tok(2))
            assert client.stats.jwt_rejections == 1 and auth.mints == 2  # minted at once...
            assert (refused.outcome, refused.status, refused.reason) == (
                Outcome.RETRY,
                403,
                "ExpiredProviderToken",
            )
            assert sb.stats.requests == 2  # ...but not resent behind the caller's back
            result = await client.send(NOTE, tok(2))  # the caller's next attempt
            assert client.pool.stats.connections_opened == 2  # the old connection was dropped
        assert (result.outcome, result.attempts) == (Outcome.DELIVERED, 1)
        assert auth.mints == 2
        assert len(sb.received(tok(2))) == 1 and sb.stats.requests == 3


async def test_goaway_mid_batch_loses_nothing(sandbox: ApnsSandbox, make_client: MakeClient) -> None:
    n = 3000
    sandbox.script(tok(1500), "goaway", times=1)
    async with make_client() as client:
        results = [r async for r in client.send_many((NOTE, tok(i), i) for i in range(n))]
        assert client.pool.stats.goaways == 1 and client.pool.stats.connections_opened == 2
        resent = client.pool.stats.resent_unprocessed
        sent = client.stats.sent
    assert len(results) == n and all(r.ok for r in results)
    assert {r.attempts for r in results} == {1}  # a resend of an unprocessed stream is no attempt
    assert sorted(r.tag for r in results) == list(range(n))
    got = Counter(r.token for r in sandbox.all_received())
    assert len(got) == n and max(got.values()) == 1  # unprocessed streams were resent once, not duplicated
    assert sandbox.stats.goaways_sent == 1
    # the GOAWAY'd stream and those above it were resent, counted apart from the attempts
    assert resent >= 1 and sent == n
    # the sandbox counted the request it answered with GOAWAY (and any it read above it) once more
    assert n < sandbox.stats.requests <= n + resent


async def test_refused_stream_is_resent_and_counted_apart(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    sandbox.script(tok(400), "reset", times=1)
    async with make_client() as client:
        results = [r async for r in client.send_many((NOTE, tok(i), i) for i in range(1000))]
        assert client.pool.stats.resent_unprocessed == 1 and client.stats.sent == 1000
    assert len(results) == 1000 and all(r.ok and r.attempts == 1 for r in results)
    assert sandbox.stats.resets_sent == 1
    assert sandbox.stats.requests == 1001  # 1000 attempts + 1 resend of the refused stream
    got = Counter(r.token for r in sandbox.all_received())
    assert len(got) == 1000 and max(got.values()) == 1


async def test_a_dropped_connection_returns_its_requests_as_retry_never_resends_them(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    n = 1000
    sandbox.script(tok(400), "drop", times=1)
    async with make_client() as client:
        results = [r async for r in client.send_many((NOTE, tok(i), i) for i in range(n))]
        assert client.pool.stats.resent_unprocessed == 0
    assert len(results) == n and sorted(r.tag for r in results) == list(range(n))
    lost = [r for r in results if not r.ok]
    assert tok(400) in {r.token for r in lost}  # at least the request the server dropped on
    assert {(r.outcome, r.status) for r in lost} == {(Outcome.RETRY, 0)}
    assert all(r.reason is not None and r.reason.startswith("ConnectionLostError") for r in lost)
    # nothing was silently sent twice: the server may have processed what was in flight
    got = Counter(r.token for r in sandbox.all_received())
    assert max(got.values()) == 1 and {r.token for r in results if r.ok} <= set(got)


async def test_burst_of_20000_on_one_connection(sandbox: ApnsSandbox, make_client: MakeClient) -> None:
    n = 20_000
    async with make_client(connections=1) as client:
        outcomes = Counter(
            [r.outcome async for r in client.send_many((NOTE, tok(i % 500), i) for i in range(n))]
        )
        assert client.pool.stats.connections_opened == 1
    assert outcomes == Counter({Outcome.DELIVERED: n})
    assert len(sandbox.all_received()) == n
    stats = sandbox.stats
    assert stats.stream_limit_violations == 0
    assert 1 < stats.max_streams_in_use <= 1000  # the limit was raised after the first valid token


async def test_request_deadline(sandbox: ApnsSandbox, make_client: MakeClient) -> None:
    sandbox.script(tok(8), "delay", seconds=2.0)
    async with make_client(request_timeout=0.3) as client:
        slow = await client.send(NOTE, tok(8))
        fast = await client.send(NOTE, tok(9))
    assert (slow.outcome, slow.status) == (Outcome.RETRY, 0)
    assert slow.reason is not None and slow.reason.startswith("RequestTimeout")
    assert fast.ok


async def test_unreachable_endpoint_gives_retry_outcomes(key_file: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    auth = TokenAuth.from_file(key_file, team_id=TEAM)
    async with ApnsClient(auth, topic=BUNDLE, endpoint=f"https://127.0.0.1:{port}") as client:
        client.pool.backoff_base = 0.01
        result = await client.send(NOTE, tok(1))
    assert (result.outcome, result.status) == (Outcome.RETRY, 0)
    assert result.reason is not None and "ConnectError" in result.reason


async def test_untrusted_certificate_is_refused(sandbox: ApnsSandbox, key_file: Path) -> None:
    auth = TokenAuth.from_file(key_file, team_id=TEAM)
    async with ApnsClient(auth, topic=BUNDLE, endpoint=sandbox.url) as client:  # no ca_file
        client.pool.backoff_base = 0.01
        result = await client.send(NOTE, tok(1))
    assert result.outcome is Outcome.RETRY
    assert result.reason is not None and "certificate verification failed" in result.reason
    assert sandbox.stats.requests == 0


async def test_certificate_auth(sandbox: ApnsSandbox, tmp_path: Path) -> None:
    p12, _ = sandbox.issue_client_certificate(BUNDLE, tmp_path, passphrase="s3cret")
    auth = CertificateAuth.from_p12(p12, "s3cret")
    async with ApnsClient(auth, topic=BUNDLE, endpoint=sandbox.url, ca_file=sandbox.ca_file) as client:
        result = await client.send(NOTE, tok(11))
    assert result.ok
    assert "authorization" not in sandbox.received(tok(11))[0].headers


async def test_async_iterable_input_and_many_notifications(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    async def items():  # type: ignore[no-untyped-def]
        for i in range(200):
            yield Notification(title=f"n{i}", badge=i), tok(i), i

    async with make_client() as client:
        results = {r.tag: r async for r in client.send_many(items(), max_in_flight=16)}
    assert len(results) == 200 and all(r.ok for r in results.values())
    assert sandbox.received(tok(42))[0].payload["aps"]["badge"] == 42


def test_sync_client(tmp_path: Path) -> None:
    with ApnsSandbox.running(directory=tmp_path / "sb") as sb:
        sb.add_topic(BUNDLE, TEAM)
        issue_devices(sb)
        key = sb.create_key(TEAM, "SYNCKEY001", tmp_path)
        auth = TokenAuth.from_file(key, team_id=TEAM)
        with SyncApnsClient(auth, topic=BUNDLE, endpoint=sb.url, ca_file=sb.ca_file) as client:
            assert client.send(NOTE, tok(1)).ok
            results = list(client.send_many((NOTE, tok(i), i) for i in range(100)))
        assert len(results) == 100 and all(r.ok for r in results)
        assert json.loads(json.dumps(results[0].to_dict()))["outcome"] == "delivered"
        assert len(sb.all_received()) == 101


async def test_closing_with_work_in_flight_reports_every_item(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    sandbox.script(tok(1), "delay", seconds=5.0)
    client = make_client()
    got: list[Outcome] = []
    async with client:
        client.start(NOTE, tok(1), None, None, lambda r: got.append(r.outcome))
        await asyncio.sleep(0.2)
        await client.pool.aclose(grace=0.1)
    assert got == [Outcome.RETRY]


async def test_a_payload_too_large_fails_its_item_alone_and_the_batch_goes_on(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    huge = Notification(body="x" * 5000)  # over APNs' 4 KB once rendered
    items = [(huge if i == 3 else NOTE, tok(i), i) for i in range(10)]
    async with make_client() as client:
        results = {r.tag: r async for r in client.send_many(items)}
    assert set(results) == set(range(10))
    bad = results[3]
    assert (bad.outcome, bad.status, bad.attempts) == (Outcome.PAYLOAD_REJECTED, 0, 0)
    assert bad.reason is not None and "field: payload" in bad.reason and bad.token == tok(3)
    assert all(results[i].ok for i in range(10) if i != 3)
    assert sandbox.stats.requests == 9  # never sent, so never retried by the provider either


async def test_a_server_that_always_refuses_the_stream_gets_a_bounded_number_of_resends(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    sandbox.script(tok(12), "reset")  # REFUSED_STREAM, every time
    async with make_client() as client:
        result = await client.send(NOTE, tok(12))
        resent, bound = client.pool.stats.resent_unprocessed, client.pool.max_resends
    assert (result.outcome, result.status, result.attempts) == (Outcome.RETRY, 0, 1)
    assert result.reason is not None and "REFUSED_STREAM" in result.reason
    assert resent == bound == 3 and sandbox.stats.requests == 1 + bound


async def test_headers_and_bodies_encoded_once_per_notification_stay_each_devices_own(
    sandbox: ApnsSandbox, make_client: MakeClient
) -> None:
    """The client encodes a notification's body and headers once and reuses them for every device:
    interleaved notifications (two languages of one send, a collapse id, an expiration, a
    background push) each reach their devices with their own payload and headers, each device with
    its own apns-id; and a notification made after another one was dropped (whose id() may be
    reused) is never sent with the dropped one's payload."""
    base = Notification(title="Hello", body="b", localizations={"fr": {"title": "Bonjour"}})
    english, french = base.localized("en"), base.localized("fr")
    collapsing = Notification(title="c", collapse_id="score", expiration=1_900_000_000)
    silent = Notification(content_available=True, custom={"k": "v"})
    notes = [english, french, collapsing, silent]
    items = [(notes[i % 4], tok(i), i) for i in range(40)]
    async with make_client() as client:
        results = [r async for r in client.send_many(items, max_in_flight=7)]
        assert len(results) == 40 and all(r.ok for r in results)
        for i in range(40):
            (got,) = sandbox.received(tok(i))
            note = notes[i % 4]
            if note is silent:
                assert got.payload == {"aps": {"content-available": 1}, "k": "v"}
                assert (got.push_type, got.priority) == ("background", 5)
            else:
                assert got.payload["aps"]["alert"]["title"] == {0: "Hello", 1: "Bonjour", 2: "c"}[i % 4]
                assert (got.push_type, got.priority) == ("alert", 10)
            assert (got.collapse_id, got.expiration) == (
                ("score", 1_900_000_000) if note is collapsing else (None, None)
            )
            assert got.topic == BUNDLE
        assert len({r.provider_id for r in results}) == 40
        sandbox.clear_received()
        for n in range(30):  # new objects, the previous ones dropped: ids get reused
            note = Notification(title=f"t{n}", badge=n)
            result = await client.send(note, tok(100 + n))
            del note
            assert result.ok
            (got,) = sandbox.received(tok(100 + n))
            assert (got.payload["aps"]["alert"]["title"], got.payload["aps"]["badge"]) == (f"t{n}", n)
