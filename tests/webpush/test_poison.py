"""One notification that cannot be rendered fails its own item, at once; the batch goes on."""

from __future__ import annotations

from pushrelay import Notification, Outcome
from pushrelay.sandbox.webpush import WebPushSandbox
from pushrelay.webpush import MAX_PLAINTEXT, WebPushClient


async def test_a_payload_too_large_fails_its_item_alone(
    wp_sandbox: WebPushSandbox, webpush: WebPushClient
) -> None:
    subs = [wp_sandbox.new_subscription() for _ in range(6)]
    ok, huge = Notification(title="t", body="b"), Notification(body="x" * MAX_PLAINTEXT)
    results = {
        r.tag: r async for r in webpush.send_many((huge if i == 4 else ok, s, i) for i, s in enumerate(subs))
    }
    assert set(results) == set(range(6))
    bad = results[4]
    assert (bad.outcome, bad.status) == (Outcome.PAYLOAD_REJECTED, 0)
    assert bad.token == subs[4]["endpoint"] and "field: payload" in (bad.reason or "")
    assert all(results[i].ok for i in range(6) if i != 4)
    assert wp_sandbox.received(subs[4]) == [] and all(
        wp_sandbox.received(s) for i, s in enumerate(subs) if i != 4
    )
