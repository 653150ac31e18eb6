"""The accept check of payload sizes (pushrelay.providers.payload_check): each platform the app can
reach renders the notification with its provider's own renderer and refuses it at that
provider's limit (APNs 4,096 / 5,120 for VoIP, FCM 4,096, Web Push 3,993 bytes of plaintext)."""

from __future__ import annotations

import pytest

from pushrelay import NotificationError, PayloadTooLargeError
from pushrelay.config.model import ApnsSettings, AppConfig
from pushrelay.notification import Notification
from pushrelay.providers.payload_check import check_payloads, reachable_platforms

APNS = ApnsSettings(team_id="TEAM123456", key_id="ABC123DEFG")
ALL = AppConfig(name="myapp", bundle_id="com.x.app", apns=APNS, fcm={"project_id": "p"}, webpush={})


def _sized(body_bytes: int, **fields: object) -> Notification:
    return Notification.from_dict({"title": "t", "body": "x" * body_bytes, **fields})


def _refused(n: Notification, app: AppConfig, targets: tuple[str, ...] = ()) -> PayloadTooLargeError:
    with pytest.raises(PayloadTooLargeError) as info:
        check_payloads(n, app, targets)
    return info.value


def test_reachable_platforms_are_the_configured_ones_among_the_targets() -> None:
    assert reachable_platforms(ALL) == ["ios", "android", "web"]
    assert reachable_platforms(ALL, ["android"]) == ["android"]
    ios_only = AppConfig(name="a", bundle_id="b", apns=APNS)
    assert reachable_platforms(ios_only, ["android", "web"]) == []


def test_each_platform_at_its_own_limit() -> None:
    # a 3,970-byte body fits APNs and FCM but not the 3,993 bytes of a Web Push plaintext
    err = _refused(_sized(3970), ALL)
    assert err.limit == 3993 and err.size > 3993 and err.field == "payload"
    assert "web (Web Push)" in str(err) and str(err.size) in str(err) and "3993" in str(err)
    check_payloads(_sized(3970), ALL, ["ios", "android"])
    err = _refused(_sized(4100), ALL, ("ios", "android"))
    assert "ios (APNs)" in str(err) and err.limit == 4096
    err = _refused(_sized(4100), ALL, ("android",))
    assert "android (FCM)" in str(err) and err.limit == 4096
    # a platform the app cannot reach is not measured
    check_payloads(_sized(6000), AppConfig(name="a", bundle_id="b"))


def test_voip_pushes_get_5120_bytes() -> None:
    voip = AppConfig(name="a", bundle_id="b", apns=APNS)
    check_payloads(_sized(4500, push_type="voip"), voip)
    err = _refused(_sized(5200, push_type="voip"), voip)
    assert err.limit == 5120 and "ios (APNs)" in str(err)


def test_every_language_variant_is_measured() -> None:
    n = Notification.from_dict({"title": "t", "body": "b", "localizations": {"fr": {"body": "é" * 2100}}})
    err = _refused(n, ALL, ("ios",))
    assert err.field == "localizations.fr" and "the fr variant" in str(err) and "4096" in str(err)


def test_other_provider_refusals_name_the_platform() -> None:
    n = Notification.from_dict({"title": "t", "userInfo": {"from": "x"}})  # a key FCM reserves
    with pytest.raises(NotificationError) as info:
        check_payloads(n, ALL, ("android",))
    assert "android (FCM)" in str(info.value) and info.value.field == "data.from"
