"""Sending to people through the registry, over real sockets against the APNs sandbox,
on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from tokenshapes import fcm_token

from pushrelay import NotificationError, Outcome, PayloadTooLargeError
from pushrelay.config import Config, config_from_dict
from pushrelay.providers.build import Platforms, builder_for
from pushrelay.push import AsyncPushNotification
from pushrelay.push.outbox import shared_outbox
from pushrelay.registry import DeviceRegistry
from pushrelay.registry.tokens import mask_token
from pushrelay.sandbox import ApnsSandbox

from .conftest import app_settings, tok

NOTE = {"title": "This is title", "body": "Here is the content of this notification"}


def ios_table(config: Config, registry: DeviceRegistry) -> dict[str, object]:
    """A provider table with iOS only (the app's Android and web devices have no provider). Built
    on the registry's database, as the library's own table is: the provider JWT they share is then
    minted once (a second key's JWT within 20 min gets APNs' 429 TooManyProviderTokenUpdates)."""
    builder = builder_for(registry.db.engine)
    return {"ios": Platforms(config.apps, builder, registry.subscription_keys).table["ios"]}


def push_for(
    config: Config, registry: DeviceRegistry, app: object = "myapp", targets: object = None, **kw: object
) -> AsyncPushNotification:
    return AsyncPushNotification(app, targets, config=config, registry=registry, **kw)  # type: ignore[arg-type]


async def test_an_email_with_two_iphones_and_an_ipad(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="test@4d.com", os="iOS", device_model="iPhone 15")
    registry.register("myapp", tok(2), email="Test@4D.com", os="iOS", device_model="iPhone 12")
    registry.register("myapp", tok(3), email="test@4d.com", os="iPadOS", device_model="iPad Pro")
    registry.register("myapp", tok(4), email="someone.else@4d.com")
    seen: list[tuple[int, int]] = []

    result = await push_for(config, registry).send(
        NOTE, "TEST@4d.com", progress=lambda d, t: seen.append((d, t))
    )

    assert result.success and result.warnings == [] and result.errors == []
    assert sorted(d.token for d in result.deliveries) == [tok(1), tok(2), tok(3)]
    assert all(d.outcome is Outcome.DELIVERED and d.status == 200 and d.apns_id for d in result.deliveries)
    for n in (1, 2, 3):
        (received,) = sandbox.received(tok(n))
        assert received.payload["aps"]["alert"] == {"title": NOTE["title"], "body": NOTE["body"]}
    assert sandbox.received(tok(4)) == []
    assert sandbox.stats.connections == 1  # one connection for the whole batch
    assert seen[-1] == (3, 3)
    data = result.to_dict()
    assert set(data) == {"success", "warnings", "errors", "deliveries"}
    assert data["deliveries"][0]["platform"] == "ios" and data["deliveries"][0]["apns_id"]


async def test_mixed_recipients_each_token_once(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="a@x.com")
    registry.register("myapp", tok(2), email="b@x.com")
    raw = tok(99)
    result = await push_for(config, registry).send(
        NOTE, ["a@x.com", tok(1), "<" + tok(2).upper() + ">", raw, "b@x.com", raw, "nobody@x.com"]
    )
    assert result.success
    assert sorted(d.token for d in result.deliveries) == sorted([tok(1), tok(2), raw])
    assert [len(sandbox.received(t)) for t in (tok(1), tok(2), raw)] == [1, 1, 1]
    unregistered = next(d for d in result.deliveries if d.token == raw)
    assert not unregistered.registered and unregistered.email is None
    assert result.warnings == [
        "No session file was found for the following mail address : nobody@x.com",
        "The device token 000000…0063 is not registered for app myapp; sent anyway",
    ]
    assert raw not in " ".join(result.warnings)  # tokens are masked in warnings

    same = await push_for(config, registry).send(NOTE, {"mails": ["a@x.com"], "deviceTokens": [tok(2)]})
    assert same.success and len(same.deliveries) == 2


async def test_an_unknown_email_is_a_warning(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    result = await push_for(config, registry).send(NOTE, "unknown@4d.com")
    assert not result.success and result.errors == [] and result.deliveries == []
    assert result.warnings == ["No session file was found for the following mail address : unknown@4d.com"]


async def test_nobody_is_an_error(sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry) -> None:
    push = push_for(config, registry)
    assert (await push.send(NOTE)).to_dict() == {
        "success": False, "warnings": [], "errors": ["No recipient given"], "deliveries": [],
    }  # fmt: skip
    assert (await push.send(NOTE, {"mails": [], "deviceTokens": []})).errors == [
        "Both mails and deviceTokens collections are empty"
    ]
    assert (await push.send(NOTE, [])).errors == ["Both mails and deviceTokens collections are empty"]
    assert (await push.send_all(NOTE)).errors == ["No recipient found"]
    assert sandbox.stats.requests == 0


async def test_send_all_streams_every_active_device(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    for n in range(1, 8):
        registry.register("myapp", tok(n), email=f"u{n}@x.com")
    registry.register("myapp", fcm_token("android"), platform="android", email="u1@x.com")
    registry.register("other-app", tok(50))
    registry.retire("myapp", tok(7), "410 Unregistered")
    push = push_for(config, registry, providers=ios_table(config, registry))  # no Android provider here

    result = await push.send_all(NOTE)

    assert result.success
    delivered = sorted(d.token for d in result.deliveries if d.ok)
    assert delivered == [tok(n) for n in range(1, 7)]
    (android,) = [d for d in result.deliveries if d.platform == "android"]
    assert android.outcome is Outcome.FAILED and android.reason == "no android provider configured"
    masked = mask_token(fcm_token("android"))
    assert f"Failed to send Android push notification to : [u1@x.com ; {masked}]" in " ".join(result.warnings)
    assert any("1 retired device(s)" in w for w in result.warnings)
    assert sandbox.received(tok(7)) == [] and sandbox.received(tok(50)) == []
    assert result.errors == []  # a platform without provider is per-device, not global

    ios_only = await push_for(config, registry, "ios").send_all(NOTE)
    assert {d.platform for d in ios_only.deliveries} == {"ios"}


async def test_open_fills_user_info_like_4d(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="test@4d.com")
    push = push_for(config, registry)

    assert (await push.open("Employees", NOTE, "test@4d.com")).success
    assert (await push.open(("Employees", 12), NOTE, "test@4d.com")).success
    assert (
        await push.open(
            "Employees", {**NOTE, "userInfo": {"dataSynchro": False}}, "test@4d.com", primary_key="A-7"
        )
    ).success
    assert (await push.open({"dataClass": "Tasks", "entity": {"primaryKey": 3}}, NOTE, "test@4d.com")).success
    payloads = [r.payload for r in sandbox.received(tok(1))]
    assert payloads[0]["dataClass"] == "Employees" and "entity" not in payloads[0]
    assert payloads[1]["entity"] == {"primaryKey": 12} and payloads[1]["dataSynchro"] is True
    assert payloads[2]["entity"] == {"primaryKey": "A-7"} and payloads[2]["dataSynchro"] is False
    assert payloads[3]["dataClass"] == "Tasks" and payloads[3]["dataSynchro"] is True

    assert (await push.open("", NOTE, "test@4d.com")).errors == ["DataClass name cannot be empty"]
    assert (await push.open({"entity": {}}, NOTE, "test@4d.com")).errors == [
        "DataClass is not defined correctly"
    ]
    assert (await push.open(42, NOTE, "test@4d.com")).errors == [
        "First parameter must be a DataClass, an Entity or a Text (dataClass name)"
    ]


async def test_targets_filter(sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry) -> None:
    registry.register("myapp", tok(1), email="test@4d.com")
    registry.register("myapp", fcm_token("1"), platform="android", email="droid@4d.com")
    android_only = await push_for(config, registry, "android").send(NOTE, ["test@4d.com", tok(1)])
    assert android_only.deliveries == [] and sandbox.stats.requests == 0
    assert android_only.warnings == [
        "We couldn't find related deviceTokens to the following mail address : test@4d.com",
        "The device token 000000…0001 is a ios device, not among the targets: android",
    ]
    ios_only = await push_for(config, registry, targets=["ios"]).send(NOTE, ["test@4d.com", "droid@4d.com"])
    assert [d.token for d in ios_only.deliveries] == [tok(1)] and ios_only.success
    assert ios_only.warnings == [
        "We couldn't find related deviceTokens to the following mail address : droid@4d.com"
    ]


async def test_a_410_retires_the_token_until_it_registers_again(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="test@4d.com")
    registry.register("myapp", tok(2), email="test@4d.com")
    sandbox.script(tok(2), "unregistered", times=1, timestamp_ms=int(time.time() * 1000) + 60_000)
    push = push_for(config, registry)

    first = await push.send(NOTE, "test@4d.com")
    assert first.success
    dead = next(d for d in first.deliveries if d.token == tok(2))
    assert (dead.outcome, dead.status, dead.reason, dead.retired) == (
        Outcome.TOKEN_DEAD,
        410,
        "Unregistered",
        True,
    )
    device = registry.get("myapp", tok(2))
    assert device is not None and not device.active and device.retired_reason == "410 Unregistered"

    second = await push.send(NOTE, "test@4d.com")
    assert [d.token for d in second.deliveries] == [tok(1)]
    assert any(w.startswith("Skipped retired device [test@4d.com ; 000000…0002]") for w in second.warnings)

    again = registry.register("myapp", tok(2), email="test@4d.com")
    assert again.reactivated
    third = await push.send(NOTE, "test@4d.com")
    assert sorted(d.token for d in third.deliveries if d.ok) == [tok(1), tok(2)]


async def test_a_410_older_than_the_last_registration_keeps_the_device(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="test@4d.com")
    sandbox.script(tok(1), "unregistered", times=1, timestamp_ms=int(time.time() * 1000) - 3_600_000)
    result = await push_for(config, registry).send(NOTE, "test@4d.com")
    (delivery,) = result.deliveries
    assert delivery.outcome is Outcome.TOKEN_DEAD and not delivery.retired
    device = registry.get("myapp", tok(1))
    assert device is not None and device.active


async def test_bad_device_token_retires_too(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="test@4d.com")
    sandbox.script(tok(1), "bad_token")
    result = await push_for(config, registry).send(NOTE, "test@4d.com")
    assert not result.success and result.deliveries[0].retired
    assert result.warnings == [
        "Failed to send iOS push notification to : [test@4d.com ; 000000…0001] (BadDeviceToken)"
    ]


async def test_registered_tokens_only(
    sandbox: ApnsSandbox, key_file: Path, config: Config, registry: DeviceRegistry
) -> None:
    strict = config_from_dict(
        {"apps": {"myapp": app_settings(sandbox, key_file, registered_tokens_only=True)}}
    )
    result = await push_for(strict, registry).send(NOTE, tok(5))
    assert result.deliveries == [] and sandbox.stats.requests == 0
    (warning,) = result.warnings
    assert warning == (
        "The device token 000000…0005 is not registered for app myapp; "
        "not sent (registered_tokens_only is set)"
    )


async def test_development_devices_and_connection_reuse_across_calls(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="dev@4d.com", environment="development")
    registry.register("myapp", tok(2), email="dev@4d.com")
    async with push_for(config, registry) as push:
        first = await push.send(NOTE, "dev@4d.com")
        second = await push.send(NOTE, "dev@4d.com")
    assert first.success and second.success
    envs = {d.token: d.environment for d in first.deliveries}
    assert envs == {tok(1): "development", tok(2): "production"}
    assert sandbox.stats.connections == 2  # one per environment, kept across both calls


async def test_web_devices_without_provider(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    p256dh = base64.urlsafe_b64encode(b"\x04" + b"k" * 64).decode().rstrip("=")
    auth = base64.urlsafe_b64encode(b"s" * 16).decode().rstrip("=")
    endpoint = "https://push.example.net/sub/123"
    registry.register("myapp", endpoint, platform="web", email="w@x.com", web_p256dh=p256dh, web_auth=auth)
    result = await push_for(config, registry, providers=ios_table(config, registry)).send(NOTE, "w@x.com")
    (d,) = result.deliveries
    assert d.outcome is Outcome.FAILED and d.reason == "no web provider configured" and not result.success


async def test_bad_notifications_raise_before_anything_is_sent(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="test@4d.com")
    push = push_for(config, registry)
    with pytest.raises(NotificationError, match="title") as info:
        await push.send({"title": 5}, "test@4d.com")
    assert info.value.field == "title"
    with pytest.raises(PayloadTooLargeError):
        await push.send({"body": "x" * 5000}, "test@4d.com")
    with pytest.raises(NotificationError, match="recipients"):
        await push.send(NOTE, 12345)
    assert sandbox.stats.requests == 0


async def test_missing_credentials_fail_the_ios_devices_not_the_call(
    sandbox: ApnsSandbox, tmp_path: Path, database_url: str, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="test@4d.com")
    broken = config_from_dict(
        {"apps": {"myapp": app_settings(sandbox, tmp_path / "nowhere" / "AuthKey_ABC123DEFG.p8")}}
    )
    result = await push_for(broken, registry).send(NOTE, "test@4d.com")
    assert not result.success and result.deliveries[0].outcome is Outcome.FAILED
    assert len(result.errors) == 1 and result.errors[0].startswith("app myapp: APNs key")
    assert "does not exist" in result.errors[0]


async def test_android_devices_of_an_app_without_fcm_settings(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="test@4d.com")
    registry.register("myapp", fcm_token("android"), platform="android", email="test@4d.com")
    result = await push_for(config, registry).send(NOTE, "test@4d.com")  # the default provider table
    assert result.success and result.errors == []
    (android,) = [d for d in result.deliveries if d.platform == "android"]
    assert android.outcome is Outcome.FAILED
    assert android.reason is not None and android.reason.startswith("no android provider configured")


async def test_a_paused_app_is_reported_not_waited_for(
    sandbox: ApnsSandbox, config: Config, registry: DeviceRegistry
) -> None:
    registry.register("myapp", tok(1), email="test@4d.com")
    shared_outbox(registry).pause(
        "myapp", "403 InvalidProviderToken", platform="ios", by="a worker", fingerprint=None
    )
    result = await push_for(config, registry).send(NOTE, "test@4d.com", timeout=600)
    assert not result.success and result.deliveries == [] and sandbox.stats.requests == 0
    assert result.errors == [
        "app myapp: the app is paused: its deliveries wait for 'pushrelay apps resume myapp'"
    ]
    status = shared_outbox(registry).status(result.notification_id or "")
    assert status is not None and status.counts.get("paused") == 1  # parked for the service, not lost
