"""One notification to one e-mail address with an iPhone, an Android phone and a browser.

Runs the whole path of pushrelay.push (outbox record, registry lookup, the worker's delivery by
platform) with the default provider table built from the app's settings, each provider talking to
its sandbox over real sockets.
"""

from __future__ import annotations

from pathlib import Path

from tokenshapes import fcm_token

from pushrelay.config.model import ApnsSettings, AppConfig, Config
from pushrelay.push.api import AsyncPushNotification
from pushrelay.registry.devices import DeviceRegistry
from pushrelay.sandbox import ApnsSandbox
from pushrelay.sandbox.fcm import FcmSandbox
from pushrelay.sandbox.webpush import WebPushSandbox
from pushrelay.webpush import generate_vapid_keys

TEAM, KEY_ID, BUNDLE = "TEAM123456", "ABC123DEFG", "com.sample.myappname"
IPHONE = "a" * 64
ANDROID = fcm_token("android-phone")


async def test_one_email_three_platforms(tmp_path: Path, sqlite_url: str) -> None:
    vapid = generate_vapid_keys()
    async with (
        ApnsSandbox(directory=tmp_path / "apns") as apns,
        FcmSandbox() as fcm,
        WebPushSandbox() as web,
    ):
        apns.add_topic(BUNDLE, TEAM)
        apns.issue_token(BUNDLE, token=IPHONE)  # the strict sandbox knows issued tokens only
        app = AppConfig(
            name="myapp",
            bundle_id=BUNDLE,
            apns=ApnsSettings(
                team_id=TEAM,
                key_file=apns.create_key(TEAM, KEY_ID, tmp_path),
                endpoint=apns.url,
                ca_file=apns.ca_file,
            ),
            fcm={
                "service_account_file": fcm.create_service_account(tmp_path, project_id="myapp").name,
                "base_url": fcm.url,
                "ca_file": str(fcm.ca_file),
            },
            webpush={
                "vapid_private_key": vapid.private_key,
                "vapid_subject": "mailto:ops@example.com",
                "allowed_hosts": [web.allowed_host],
                "ca_file": str(web.ca_file),
            },
            base_dir=tmp_path,
        )
        browser = web.new_subscription(application_server_key=vapid.public_key)
        with DeviceRegistry(sqlite_url) as registry:
            registry.register("myapp", IPHONE, platform="ios", email="test@4d.com")
            registry.register("myapp", ANDROID, platform="android", email="test@4d.com")
            registry.register(
                "myapp",
                browser["endpoint"],
                platform="web",
                email="test@4d.com",
                web_p256dh=browser["keys"]["p256dh"],
                web_auth=browser["keys"]["auth"],
            )
            push = AsyncPushNotification(app, config=Config(apps={"myapp": app}), registry=registry)
            async with push:
                result = await push.send(
                    {
                        "title": "This is title",
                        "body": "Here is the content",
                        "userInfo": {"dataClass": "Employee"},
                    },
                    "test@4d.com",
                )
        assert result.success, result
        assert not result.warnings and not result.errors

        (iphone,) = apns.received(IPHONE)
        assert iphone.payload["aps"]["alert"]["title"] == "This is title"
        (android,) = fcm.received(ANDROID)
        assert android.data["title"] == "This is title" and android.data["dataClass"] == "Employee"
        assert android.data["android_channel_id"] == "qmobile_channel_id"
        (pushed,) = web.received(browser)
        assert pushed.json["notification"]["title"] == "This is title"
        assert pushed.json["data"] == {"dataClass": "Employee"}
