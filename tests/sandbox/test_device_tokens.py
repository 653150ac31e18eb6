"""Device tokens as Apple binds them: issued by the sandbox for one app and one environment.

One test per rule, over real TLS sockets: HTTP/2 for the device requests, HTTP/2 and HTTP/1.1 for the
control API that issues the tokens.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pushrelay.sandbox import ApnsSandbox

from .conftest import ALERT, BUNDLE, KEY_ID, TEAM, FakeClock, make_jwt, new_token
from .h2client import H2Response, H2TestClient

OTHER_APP = "com.sample.otherapp"


@pytest.fixture
async def strict(clock: FakeClock, tmp_path: Path) -> AsyncIterator[ApnsSandbox]:
    async with ApnsSandbox(clock=clock, directory=tmp_path / "strict") as sb:
        sb.create_key(TEAM, KEY_ID, tmp_path)
        sb.add_topic(BUNDLE, TEAM)
        sb.add_topic(OTHER_APP, TEAM)
        yield sb


@pytest.fixture
async def h2(strict: ApnsSandbox) -> AsyncIterator[H2TestClient]:
    client = await H2TestClient.connect(strict.url, strict.ca_file)
    yield client
    await client.close()


_bearers: dict[tuple[Path, float], str] = {}


def bearer(key_dir: Path, clock: FakeClock) -> str:
    """One provider token per key and time: a new one at every request would be refused (429)."""
    key = (key_dir, clock.now)
    if key not in _bearers:
        _bearers[key] = "bearer " + make_jwt(key_dir / f"AuthKey_{KEY_ID}.p8", iat=clock.now)
    return _bearers[key]


async def push(
    client: H2TestClient,
    key_dir: Path,
    clock: FakeClock,
    token: str,
    topic: str = BUNDLE,
    push_type: str = "alert",
) -> H2Response:
    headers = [
        ("authorization", bearer(key_dir, clock)),
        ("apns-topic", topic),
        ("apns-push-type", push_type),
    ]
    return await client.request("POST", f"/3/device/{token}", headers, ALERT.encode())


def http1(sb: ApnsSandbox, method: str, path: str, body: Any = None) -> tuple[int, str, Any]:
    """One request with http.client (HTTP/1.1 only, like curl --http1.1), trusting the sandbox CA."""
    context = ssl.create_default_context(cafile=str(sb.ca_file))
    context.set_alpn_protocols(["http/1.1"])
    connection = http.client.HTTPSConnection("127.0.0.1", sb.port, context=context, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers={"content-type": "application/json"})
        response = connection.getresponse()
        text = response.read()
        assert connection.sock is not None
        return response.status, f"HTTP/{response.version // 10}.{response.version % 10}", json.loads(text)
    finally:
        connection.close()


async def test_an_issued_token_is_accepted(
    strict: ApnsSandbox, h2: H2TestClient, tmp_path: Path, clock: FakeClock
) -> None:
    token = strict.issue_token(BUNDLE)
    assert len(token) == 64 and int(token, 16) >= 0
    answer = await push(h2, tmp_path, clock, token)
    assert answer.status == 200
    assert [r.token for r in strict.received(token)] == [token]


async def test_a_token_never_issued_is_bad_device_token(
    strict: ApnsSandbox, h2: H2TestClient, tmp_path: Path, clock: FakeClock
) -> None:
    answer = await push(h2, tmp_path, clock, new_token())
    assert (answer.status, answer.reason) == (400, "BadDeviceToken")
    assert strict.all_received() == []


async def test_a_token_of_the_other_environment_is_bad_device_token(
    strict: ApnsSandbox, h2: H2TestClient, tmp_path: Path, clock: FakeClock
) -> None:
    token = strict.issue_token(BUNDLE, "development")  # this sandbox is production
    answer = await push(h2, tmp_path, clock, token)
    assert (answer.status, answer.reason) == (400, "BadDeviceToken")


async def test_another_apps_token_is_device_token_not_for_topic(
    strict: ApnsSandbox, h2: H2TestClient, tmp_path: Path, clock: FakeClock
) -> None:
    token = strict.issue_token(OTHER_APP)
    answer = await push(h2, tmp_path, clock, token, topic=BUNDLE)
    assert (answer.status, answer.reason) == (400, "DeviceTokenNotForTopic")
    assert (await push(h2, tmp_path, clock, token, topic=OTHER_APP)).status == 200


async def test_a_token_serves_its_apps_push_type_topics(
    strict: ApnsSandbox, h2: H2TestClient, tmp_path: Path, clock: FakeClock
) -> None:
    token = strict.issue_token(BUNDLE)
    answer = await push(h2, tmp_path, clock, token, topic=BUNDLE + ".voip", push_type="voip")
    assert answer.status == 200
    other = strict.issue_token(OTHER_APP)
    answer = await push(h2, tmp_path, clock, other, topic=BUNDLE + ".voip", push_type="voip")
    assert (answer.status, answer.reason) == (400, "DeviceTokenNotForTopic")


async def test_a_bound_token_keeps_its_value(
    strict: ApnsSandbox, h2: H2TestClient, tmp_path: Path, clock: FakeClock
) -> None:
    live_activity = new_token(160)
    assert strict.issue_token(BUNDLE, token=live_activity.upper()) == live_activity
    assert (await push(h2, tmp_path, clock, live_activity)).status == 200
    with pytest.raises(ValueError, match="token: expected hex"):
        strict.issue_token(BUNDLE, token="phone-1")
    with pytest.raises(ValueError, match="topic: expected a bundle id"):
        strict.issue_token("not a topic")
    with pytest.raises(ValueError, match="environment: expected"):
        strict.issue_token(BUNDLE, "staging")  # type: ignore[arg-type]


async def test_lenient_mode_takes_any_well_formed_token(tmp_path: Path, clock: FakeClock) -> None:
    async with ApnsSandbox(clock=clock, directory=tmp_path / "lenient", lenient=True) as sb:
        sb.create_key(TEAM, KEY_ID, tmp_path)
        sb.add_topic(BUNDLE, TEAM)
        client = await H2TestClient.connect(sb.url, sb.ca_file)
        try:
            assert (await push(client, tmp_path, clock, new_token())).status == 200
            other_env = sb.issue_token(OTHER_APP, "development")
            assert (await push(client, tmp_path, clock, other_env)).status == 200
        finally:
            await client.close()
        assert sb.describe()["lenient"] is True


async def test_control_api_issues_tokens_over_http2(
    strict: ApnsSandbox, h2: H2TestClient, tmp_path: Path, clock: FakeClock
) -> None:
    answer = await h2.request(
        "POST",
        "/_sandbox/devices",
        [("content-type", "application/json")],
        json.dumps({"topic": BUNDLE}).encode(),
    )
    assert answer.status == 200
    issued = answer.json
    assert issued["topic"] == BUNDLE and issued["environment"] == "production"
    assert (await push(h2, tmp_path, clock, issued["token"])).status == 200
    listed = (await h2.request("GET", "/_sandbox/devices", [], b"")).json["devices"]
    assert issued in listed


async def test_control_api_answers_http1(
    strict: ApnsSandbox, h2: H2TestClient, tmp_path: Path, clock: FakeClock
) -> None:
    status, version, body = await asyncio.to_thread(
        http1, strict, "POST", "/_sandbox/devices", {"topic": BUNDLE, "environment": "production"}
    )
    assert (status, version) == (200, "HTTP/1.1")
    assert (await push(h2, tmp_path, clock, body["token"])).status == 200
    status, _, stats = await asyncio.to_thread(http1, strict, "GET", "/_sandbox/stats")
    assert status == 200 and stats["accepted"] == 1
    # APNs itself stays HTTP/2 only
    status, _, refusal = await asyncio.to_thread(http1, strict, "POST", f"/3/device/{body['token']}", {})
    assert status == 505 and "HTTP/2" in refusal["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "topic: required"),
        ({"topic": 7}, "topic: expected str"),
        ({"topic": "no spaces allowed"}, "topic: expected a bundle id"),
        ({"topic": BUNDLE, "environment": "staging"}, "environment: expected 'production' or 'development'"),
        ({"topic": BUNDLE, "token": "phone-1"}, "token: expected hex"),
    ],
)
async def test_control_api_names_the_bad_field(strict: ApnsSandbox, body: dict[str, Any], field: str) -> None:
    status, _, answer = await asyncio.to_thread(http1, strict, "POST", "/_sandbox/devices", body)
    assert status == 400
    assert field in answer["error"]


async def test_issued_tokens_are_inbox_devices_before_anything_is_sent(strict: ApnsSandbox) -> None:
    from pushrelay.sandbox.records import InboxLog

    before = strict.issue_token(BUNDLE)
    log = InboxLog()
    strict.attach_inbox(log)  # the tokens issued so far, then every new one
    after = strict.issue_token(OTHER_APP, "development")
    devices = {d.device: d for d in log.devices()}
    assert set(devices) == {before, after}
    assert all(d.platform == "apns" and d.accepted == 0 and d.refused == 0 for d in devices.values())


async def test_a_stack_serves_both_environments_with_one_set_of_tokens(tmp_path: Path) -> None:
    import time

    from pushrelay.sandbox.stack import SandboxStack

    async with SandboxStack.serve(tmp_path / "stack", other_port=0) as stack:
        production, development = stack.apns, stack.apns_other
        assert development is not None and development.environment == "development"
        bearer = "bearer " + make_jwt(
            stack.key_file, team=stack.team_id, key_id=stack.key_id, iat=time.time()
        )
        headers = [("authorization", bearer), ("apns-topic", stack.bundle_id)]
        # issued through the production port's control API, for the development environment
        _, _, issued = await asyncio.to_thread(
            http1,
            production,
            "POST",
            "/_sandbox/devices",
            {"topic": stack.bundle_id, "environment": "development"},
        )
        answers = []
        for sandbox in (development, production):
            client = await H2TestClient.connect(sandbox.url, sandbox.ca_file)
            try:
                answers.append(
                    await client.request("POST", f"/3/device/{issued['token']}", headers, ALERT.encode())
                )
            finally:
                await client.close()
        assert [(a.status, a.reason) for a in answers] == [(200, None), (400, "BadDeviceToken")]
        assert len(development.received(issued["token"])) == 1
