"""The strict rules of the sandboxes, seen through third-party clients from the registries.

aioapns and pywebpush (dev extra) talk to the sandboxes as they talk to Apple and to the browsers'
push services; only the host, the port and the CA to trust differ. A missing package skips its test.
firebase-admin against the FCM sandbox has a file of its own (test_firebase_admin.py).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pushrelay.sandbox import ApnsSandbox
from pushrelay.sandbox.webpush import WebPushSandbox
from pushrelay.webpush import VapidKey

from .conftest import BUNDLE, KEY_ID, TEAM

OTHER_APP = "com.sample.otherapp"


async def test_aioapns_meets_the_strict_token_rules(tmp_path: Path) -> None:
    aioapns = pytest.importorskip("aioapns")
    from aioapns.connection import APNsProductionClientProtocol

    async with ApnsSandbox(directory=tmp_path / "apns") as sb:
        key_file = sb.create_key(TEAM, KEY_ID, tmp_path)
        sb.add_topic(BUNDLE, TEAM)
        sb.add_topic(OTHER_APP, TEAM)
        # aioapns offers no ALPN (HTTP/2 with prior knowledge over TLS, as Apple accepts): the
        # sandbox recognises the HTTP/2 preface. Its context verifies the sandbox's certificate.
        context = ssl.create_default_context(cafile=str(sb.ca_file))
        client = aioapns.APNs(
            key=key_file.read_text(), key_id=KEY_ID, team_id=TEAM, topic=BUNDLE, ssl_context=context
        )
        # aioapns has no endpoint option: its protocol class names Apple's host and port
        client.pool.protocol_class = type(
            "SandboxProtocol",
            (APNsProductionClientProtocol,),
            {"APNS_SERVER": "127.0.0.1", "APNS_PORT": sb.port},
        )

        async def send(token: str) -> Any:
            request = aioapns.NotificationRequest(
                device_token=token,
                message={"aps": {"alert": {"title": "hi"}}},
                push_type=aioapns.PushType.ALERT,
            )
            return await client.send_notification(request)

        issued = sb.issue_token(BUNDLE)
        ok = await send(issued)
        assert ok.is_successful, (ok.status, ok.description)
        never = await send("ab" * 32)
        development = await send(sb.issue_token(BUNDLE, "development"))
        other = await send(sb.issue_token(OTHER_APP))
        assert [(r.status, r.description) for r in (never, development, other)] == [
            ("400", "BadDeviceToken"),
            ("400", "BadDeviceToken"),
            ("400", "DeviceTokenNotForTopic"),
        ]
        assert [r.payload["aps"]["alert"]["title"] for r in sb.received(issued)] == ["hi"]
        for connection in list(client.pool.connections):
            connection.close()


@pytest.fixture
def web() -> Iterator[WebPushSandbox]:
    with WebPushSandbox.running() as sb:
        yield sb


@pytest.fixture
def vapid(tmp_path: Path) -> tuple[VapidKey, Path]:
    key = VapidKey.generate(subject="mailto:ops@example.com")
    path = tmp_path / "vapid.pem"
    path.write_bytes(key.private_pem())
    return key, path


def test_pywebpush_delivers_drops_and_sends_empty_pushes(
    web: WebPushSandbox, vapid: tuple[VapidKey, Path]
) -> None:
    pywebpush = pytest.importorskip("pywebpush")
    requests = pytest.importorskip("requests")
    key, pem = vapid
    session = requests.Session()
    session.verify = str(web.ca_file)  # trust the sandbox CA; verification stays on
    session.trust_env = False  # else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would replace that CA

    def push(subscription: dict[str, Any], data: str | None) -> Any:
        return pywebpush.webpush(
            subscription,
            data,
            vapid_private_key=str(pem),
            vapid_claims={"sub": "mailto:ops@example.com"},
            ttl=60,
            requests_session=session,
        )

    browser = web.new_subscription(application_server_key=key.public_key_b64)
    other = web.new_subscription(application_server_key=key.public_key_b64)

    assert push(browser, '{"title": "hi"}').status_code == 201
    assert web.received(browser)[-1].json == {"title": "hi"}

    # encrypted for another browser's keys: the push service takes it (201), the browser drops it
    crossed = {"endpoint": browser["endpoint"], "keys": other["keys"]}
    assert push(crossed, '{"title": "lost"}').status_code == 201
    assert len(web.received(browser)) == 1
    (dropped,) = web.undecryptable(browser)
    assert "does not decrypt" in dropped.reason

    # no data: an empty push, as RFC 8030 allows
    assert push(browser, None).status_code == 201
    assert web.received(browser)[-1].payload == b""
    session.close()
