"""The /_sandbox control API over HTTP/2, and the threaded ``ApnsSandbox.running()`` form."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushrelay.sandbox import ApnsSandbox

from .conftest import ALERT, BUNDLE, KEY_ID, TEAM, Issue, Sender, make_jwt
from .h2client import H2Response, H2TestClient


async def control(client: H2TestClient, method: str, name: str, body: Any = None) -> H2Response:
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return await client.request(method, f"/_sandbox/{name}", [("content-type", "application/json")], data)


async def test_script_then_received_then_stats(
    issue: Issue, sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    dead, alive = issue(), issue()
    answer = await control(
        client,
        "POST",
        "script",
        {"token": dead.upper(), "behaviour": "unregistered", "params": {"timestamp_ms": 42}},
    )
    assert answer.status == 200
    assert answer.json == {
        "scripted": {
            "token": dead,
            "behaviour": "unregistered",
            "times": None,
            "params": {"timestamp_ms": 42},
        }
    }
    assert (await send(dead)).json == {"reason": "Unregistered", "timestamp": 42}
    assert (await send(alive)).status == 200

    received = (await control(client, "GET", f"received?token={alive}")).json["received"]
    assert len(received) == 1
    assert received[0]["token"] == alive and received[0]["payload"] == json.loads(ALERT)
    assert received[0]["topic"] == BUNDLE
    assert len((await control(client, "GET", "received")).json["received"]) == 1

    stats = (await control(client, "GET", "stats")).json
    assert stats["requests"] == 2  # control requests are not counted
    assert stats["accepted"] == 1 and stats["rejected"] == {"Unregistered": 1}
    assert stats["stream_limit_violations"] == 0 and stats["jwt_verifications"] == 1

    assert (await control(client, "DELETE", "received")).status == 200
    assert sandbox.all_received() == []
    assert (await control(client, "DELETE", f"script?token={dead}")).status == 200
    assert (await send(dead)).status == 200


async def test_outage_on_and_off(sandbox: ApnsSandbox, send: Sender, client: H2TestClient) -> None:
    assert (
        await control(client, "POST", "outage", {"status": 500, "reason": "InternalServerError"})
    ).status == 200
    assert (await send()).reason == "InternalServerError"
    assert (await control(client, "POST", "outage", {})).json == {
        "outage": {"status": 503, "reason": "ServiceUnavailable"}
    }
    assert (await send()).reason == "ServiceUnavailable"
    assert (await control(client, "DELETE", "outage")).status == 200
    assert (await send()).status == 200


async def test_register_a_key_and_a_topic(sandbox: ApnsSandbox, send: Sender, client: H2TestClient) -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    answer = await control(
        client, "POST", "keys", {"team_id": "REMOTETEAM", "key_id": "REMOTEKEY1", "public_key": pem.decode()}
    )
    assert answer.status == 200
    assert (
        await control(client, "POST", "topics", {"bundle_id": "com.remote.app", "team_id": "REMOTETEAM"})
    ).status == 200
    info = (await control(client, "GET", "info")).json
    assert info["topics"]["com.remote.app"] == "REMOTETEAM"
    assert {"team_id": "REMOTETEAM", "key_id": "REMOTEKEY1", "environment": None} in info["keys"]

    token = jwt.encode(
        {"iss": "REMOTETEAM", "iat": int(time.time())},
        private_key,
        algorithm="ES256",
        headers={"kid": "REMOTEKEY1"},
    )
    fresh = await H2TestClient.connect(sandbox.url, sandbox.ca_file)  # one team per connection
    try:
        device = (await control(client, "POST", "devices", {"topic": "com.remote.app"})).json["token"]
        response = await send(device, authorization="bearer " + token, apns_topic="com.remote.app", via=fresh)
    finally:
        await fresh.close()
    assert response.status == 200


@pytest.mark.parametrize(
    ("method", "name", "body", "status", "error"),
    [
        ("POST", "script", b"{not json", 400, "body: expected a JSON object"),
        ("POST", "script", [1, 2], 400, "body: expected a JSON object"),
        ("POST", "script", {"behaviour": "unregistered"}, 400, "token: required"),
        ("POST", "script", {"token": "ab" * 32, "behaviour": "explode"}, 400, "behaviour: expected one of"),
        (
            "POST",
            "script",
            {"token": "ab" * 32, "behaviour": "delay", "times": "twice"},
            400,
            "times: expected int",
        ),
        ("POST", "script", {"token": "ab" * 32, "behaviour": "delay", "params": {"times": 2}}, 400, "times"),
        ("POST", "outage", {"status": 200}, 400, "status: expected an HTTP error status"),
        (
            "POST",
            "keys",
            {"team_id": TEAM, "key_id": KEY_ID, "public_key": "nope"},
            400,
            "public_key: expected a PEM",
        ),
        (
            "POST",
            "topics",
            {"bundle_id": "not a bundle", "team_id": TEAM},
            400,
            "bundle_id: expected a bundle id",
        ),
        ("GET", "nothing-here", None, 404, "unknown control endpoint"),
        ("PUT", "stats", None, 405, "/_sandbox/stats takes GET, not PUT"),
    ],
)
async def test_bad_control_requests_are_explained(
    client: H2TestClient, method: str, name: str, body: Any, status: int, error: str
) -> None:
    answer = await control(client, method, name, body)
    assert answer.status == status
    assert error in answer.json["error"]


def test_running_in_a_background_thread(tmp_path: Path) -> None:
    """Sync code drives the sandbox from its own thread while requests arrive on the sandbox's loop."""
    with ApnsSandbox.running(directory=tmp_path / "sb") as sb:
        key = sb.create_key(TEAM, KEY_ID, tmp_path)
        sb.add_topic(BUNDLE, TEAM)
        dead, alive = sb.issue_token(BUNDLE), sb.issue_token(BUNDLE)
        sb.script(dead, "unregistered")

        async def deliver() -> list[int]:
            client = await H2TestClient.connect(sb.url, sb.ca_file)
            headers = [("authorization", "bearer " + make_jwt(key, iat=time.time())), ("apns-topic", BUNDLE)]
            try:
                return [
                    (await client.request("POST", f"/3/device/{token}", headers, ALERT.encode())).status
                    for token in (dead, alive)
                ]
            finally:
                await client.close()

        assert asyncio.run(deliver()) == [410, 200]
        assert [r.token for r in sb.all_received()] == [alive]
        assert sb.stats.accepted == 1 and sb.stats.rejected == {"Unregistered": 1}
        assert sb.ca_file.exists()
    assert (tmp_path / "sb" / "ca.pem").is_file()  # a directory given by the caller is kept


async def test_temporary_directory_is_removed_on_exit() -> None:
    async with ApnsSandbox() as sb:
        directory = sb.ca_file.parent
        assert directory.is_dir()
    assert not directory.exists()
    assert sb.url.startswith("https://127.0.0.1:")


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="environment"):
        ApnsSandbox(environment="staging")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_concurrent_streams"):
        ApnsSandbox(max_concurrent_streams=0)
    with pytest.raises(ValueError, match="port"):
        ApnsSandbox(port=70000)
