"""The FCM sandbox checks what FCM checks, whatever client talks to it (raw HTTP/1.1 and HTTP/2 here)."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tokenshapes import fcm_token

from pushrelay.fcm import ServiceAccount
from pushrelay.sandbox.fcm import FcmSandbox

from .conftest import PROJECT


@pytest.fixture
async def http(fcm_sandbox: FcmSandbox, service_account: ServiceAccount) -> AsyncIterator[httpx.AsyncClient]:
    token = await service_account.access_token()
    async with httpx.AsyncClient(
        base_url=fcm_sandbox.url,
        verify=ssl.create_default_context(cafile=fcm_sandbox.ca_file),
        headers={"authorization": f"Bearer {token}"},
    ) as client:
        yield client


async def send(http: httpx.AsyncClient, doc: Any) -> httpx.Response:
    return await http.post(f"/v1/projects/{PROJECT}/messages:send", content=json.dumps(doc))


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ({"data": {"a": "b"}}, "Exactly one of message.token"),
        ({"token": fcm_token("t"), "topic": "x"}, "Exactly one of message.token"),
        (
            {"token": fcm_token("t"), "data": {"n": 3}},
            "Invalid value at 'message.data[0].value' (TYPE_STRING), 3",
        ),
        ({"token": fcm_token("t"), "data": {"from": "x"}}, "Invalid data payload key: from"),
        (
            {"token": fcm_token("t"), "notification": {"title": "a", "subtitle": "b"}},
            'Unknown name "subtitle"',
        ),
        ({"token": fcm_token("t"), "android": {"priority": "urgent"}}, "AndroidMessagePriority"),
        ({"token": fcm_token("t"), "android": {"ttl": "90"}}, "google.protobuf.Duration"),
        ({"token": fcm_token("t"), "data": {"big": "x" * 4100}}, "Message is too big"),
        ({"token": fcm_token("t"), "tokne": "x"}, 'Unknown name "tokne"'),
    ],
)
async def test_schema_errors_are_invalid_argument(
    http: httpx.AsyncClient, fcm_sandbox: FcmSandbox, message: dict[str, Any], fragment: str
) -> None:
    response = await send(http, {"message": message})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and fragment in error["message"]
    assert fcm_sandbox.all_received() == []


async def test_malformed_token_is_named(http: httpx.AsyncClient) -> None:
    response = await send(http, {"message": {"token": "not a token"}})
    details = response.json()["error"]["details"]
    assert {"field": "message.token", "description": "Invalid registration token"} in details[1][
        "fieldViolations"
    ]


async def test_bearer_token_is_required(fcm_sandbox: FcmSandbox) -> None:
    async with httpx.AsyncClient(
        base_url=fcm_sandbox.url, verify=ssl.create_default_context(cafile=fcm_sandbox.ca_file), http2=True
    ) as client:
        response = await client.post(
            f"/v1/projects/{PROJECT}/messages:send", json={"message": {"token": fcm_token("t")}}
        )
        wrong = await client.post(
            f"/v1/projects/{PROJECT}/messages:send",
            json={"message": {"token": fcm_token("t")}},
            headers={"authorization": "Bearer ya29.made-up"},
        )
    assert response.status_code == wrong.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert response.http_version == "HTTP/2"


async def test_http1_clients_are_served_too(http: httpx.AsyncClient, fcm_sandbox: FcmSandbox) -> None:
    response = await send(
        http, {"message": {"token": fcm_token("t"), "data": {"k": "v"}}, "validate_only": False}
    )
    assert response.status_code == 200 and response.http_version == "HTTP/1.1"
    assert response.json()["name"].startswith(f"projects/{PROJECT}/messages/")
    (got,) = fcm_sandbox.received(fcm_token("t"))
    assert got.data == {"k": "v"} and got.http_version == "HTTP/1.1"
    assert "authorization" not in got.headers  # the sandbox does not keep bearer tokens


def test_script_refuses_unknown_behaviours(fcm_sandbox: FcmSandbox) -> None:
    with pytest.raises(ValueError, match="behaviour must be one of"):
        fcm_sandbox.script("t", "explode")
