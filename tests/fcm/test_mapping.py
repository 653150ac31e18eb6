"""The 4D and standard FCM mappings, as pure functions and as FCM (the sandbox) receives them."""

from __future__ import annotations

import json

import pytest
from tokenshapes import fcm_token

from pushrelay import Notification, NotificationError, PayloadTooLargeError
from pushrelay.fcm import AndroidOptions, FcmClient, ServiceAccount, render
from pushrelay.fcm.mapping import MAX_MESSAGE_BYTES, message_size
from pushrelay.sandbox.fcm import FcmSandbox

NOW = 1_700_000_000.0

FOURD = Notification.from_dict(
    {
        "title": "This is title",
        "body": "Here is the content of this notification",
        "sound": "default",
        "color": "#ff0000",
        "imageUrl": "https://example.com/a.png",
        "userInfo": {"dataClass": "Employee", "entity": {"primaryKey": 12}, "dataSynchro": True, "n": 3},
    }
)


def test_4d_mapping_puts_everything_in_data_as_strings() -> None:
    message = render(FOURD, mapping="4d", now=NOW)
    assert message["data"] == {
        "title": "This is title",
        "body": "Here is the content of this notification",
        "sound": "default",
        "color": "#ff0000",
        "imageUrl": "https://example.com/a.png",
        "android_channel_id": "qmobile_channel_id",
        "dataClass": "Employee",
        "entity": '{"primaryKey":12}',
        "dataSynchro": "true",
        "n": "3",
    }
    assert "notification" not in message  # the 4D app builds the notification itself
    assert message["android"] == {"priority": "high"}


def test_4d_mapping_delivery_options() -> None:
    n = FOURD.replace(priority=5, collapse_id="news", expiration=int(NOW) + 90)
    assert render(n, mapping="4d", now=NOW)["android"] == {
        "priority": "normal",
        "collapse_key": "news",
        "ttl": "90s",
    }
    assert render(n.replace(expiration=0), mapping="4d", now=NOW)["android"]["ttl"] == "0s"


def test_standard_mapping() -> None:
    n = Notification(
        title="Hi",
        body="there",
        image_url="https://example.com/i.png",
        sound="chime.wav",
        badge=4,
        color="#00ff00",
        category="OPEN_ORDER",
        collapse_id="orders",
        url="https://example.com/o/1",
        priority=10,
        user_info={"orderId": 17, "tags": ["a"]},
    )
    message = render(
        n, mapping="standard", options=AndroidOptions(channel_id="orders", icon="ic_stat"), now=NOW
    )
    assert message == {
        "notification": {"title": "Hi", "body": "there", "image": "https://example.com/i.png"},
        "data": {"url": "https://example.com/o/1", "orderId": "17", "tags": '["a"]'},
        "android": {
            "priority": "high",
            "collapse_key": "orders",
            "notification": {
                "channel_id": "orders",
                "icon": "ic_stat",
                "color": "#00ff00",
                "sound": "chime.wav",
                "tag": "orders",
                "click_action": "OPEN_ORDER",
                "notification_count": 4,
            },
        },
    }


def test_standard_mapping_without_visible_content_is_a_data_message() -> None:
    message = render(Notification(user_info={"sync": True}), mapping="standard", now=NOW)
    assert message == {"data": {"sync": "true"}}


def test_clashing_and_reserved_keys_are_refused() -> None:
    with pytest.raises(NotificationError) as info:
        render(Notification(title="a", user_info={"title": "b"}), mapping="4d")
    assert info.value.field == "user_info.title"
    with pytest.raises(NotificationError) as info:
        render(Notification(title="a", user_info={"google.x": "b"}), mapping="standard")
    assert info.value.field == "data.google.x"
    with pytest.raises(NotificationError):
        render(Notification(title="a", user_info={"from": "me"}), mapping="4d")


def test_size_limit() -> None:
    big = Notification(title="x", user_info={"blob": "y" * MAX_MESSAGE_BYTES})
    with pytest.raises(PayloadTooLargeError) as info:
        render(big, mapping="4d")
    assert info.value.limit == MAX_MESSAGE_BYTES and info.value.size > MAX_MESSAGE_BYTES
    ok = Notification(title="x", user_info={"blob": "y" * 3900})
    assert message_size(render(ok, mapping="standard")) <= MAX_MESSAGE_BYTES


@pytest.mark.parametrize("mapping", ["4d", "standard"])
async def test_fcm_receives_the_mapping(
    mapping: str, fcm_sandbox: FcmSandbox, service_account: ServiceAccount
) -> None:
    async with FcmClient(
        service_account,
        base_url=fcm_sandbox.url,
        ca_file=fcm_sandbox.ca_file,
        mapping=mapping,  # type: ignore[arg-type]
    ) as client:
        result = await client.send(FOURD, fcm_token("android-token-1"))
    assert result.ok, result
    (got,) = fcm_sandbox.received(fcm_token("android-token-1"))
    assert got.http_version == "HTTP/2"
    expected = render(FOURD, mapping=mapping)  # type: ignore[arg-type]
    assert got.message == {"token": fcm_token("android-token-1"), **expected}
    assert result.provider_id == got.name
    json.dumps(got.message)  # what FCM stored is plain JSON
