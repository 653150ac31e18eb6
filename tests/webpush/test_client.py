"""WebPushClient against the Web Push sandbox over real sockets: encryption round trip, outcomes."""

from __future__ import annotations

import asyncio

import pytest

from pushrelay import Notification, Outcome, PayloadTooLargeError
from pushrelay.sandbox.webpush import WebPushSandbox
from pushrelay.webpush import MAX_PLAINTEXT, VapidKey, WebPushClient, WebSubscription

N = Notification(
    title="Order shipped",
    body="Your order 17 is on its way",
    url="https://shop.example/orders/17",
    image_url="https://shop.example/p.png",
    badge=2,
    collapse_id="order-17",
    priority=10,
    user_info={"orderId": 17, "entity": {"primaryKey": 17}},
)


@pytest.mark.parametrize("http2", [True, False])
async def test_encryption_round_trip(http2: bool, wp_sandbox: WebPushSandbox, vapid: VapidKey) -> None:
    sub = wp_sandbox.new_subscription(application_server_key=vapid.public_key_b64)
    async with WebPushClient(
        vapid, allowed_hosts=[wp_sandbox.allowed_host], ca_file=wp_sandbox.ca_file, http2=http2
    ) as client:
        result = await client.send(N, sub)
    assert result.ok and result.status == 201, result
    assert result.token == sub["endpoint"]
    assert result.provider_id is not None and result.provider_id.startswith(f"{wp_sandbox.url}/m/")
    (got,) = wp_sandbox.received(sub)
    assert got.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert got.json == {
        "web_push": 8030,
        "notification": {
            "title": "Order shipped",
            "body": "Your order 17 is on its way",
            "navigate": "https://shop.example/orders/17",
            "image": "https://shop.example/p.png",
            "tag": "order-17",
        },
        "app_badge": 2,
        "data": {"orderId": 17, "entity": {"primaryKey": 17}},
    }
    assert (got.ttl, got.urgency, got.topic) == (28 * 24 * 3600, "high", "order-17")
    assert got.vapid_claims["sub"] == "mailto:ops@example.com"
    assert got.vapid_claims["aud"] == wp_sandbox.url
    assert got.vapid_public_key == vapid.public_key_b64


async def test_ttl_and_topic_headers(wp_sandbox: WebPushSandbox, webpush: WebPushClient) -> None:
    sub = wp_sandbox.new_subscription()
    n = Notification(body="x", expiration=0, collapse_id="not a valid topic: it has spaces", priority=1)
    assert (await webpush.send(n, sub)).ok
    (got,) = wp_sandbox.received(sub)
    assert got.ttl == 0 and got.urgency == "low"
    assert got.topic is not None and len(got.topic) == 32  # hashed into a valid Topic, stably
    assert "web_push" not in got.json  # no title + url: not a declarative message


@pytest.mark.parametrize(
    ("behaviour", "status", "outcome"),
    [
        ("gone", 410, Outcome.TOKEN_DEAD),
        ("not_found", 404, Outcome.TOKEN_DEAD),
        ("too_large", 413, Outcome.PAYLOAD_REJECTED),
        ("unavailable", 503, Outcome.RETRY),
    ],
)
async def test_outcomes(
    behaviour: str, status: int, outcome: Outcome, wp_sandbox: WebPushSandbox, webpush: WebPushClient
) -> None:
    sub = wp_sandbox.new_subscription()
    wp_sandbox.script(sub, behaviour)
    result = await webpush.send(N, sub)
    assert (result.status, result.outcome) == (status, outcome)
    assert wp_sandbox.received(sub) == []


async def test_unsubscribed_browser_retires_the_subscription(
    wp_sandbox: WebPushSandbox, webpush: WebPushClient
) -> None:
    sub = wp_sandbox.new_subscription()
    assert (await webpush.send(N, sub)).ok
    wp_sandbox.unsubscribe(sub)
    result = await webpush.send(N, WebSubscription.from_dict(sub))
    assert (result.status, result.outcome) == (410, Outcome.TOKEN_DEAD)


async def test_rate_limit_honours_retry_after(wp_sandbox: WebPushSandbox, webpush: WebPushClient) -> None:
    sub = wp_sandbox.new_subscription()
    wp_sandbox.script(sub, "rate_limited", times=1, retry_after=30)
    first = await webpush.send(N, sub)
    assert (first.status, first.outcome, first.retry_after) == (429, Outcome.RETRY, 30.0)
    assert (await webpush.send(N, sub)).ok


async def test_allow_list_refusal_sends_nothing(wp_sandbox: WebPushSandbox, vapid: VapidKey) -> None:
    sub = wp_sandbox.new_subscription()
    async with WebPushClient(vapid, ca_file=wp_sandbox.ca_file) as client:  # the default allow-list
        result = await client.send(N, sub)
    assert result.outcome is Outcome.FAILED and result.status == 0
    assert "not in the Web Push allow-list" in (result.reason or "")
    assert wp_sandbox.stats == {}


async def test_key_mismatch_is_a_configuration_error(
    wp_sandbox: WebPushSandbox, webpush: WebPushClient
) -> None:
    other = VapidKey.generate(subject="mailto:ops@example.com")
    sub = wp_sandbox.new_subscription(application_server_key=other.public_key_b64)
    result = await webpush.send(N, sub)
    assert (result.status, result.outcome) == (403, Outcome.CONFIG_BROKEN)
    assert "applicationServerKey" in (result.reason or "")


async def test_payload_too_large_raises(wp_sandbox: WebPushSandbox, webpush: WebPushClient) -> None:
    sub = wp_sandbox.new_subscription()
    with pytest.raises(PayloadTooLargeError) as info:
        await webpush.send(Notification(body="x" * MAX_PLAINTEXT), sub)
    assert info.value.limit == MAX_PLAINTEXT
    # The largest payload that fits still goes through (one 4096-byte record).
    filler = MAX_PLAINTEXT - len(b'{"notification":{"body":""}}')
    assert (await webpush.send(Notification(body="y" * filler), sub)).ok
    assert len(wp_sandbox.received(sub)[0].payload) == MAX_PLAINTEXT


async def test_malformed_subscription_is_dead(webpush: WebPushClient) -> None:
    result = await webpush.send(
        N, {"endpoint": "https://fcm.googleapis.com/fcm/send/x", "keys": {"auth": "a"}}
    )
    assert result.outcome is Outcome.TOKEN_DEAD and "keys.p256dh" in (result.reason or "")


async def test_send_many(wp_sandbox: WebPushSandbox, webpush: WebPushClient) -> None:
    subs = [wp_sandbox.new_subscription() for _ in range(12)]
    wp_sandbox.script(subs[3], "gone")
    results = {
        r.tag: r async for r in webpush.send_many([(N, s, i) for i, s in enumerate(subs)], concurrency=4)
    }
    assert set(results) == set(range(12))
    assert results[3].outcome is Outcome.TOKEN_DEAD
    assert sum(r.ok for r in results.values()) == 11
    assert len(wp_sandbox.all_received()) == 11


async def test_one_vapid_signature_per_origin(wp_sandbox: WebPushSandbox) -> None:
    vapid = VapidKey.generate(subject="https://shop.example")
    async with WebPushClient(
        vapid, allowed_hosts=[wp_sandbox.allowed_host], ca_file=wp_sandbox.ca_file
    ) as client:
        for _ in range(5):
            assert (await client.send(N, wp_sandbox.new_subscription())).ok
    assert vapid.signed == 1


def test_sandbox_in_a_background_thread(vapid: VapidKey) -> None:
    with WebPushSandbox.running() as sb:
        sub = sb.new_subscription()

        async def send() -> Outcome:
            async with WebPushClient(vapid, allowed_hosts=[sb.allowed_host], ca_file=sb.ca_file) as client:
                return (await client.send(N, sub)).outcome

        assert asyncio.run(send()) is Outcome.DELIVERED
        assert sb.received(sub)[0].json["notification"]["title"] == "Order shipped"
