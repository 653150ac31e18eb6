"""One notification that cannot be rendered fails its own item, at once; the batch goes on."""

from __future__ import annotations

from tokenshapes import fcm_token

from pushrelay import Notification, Outcome
from pushrelay.fcm import FcmClient
from pushrelay.sandbox.fcm import FcmSandbox


async def test_a_payload_too_large_fails_its_item_alone(fcm_sandbox: FcmSandbox, fcm: FcmClient) -> None:
    ok, huge = Notification(title="t", body="b"), Notification(body="x" * 5000)  # FCM: 4 KB
    items = [(huge if i == 2 else ok, fcm_token(f"tok-{i}"), i) for i in range(8)]
    results = {r.tag: r async for r in fcm.send_many(items)}
    assert set(results) == set(range(8))
    assert (results[2].outcome, results[2].status) == (Outcome.PAYLOAD_REJECTED, 0)
    assert all(results[i].ok for i in range(8) if i != 2)
    assert len(fcm_sandbox.all_received()) == 7
