"""``PushNotification.enqueue``: the library commits to the outbox, the service's workers deliver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from pushrelay import ConfigurationError, NotificationError, Outcome
from pushrelay.config import load_config
from pushrelay.db import Database
from pushrelay.push import AsyncPushNotification, PushNotification
from pushrelay.queue.models import NotificationRow
from pushrelay.registry import DeviceRegistry

from .conftest import BUNDLE, TEAM, Stack

N = {"title": "This is title", "body": "Here is the content of this notification"}
PHONE, PAD, RAW = "a1" * 32, "b2" * 32, "c3" * 32


def test_enqueue_commits_and_the_workers_deliver(stack: Stack) -> None:
    sb = stack.sandbox
    config = load_config(stack.config)
    with DeviceRegistry(stack.db_url) as registry:
        registry.register("myapp", PHONE, email="test@4d.com")
        registry.register("myapp", PAD, email="Test@4D.com")
        push = PushNotification("myapp", config=config, registry=registry)

        # committed when it returns, before any worker runs
        nid = push.enqueue(N, ["test@4d.com", "nobody@4d.com", RAW])
        db = Database(stack.db_url, migrate=False)
        try:
            with db.engine.connect() as conn:
                assert (
                    conn.scalar(select(NotificationRow.state).where(NotificationRow.id == nid)) == "pending"
                )
        finally:
            db.dispose()
        with pytest.raises(TimeoutError, match="is a worker"):
            push.wait(nid, timeout=0.1)

        stack.service.start()
        result = push.wait(nid, timeout=30)
        assert result.success and result.errors == []
        assert result.warnings == [  # the texts of send(): one set of recipient rules
            "No session file was found for the following mail address : nobody@4d.com",
            "The device token c3c3c3…c3c3 is not registered for app myapp; sent anyway",
        ]
        assert sorted(d.token for d in result.deliveries) == sorted([PHONE, PAD, RAW])
        for d in result.deliveries:
            assert d.outcome is Outcome.DELIVERED and d.platform == "ios"
            assert [r.apns_id for r in sb.received(d.token)] == [d.apns_id]
        assert set(result.to_dict()) == {"success", "warnings", "errors", "deliveries"}

        # an idempotency key makes a retried call return the first notification
        assert push.enqueue(N, PHONE, idempotency_key="order-42") == push.enqueue(
            N, PHONE, idempotency_key="order-42"
        )
        # everybody, later; cancelled before it is due
        later = push.enqueue_all(N, send_at=datetime.now(UTC) + timedelta(hours=1))
        status = push.status(later)
        assert status is not None and status.state == "scheduled" and status.recipients["all"] is True
        assert push.cancel(later).state == "cancelled"  # type: ignore[union-attr]
        assert push.wait(later).errors == [f"the notification {later} was cancelled"]
        everyone = push.wait(push.enqueue_all({"title": "all"}), timeout=30)
        assert sorted(d.token for d in everyone.deliveries) == sorted([PHONE, PAD])

        # a failed device is a 4D warning, as with send()
        sb.script(PAD, "bad_token")
        failed = push.wait(push.enqueue({"title": "x"}, PAD), timeout=30)
        assert not failed.success and failed.deliveries[0].outcome is Outcome.TOKEN_DEAD
        assert failed.warnings == [
            "Failed to send iOS push notification to : [Test@4D.com ; b2b2b2…b2b2] (BadDeviceToken)"
        ]

    assert stack.service.stop() == 0


async def test_async_enqueue_and_what_it_refuses(stack: Stack) -> None:
    config = load_config(stack.config)
    with DeviceRegistry(stack.db_url) as registry:
        push = AsyncPushNotification("myapp", config=config, registry=registry)
        nid = await push.enqueue(N, PHONE, expires_at=datetime.now(UTC) + timedelta(minutes=5))
        status = await push.status(nid)
        assert status is not None and status.app == "myapp"
        assert (await push.status("no-such-id")) is None
        with pytest.raises(LookupError):
            await push.wait("no-such-id")

        with pytest.raises(NotificationError, match="No recipient given") as e:
            await push.enqueue(N)
        assert e.value.field == "recipients"
        with pytest.raises(NotificationError, match="Both mails and deviceTokens"):
            await push.enqueue(N, [])
        with pytest.raises(NotificationError, match="time zone") as e:
            await push.enqueue(N, PHONE, send_at=datetime.now())  # a naive time: the mistake tested
        assert e.value.field == "send_at"
        with pytest.raises(NotificationError, match="after now") as e:
            await push.enqueue(N, PHONE, expires_at=datetime.now(UTC) - timedelta(seconds=1))
        assert e.value.field == "expires_at"
        with pytest.raises(NotificationError):
            await push.enqueue({"titel": "typo"}, PHONE)  # checked before it is committed

        # an app given as a 4D auth object with its own key: the workers would not use that key
        auth = {"bundleId": BUNDLE, "teamId": TEAM, "authKey": str(stack.tmp / "AuthKey_OTHERKEY12.p8")}
        with pytest.raises(ConfigurationError, match="enqueue needs an app declared") as e:
            await AsyncPushNotification(auth, config=config, registry=registry).enqueue(N, PHONE)
        assert e.value.field == "app"
