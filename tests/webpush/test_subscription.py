"""WebSubscription.from_dict reads PushSubscription.toJSON() and says exactly what is wrong otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from pushrelay.webpush import SubscriptionError, WebSubscription
from pushrelay.webpush.subscription import b64url_encode

P256DH = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
AUTH = "tBHItJI5svbpez7KI4CCXg"
GOOD: dict[str, Any] = {
    "endpoint": "https://fcm.googleapis.com/fcm/send/abc:def",
    "expirationTime": None,
    "keys": {"p256dh": P256DH, "auth": AUTH},
}


def test_browser_shape_round_trips() -> None:
    sub = WebSubscription.from_dict(GOOD)
    assert (sub.endpoint, sub.p256dh, sub.auth) == (GOOD["endpoint"], P256DH, AUTH)
    assert sub.to_dict() == {"endpoint": GOOD["endpoint"], "keys": {"p256dh": P256DH, "auth": AUTH}}
    assert sub.host == "fcm.googleapis.com"
    assert len(sub.auth_secret()) == 16
    padded = WebSubscription(GOOD["endpoint"], P256DH + "=", AUTH + "==")  # padding is tolerated
    assert padded.public_key().public_numbers() == sub.public_key().public_numbers()


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ("https://x", "subscription", "must be an object"),
        ({"keys": GOOD["keys"]}, "endpoint", "endpoint is missing"),
        ({"endpoint": "http://fcm.googleapis.com/x", "keys": GOOD["keys"]}, "endpoint", "https://"),
        ({"endpoint": "https://u:p@fcm.googleapis.com/x", "keys": GOOD["keys"]}, "endpoint", "user:password"),
        ({"endpoint": GOOD["endpoint"]}, "keys", "PushSubscription.toJSON()"),
        ({"endpoint": GOOD["endpoint"], "keys": {"auth": AUTH}}, "keys.p256dh", "missing"),
        ({"endpoint": GOOD["endpoint"], "keys": {"p256dh": P256DH}}, "keys.auth", "missing"),
        (
            {"endpoint": GOOD["endpoint"], "keys": {"p256dh": "abc!", "auth": AUTH}},
            "keys.p256dh",
            "base64url",
        ),
        (
            {
                "endpoint": GOOD["endpoint"],
                "keys": {"p256dh": b64url_encode(b"\x04" + b"\x00" * 64), "auth": AUTH},
            },
            "keys.p256dh",
            "not a point on the P-256 curve",
        ),
        ({"endpoint": GOOD["endpoint"], "keys": {"p256dh": AUTH, "auth": AUTH}}, "keys.p256dh", "65 bytes"),
        ({"endpoint": GOOD["endpoint"], "keys": {"p256dh": P256DH, "auth": P256DH}}, "keys.auth", "16 bytes"),
    ],
)
def test_errors_name_the_field(data: Any, field: str, fragment: str) -> None:
    with pytest.raises(SubscriptionError) as info:
        WebSubscription.from_dict(data)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
