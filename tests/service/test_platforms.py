"""One e-mail, every platform, through the service: a real ``pushrelay serve`` process against the
APNs, FCM and Web Push sandboxes (and a fake ``xcrun`` for an iOS simulator).

The sandboxes run in this process (background threads) and are read directly; the service only
knows their URLs and CA files from its configuration file, as in production.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tokenshapes import fcm_token

from pushrelay.db import Database
from pushrelay.sandbox import ApnsSandbox
from pushrelay.sandbox.fcm import FcmSandbox
from pushrelay.sandbox.stack import SandboxStack
from pushrelay.sandbox.webpush import WebPushSandbox
from pushrelay.server.apikeys import ApiKeyStore

from .conftest import FAST_ENV, ServiceProcess

BUNDLE, EMAIL = "com.sample.myappname", "test@4d.com"
IPHONE = "ab" * 32
SIMULATOR = "8A2F3C1E-0B6D-4E5F-9A7B-1C2D3E4F5A6B"
ANDROID = fcm_token("android-phone")
EXAMPLE = {
    "title": "This is title",
    "body": "Here is the content of this notification",
    "userInfo": {"dataClass": "Employee"},
}

# Records each call as simctl would receive it (see tests/simulator for the full fake).
FAKE_XCRUN = """#!{python}
import json, pathlib, sys
args = sys.argv[1:]
with open({log!r}, "a") as fh:
    fh.write(json.dumps({{"args": args, "payload": pathlib.Path(args[-1]).read_text()}}) + "\\n")
"""


@dataclass
class Platforms:
    sandboxes: SandboxStack
    service: ServiceProcess
    xcrun_log: Path
    registrar: str
    sender: str

    @property
    def apns(self) -> ApnsSandbox:
        return self.sandboxes.apns

    @property
    def fcm(self) -> FcmSandbox:
        return self.sandboxes.fcm

    @property
    def web(self) -> WebPushSandbox:
        return self.sandboxes.web

    @property
    def vapid_public_key(self) -> str:
        return self.sandboxes.vapid_public_key

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.service.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platforms]:
    tmp = tmp_path_factory.mktemp("platforms")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    xcrun_log = tmp / "xcrun.log"
    xcrun = bin_dir / "xcrun"
    xcrun.write_text(FAKE_XCRUN.format(python=sys.executable, log=str(xcrun_log)))
    xcrun.chmod(0o755)
    with SandboxStack.running(tmp / "sandbox", project_id="myapp-1234", bundle_id=BUNDLE) as sandboxes:
        for phone in (IPHONE, "ef" * 32):  # the strict APNs sandbox knows the devices it issued
            sandboxes.apns.issue_token(BUNDLE, token=phone)
        url = f"sqlite:///{tmp / 'pushrelay.db'}"
        config = tmp / "pushrelay.toml"
        # Firebase asks for 60 s after QUOTA_EXCEEDED; the test has no minute to spare
        tables = sandboxes.app_toml("myapp", extra={"fcm": {"quota_backoff": 1}})
        config.write_text(f"[database]\nurl = {json.dumps(url)}\n\n{tables}")
        db = Database(url)
        try:
            store = ApiKeyStore(db.engine)
            registrar = store.create(["register"], ["myapp"])[1]
            sender = store.create(["send"], ["myapp"])[1]
        finally:
            db.dispose()
        env = {**FAST_ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        service = ServiceProcess(config, tmp, env).start()
        try:
            yield Platforms(sandboxes, service, xcrun_log, registrar, sender)
        finally:
            service.stop()


def _register(http: httpx.Client, token: str, platform: str, **fields: Any) -> httpx.Response:
    return http.post(
        "/v1/devices",
        json={"app": "myapp", "platform": platform, "token": token, "email": EMAIL, **fields},
    )


def _browser_fields(subscription: dict[str, Any]) -> dict[str, str]:
    keys = subscription["keys"]
    return {"web_p256dh": keys["p256dh"], "web_auth": keys["auth"]}


def _send(http: httpx.Client, email: str) -> dict[str, Any]:
    r = http.post(
        "/v1/notifications",
        params={"wait": 15},
        json={"app": "myapp", "notification": EXAMPLE, "recipients": {"emails": [email]}},
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    assert result["state"] == "completed", result
    return result


def _error(r: httpx.Response, field: str) -> str:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_device" and error["field"] == field, error
    return str(error["message"])


def test_one_email_with_an_iphone_a_simulator_an_android_phone_and_a_browser(
    platforms: Platforms,
) -> None:
    browser = platforms.web.new_subscription(application_server_key=platforms.vapid_public_key)
    with platforms.client(platforms.registrar) as reg, platforms.client(platforms.sender) as snd:
        for token, platform, fields in (
            (IPHONE, "ios", {"device_model": "iPhone15,2"}),
            (SIMULATOR, "ios", {"simulator": True}),
            (ANDROID, "android", {"os": "Android"}),
            (browser["endpoint"], "web", _browser_fields(browser)),
        ):
            assert _register(reg, token, platform, **fields).status_code == 201

        # what could never be delivered is refused before it is stored
        message = _error(
            _register(reg, "https://push.attacker.example/x", "web", **_browser_fields(browser)), "token"
        )
        assert "host push.attacker.example is not in [apps.myapp.webpush] allowed_hosts" in message
        assert "not an allowed push service" in message
        other = platforms.web.new_subscription()
        assert "web_auth" in _error(
            _register(reg, other["endpoint"], "web", web_p256dh=other["keys"]["p256dh"]), "web_auth"
        )
        assert "platform ios" in _error(_register(reg, "cd" * 32, "android"), "token")

        result = _send(snd, EMAIL)

    assert result["success"] is True and result["errors"] == [] and result["warnings"] == []
    outcomes = {d["platform"] + ":" + d["token"]: d["outcome"] for d in result["deliveries"]}
    assert outcomes == {
        f"ios:{IPHONE}": "delivered",
        f"ios:{SIMULATOR}": "delivered",
        f"android:{ANDROID}": "delivered",
        f"web:{browser['endpoint']}": "delivered",
    }
    (iphone,) = platforms.apns.received(IPHONE)
    assert iphone.payload["aps"]["alert"] == {"title": EXAMPLE["title"], "body": EXAMPLE["body"]}
    (simulated,) = [json.loads(line) for line in platforms.xcrun_log.read_text().splitlines()]
    assert simulated["args"][:4] == ["simctl", "push", SIMULATOR, BUNDLE]
    assert json.loads(simulated["payload"])["aps"] == iphone.payload["aps"]
    (android,) = platforms.fcm.received(ANDROID)
    assert android.project_id == "myapp-1234"
    assert android.data["title"] == EXAMPLE["title"] and android.data["dataClass"] == "Employee"
    (pushed,) = platforms.web.received(browser)  # decrypted by the sandbox, as the browser would
    assert pushed.json["notification"]["title"] == EXAMPLE["title"]
    assert pushed.json["data"] == {"dataClass": "Employee"}


def test_dead_tokens_are_retired_and_quota_is_retried_later(platforms: Platforms) -> None:
    email = "retire@4d.com"
    dead_android, busy_android = fcm_token("uninstalled"), fcm_token("over-quota")
    gone = platforms.web.new_subscription(application_server_key=platforms.vapid_public_key)
    platforms.fcm.script(dead_android, "unregistered")
    platforms.fcm.script(busy_android, "quota_exceeded", times=1, retry_after=1)
    platforms.web.unsubscribe(gone)  # the user revoked the permission: 410 Gone from now on
    with platforms.client(platforms.registrar) as reg, platforms.client(platforms.sender) as snd:
        for token, platform, fields in (
            (dead_android, "android", {}),
            (busy_android, "android", {}),
            (gone["endpoint"], "web", _browser_fields(gone)),
        ):
            r = reg.post(
                "/v1/devices",
                json={"app": "myapp", "platform": platform, "token": token, "email": email, **fields},
            )
            assert r.status_code == 201, r.text

        result = _send(snd, email)
        by_token = {d["token"]: d for d in result["deliveries"]}
        assert by_token[dead_android]["outcome"] == "token_dead"
        assert by_token[gone["endpoint"]]["outcome"] == "token_dead"
        busy = by_token[busy_android]
        assert (busy["outcome"], busy["attempts"]) == ("delivered", 2)  # QUOTA_EXCEEDED, then later
        assert len(platforms.fcm.received(busy_android)) == 1

        devices = {
            d["token"]: d
            for d in snd.get("/v1/devices", params={"app": "myapp", "email": email}).json()["items"]
        }
        assert devices[busy_android]["active"] is True
        for token in (dead_android, gone["endpoint"]):
            assert devices[token]["active"] is False and devices[token]["retired_reason"]

        metrics = snd.get("/metrics").text
    assert 'pushrelay_delivery_retries_total{app="myapp",platform="android"' in metrics
    assert 'pushrelay_tokens_retired_total{app="myapp"' in metrics
    for platform in ("android", "web"):
        assert (
            f'pushrelay_deliveries_total{{app="myapp",outcome="token_dead",platform="{platform}"' in metrics
        )
    assert 'pushrelay_fcm_access_token_mints{app="myapp"} 1.0' in metrics


def test_localised_texts_on_every_platform(platforms: Platforms) -> None:
    """FCM and Web Push get the device's language as APNs does (one rendering point for all)."""
    email = "lang@4d.com"
    phone, android = "ef" * 32, fcm_token("android-in-french")
    browser = platforms.web.new_subscription(application_server_key=platforms.vapid_public_key)
    note = {
        "title": "Sale",
        "body": "Everything at -50 %",
        "localizations": {
            "fr": {"title": "Soldes", "body": "Tout à -50 %"},
            "es-MX": {"title": "Ofertas", "body": "Todo a -50 %"},
        },
    }
    with platforms.client(platforms.registrar) as reg, platforms.client(platforms.sender) as snd:
        for token, platform, fields in (
            (phone, "ios", {"language": "de"}),
            (android, "android", {"language": "fr_FR"}),
            (browser["endpoint"], "web", {"language": "es-MX", **_browser_fields(browser)}),
        ):
            r = reg.post(
                "/v1/devices",
                json={"app": "myapp", "platform": platform, "token": token, "email": email, **fields},
            )
            assert r.status_code == 201, r.text
        r = snd.post(
            "/v1/notifications",
            params={"wait": 15},
            json={"app": "myapp", "notification": note, "recipients": email},
        )
        assert r.status_code == 200 and r.json()["counts"]["delivered"] == 3, r.text
    assert platforms.apns.received(phone)[-1].payload["aps"]["alert"] == {
        "title": "Sale",
        "body": "Everything at -50 %",
    }
    data = platforms.fcm.received(android)[-1].data
    assert (data["title"], data["body"]) == ("Soldes", "Tout à -50 %")
    assert "localizations" not in data
    pushed = platforms.web.received(browser)[-1].json["notification"]
    assert (pushed["title"], pushed["body"]) == ("Ofertas", "Todo a -50 %")
