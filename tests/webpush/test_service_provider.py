"""The service's Web Push provider: delivery rows carry only the endpoint, the subscription keys come
from one registry lookup per batch (here a plain function over a dict, counting its calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from pushrelay import Notification, Outcome
from pushrelay.providers.base import Item, WebSubscriptionProvider
from pushrelay.sandbox.webpush import WebPushSandbox
from pushrelay.webpush import VapidKey, WebPushClient

N = Notification(title="hello", body="browser")


async def test_keys_are_looked_up_once_per_batch(wp_sandbox: WebPushSandbox, vapid: VapidKey) -> None:
    subs = [wp_sandbox.new_subscription() for _ in range(3)]
    registry = {s["endpoint"]: (s["keys"]["p256dh"], s["keys"]["auth"]) for s in subs}
    broken = f"{wp_sandbox.url}/wp/broken"
    registry[broken] = ("not-a-key", "nor-this")
    unregistered = wp_sandbox.new_subscription()["endpoint"]
    lookups: list[list[str]] = []

    def lookup(endpoints: list[str]) -> Mapping[str, tuple[str | None, str | None]]:
        lookups.append(endpoints)
        return {e: registry[e] for e in endpoints if e in registry}

    endpoints = [s["endpoint"] for s in subs] + [broken, unregistered]

    async def items() -> AsyncIterator[Item]:
        for i, endpoint in enumerate(endpoints):
            yield (N, endpoint, i, None)

    client = WebPushClient(vapid, allowed_hosts=[wp_sandbox.allowed_host], ca_file=wp_sandbox.ca_file)
    async with WebSubscriptionProvider(client, lookup, batch=2) as provider:
        results = {r.tag: r async for r in provider.send_many(items())}

    assert lookups == [endpoints[0:2], endpoints[2:4], endpoints[4:]]  # one lookup per batch
    assert [results[i].outcome for i in range(3)] == [Outcome.DELIVERED] * 3
    assert results[3].outcome is Outcome.TOKEN_DEAD and "invalid subscription" in (results[3].reason or "")
    assert results[4].outcome is Outcome.FAILED and "not registered" in (results[4].reason or "")
    assert [wp_sandbox.received(s)[0].json["notification"]["title"] for s in subs] == ["hello"] * 3
