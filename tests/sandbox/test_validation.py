"""Every APNs request rule: routing, headers, device tokens, topics, priorities, payloads."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from pushrelay.sandbox import ApnsSandbox
from pushrelay.sandbox.apns_rules import PUSH_TYPES

from .conftest import ALERT, BUNDLE, KEY_ID, TEAM, FakeClock, Issue, Sender, make_jwt
from .h2client import H2TestClient

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def payload_of_size(size: int) -> bytes:
    """A valid APNs payload of exactly ``size`` bytes."""
    skeleton = json.dumps({"aps": {"alert": ""}}, separators=(",", ":"))
    body = json.dumps({"aps": {"alert": "x" * (size - len(skeleton))}}, separators=(",", ":")).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"path": "/3/devices/abcd"}, 404, "BadPath"),
        ({"path": "/"}, 404, "BadPath"),
        ({"path": "/4/device/" + "ab" * 32}, 404, "BadPath"),
        ({"method": "GET"}, 405, "MethodNotAllowed"),
        ({"method": "PUT"}, 405, "MethodNotAllowed"),
        ({"path": "/3/device/"}, 400, "MissingDeviceToken"),
        ({"token": "zz" * 32}, 400, "BadDeviceToken"),
        ({"token": "ab" * 31}, 400, "BadDeviceToken"),  # 62 digits: too short
        ({"token": "a" * 65}, 400, "BadDeviceToken"),  # odd length
        ({"token": "ab" * 32 + "/extra"}, 400, "BadDeviceToken"),
        ({"apns_push_type": "banana"}, 400, "InvalidPushType"),
        ({"apns_topic": None}, 400, "MissingTopic"),
        ({"apns_topic": "com..sample"}, 400, "BadTopic"),
        ({"apns_topic": "com.sample app"}, 400, "BadTopic"),
        ({"apns_topic": "com.other.app"}, 400, "TopicDisallowed"),
        ({"apns_push_type": "voip"}, 400, "DeviceTokenNotForTopic"),  # voip needs <bundle>.voip
        ({"apns_topic": BUNDLE + ".voip"}, 400, "InvalidPushType"),  # a voip topic for an alert push
        ({"apns_push_type": "liveactivity", "apns_topic": BUNDLE + ".voip"}, 400, "InvalidPushType"),
        ({"apns_priority": "7"}, 400, "BadPriority"),
        ({"apns_priority": "high"}, 400, "BadPriority"),
        ({"apns_push_type": "background", "apns_priority": "10"}, 400, "BadPriority"),
        ({"apns_expiration": "-1"}, 400, "BadExpirationDate"),
        ({"apns_expiration": "tomorrow"}, 400, "BadExpirationDate"),
        ({"apns_expiration": "1.5"}, 400, "BadExpirationDate"),
        ({"apns_id": "not-a-uuid"}, 400, "BadMessageId"),
        ({"apns_collapse_id": "c" * 65}, 400, "BadCollapseId"),
        ({"apns_collapse_id": "é" * 33}, 400, "BadCollapseId"),  # 66 bytes in UTF-8
        ({"extra": [("apns-topic", BUNDLE)]}, 400, "DuplicateHeaders"),
        ({"extra": [("apns-priority", "10"), ("apns-priority", "5")]}, 400, "DuplicateHeaders"),
        ({"body": b""}, 400, "PayloadEmpty"),
        ({"body": payload_of_size(4097)}, 413, "PayloadTooLarge"),
        (
            {"body": payload_of_size(5121), "apns_push_type": "voip", "apns_topic": BUNDLE + ".voip"},
            413,
            "PayloadTooLarge",
        ),
        ({"body": b"this is not json"}, 400, "PayloadEmpty"),
        ({"body": b"[1, 2]"}, 400, "PayloadEmpty"),
        ({"body": b'{"aps": "alert"}'}, 400, "PayloadEmpty"),
    ],
)
async def test_rejections_answer_like_apple(
    issue: Issue, sandbox: ApnsSandbox, send: Sender, kwargs: dict[str, Any], status: int, reason: str
) -> None:
    response = await send(**kwargs)
    assert (response.status, response.json) == (status, {"reason": reason})
    assert response.headers["content-type"] == "application/json"
    assert UUID_RE.fullmatch(response.headers["apns-id"])
    assert sandbox.all_received() == []  # a rejected request is not received
    assert sandbox.stats.rejected == {reason: 1}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"token": "AB" * 32},  # upper-case hex
        {"token": "cd" * 80},  # live-activity tokens are longer
        {"apns_push_type": None},  # optional: defaults to alert
        {"apns_priority": "5"},
        {"apns_priority": "1"},
        {"apns_push_type": "background", "apns_priority": "5", "body": '{"aps": {"content-available": 1}}'},
        {"apns_expiration": "0"},
        {"apns_collapse_id": "c" * 64},
        {"body": payload_of_size(4096)},
        {"body": payload_of_size(5120), "apns_push_type": "voip", "apns_topic": BUNDLE + ".voip"},
        {"body": "{}"},  # Wallet and MDM pushes have no "aps"
    ],
)
async def test_valid_requests_are_accepted(
    sandbox: ApnsSandbox, send: Sender, kwargs: dict[str, Any]
) -> None:
    if "token" in kwargs:
        sandbox.issue_token(BUNDLE, token=kwargs["token"])  # the strict sandbox knows issued tokens only
    response = await send(**kwargs)
    assert response.status == 200, response.body
    assert response.body == b""
    assert len(sandbox.all_received()) == 1


@pytest.mark.parametrize("push_type", sorted(PUSH_TYPES))
async def test_every_push_type_with_its_topic_suffix(
    sandbox: ApnsSandbox, send: Sender, push_type: str
) -> None:
    rule = PUSH_TYPES[push_type]
    priority = str(rule.default_priority)
    response = await send(
        apns_push_type=push_type, apns_topic=BUNDLE + rule.topic_suffix, apns_priority=priority
    )
    assert response.status == 200, response.body
    (got,) = sandbox.all_received()
    assert (got.push_type, got.topic) == (push_type, BUNDLE + rule.topic_suffix)


async def test_accepted_notification_is_recorded_with_every_field(
    issue: Issue, sandbox: ApnsSandbox, send: Sender, clock: FakeClock
) -> None:
    token = issue()
    apns_id = "8E6B7D3C-5A4F-4B2E-9C1D-0F1E2D3C4B5A"
    response = await send(
        token.upper(),
        apns_id=apns_id,
        apns_expiration="1900000000",
        apns_priority="5",
        apns_collapse_id="score",
    )
    assert response.status == 200
    assert response.headers["apns-id"] == apns_id  # echoed as sent
    (got,) = sandbox.received(token)
    assert got.token == token  # stored in lower case, found either way
    assert sandbox.received(token.upper()) == [got]
    assert got.apns_id == apns_id
    assert (got.topic, got.push_type, got.priority) == (BUNDLE, "alert", 5)
    assert (got.expiration, got.collapse_id) == (1900000000, "score")
    assert got.payload == json.loads(ALERT)
    assert got.headers["apns-topic"] == BUNDLE
    assert "authorization" not in got.headers  # provider tokens are not kept
    assert got.at == clock.now
    assert got.stream_id == response.stream_id and got.connection_id == 1


async def test_generated_apns_id_is_a_lowercase_uuid(sandbox: ApnsSandbox, send: Sender) -> None:
    response = await send()
    assert UUID_RE.fullmatch(response.headers["apns-id"])
    assert sandbox.all_received()[0].apns_id == response.headers["apns-id"]


async def test_default_priority_depends_on_push_type(
    issue: Issue, sandbox: ApnsSandbox, send: Sender
) -> None:
    background = issue()
    assert (
        await send(background, apns_push_type="background", body='{"aps":{"content-available":1}}')
    ).status == 200
    alert = issue()
    assert (await send(alert, apns_push_type=None)).status == 200
    assert sandbox.received(background)[0].priority == 5
    assert (sandbox.received(alert)[0].priority, sandbox.received(alert)[0].push_type) == (10, None)


async def test_topic_of_another_team_is_disallowed(sandbox: ApnsSandbox, send: Sender) -> None:
    sandbox.add_topic("com.other.app", "OTHERTEAM1")
    response = await send(apns_topic="com.other.app")
    assert (response.status, response.reason) == (400, "TopicDisallowed")


async def test_development_environment_adds_apns_unique_id(tmp_path: Path) -> None:
    async with ApnsSandbox(environment="development") as sb:
        key = sb.create_key(TEAM, KEY_ID, tmp_path)
        sb.add_topic(BUNDLE, TEAM)
        client = await H2TestClient.connect(sb.url, sb.ca_file)
        try:
            headers = [("authorization", "bearer " + make_jwt(key, iat=time.time())), ("apns-topic", BUNDLE)]
            response = await client.request(
                "POST", "/3/device/" + sb.issue_token(BUNDLE), headers, ALERT.encode()
            )
        finally:
            await client.close()
    assert response.status == 200
    assert UUID_RE.fullmatch(response.headers["apns-unique-id"])
