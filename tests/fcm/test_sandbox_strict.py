"""The FCM sandbox refuses what FCM v1 refuses (the strict default), over real HTTPS sockets."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tokenshapes import apns_token, fcm_fid, fcm_token

from pushrelay.fcm import ServiceAccount
from pushrelay.sandbox.fcm import FcmSandbox

from .conftest import PROJECT


@pytest.fixture(scope="module")
def strict() -> Iterator[FcmSandbox]:
    with FcmSandbox.running() as sb:
        yield sb


@pytest.fixture
async def http(strict: FcmSandbox, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    key = strict.create_service_account(tmp_path, project_id=PROJECT)
    token = await ServiceAccount.from_file(key, ca_file=strict.ca_file).access_token()
    async with httpx.AsyncClient(
        base_url=strict.url,
        verify=ssl.create_default_context(cafile=strict.ca_file),
        headers={"authorization": f"Bearer {token}"},
    ) as client:
        yield client


async def send(http: httpx.AsyncClient, message: dict[str, Any]) -> httpx.Response:
    return await http.post(f"/v1/projects/{PROJECT}/messages:send", content=json.dumps({"message": message}))


def invalid(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    return error


@pytest.mark.parametrize(
    "token",
    ["phone-1", "not-a-token!", "0123abcd", apns_token("iphone"), "https://push.example/x", "topic:news"],
)
async def test_a_token_fcm_never_issues_is_invalid_argument(http: httpx.AsyncClient, token: str) -> None:
    error = invalid(await send(http, {"token": token}))
    assert error["details"][0]["errorCode"] == "INVALID_ARGUMENT"
    violations = error["details"][1]["fieldViolations"]
    assert {"field": "message.token", "description": "Invalid registration token"} in violations


async def test_an_fcm_shaped_token_is_accepted(http: httpx.AsyncClient, strict: FcmSandbox) -> None:
    token = fcm_token("pixel")
    response = await send(http, {"token": token, "data": {"a": "b"}})
    assert response.status_code == 200, response.text
    assert [r.data for r in strict.received(token)][-1] == {"a": "b"}


async def test_an_fcm_shaped_token_can_be_unregistered(http: httpx.AsyncClient, strict: FcmSandbox) -> None:
    token = fcm_token("uninstalled")
    strict.script(token, "unregistered")
    try:
        response = await send(http, {"token": token})
    finally:
        strict.unscript(token)
    assert response.status_code == 404
    assert response.json()["error"]["details"][0]["errorCode"] == "UNREGISTERED"


async def test_an_fid_is_a_target_of_its_own(http: httpx.AsyncClient, strict: FcmSandbox) -> None:
    # FCM v1 takes a Firebase Installation ID in message.fid (firebase-admin 7.7 sends it there)
    fid = fcm_fid("pixel")
    response = await send(http, {"fid": fid, "data": {"a": "b"}})
    assert response.status_code == 200, response.text
    assert [r.data for r in strict.received(fid)][-1] == {"a": "b"}
    for bad in ("phone-1", "a" + fid[1:], fid + "x", fcm_token("pixel")):
        error = invalid(await send(http, {"fid": bad}))
        assert error["details"][1]["fieldViolations"][0]["field"] == "message.fid"
    error = invalid(await send(http, {"fid": fid, "token": fcm_token("pixel")}))
    assert "Exactly one of" in error["message"]


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"webpush": {"data": {"n": 3}}}, "message.webpush.data[0].value"),
        ({"webpush": {"headers": {"TTL": 60}}}, "message.webpush.headers[0].value"),
        ({"apns": {"headers": {"apns-priority": 10}}}, "message.apns.headers[0].value"),
        ({"webpush": {"fcm_options": {"link": "http://example.com/a"}}}, "message.webpush.fcm_options.link"),
        ({"webpush": {"fcm_options": {"link": 7}}}, "message.webpush.fcm_options.link"),
        ({"webpush": {"tll": "60"}}, "message.webpush"),
    ],
)
async def test_non_string_values_and_http_links_are_refused(
    http: httpx.AsyncClient, strict: FcmSandbox, message: dict[str, Any], field: str
) -> None:
    token = fcm_token("refused")
    error = invalid(await send(http, {"token": token, **message}))
    assert field in error["message"] or any(
        v["field"] == field for v in error["details"][1]["fieldViolations"]
    ), error
    assert strict.received(token) == []


async def test_the_same_values_as_strings_are_accepted(http: httpx.AsyncClient) -> None:
    message = {
        "token": fcm_token("fine"),
        "webpush": {
            "data": {"n": "3"},
            "headers": {"TTL": "60"},
            "fcm_options": {"link": "https://example.com/a"},
        },
        "apns": {"headers": {"apns-priority": "10"}},
    }
    assert (await send(http, message)).status_code == 200


def condition(n: int) -> str:
    return " || ".join(f"'t{i}' in topics" for i in range(n))


async def test_a_condition_has_at_most_five_topics(http: httpx.AsyncClient) -> None:
    assert (await send(http, {"condition": condition(5)})).status_code == 200
    error = invalid(await send(http, {"condition": condition(6)}))
    assert "condition" in error["message"]


async def test_lenient_sandbox_takes_any_token_of_fcm_characters(tmp_path: Path) -> None:
    with FcmSandbox.running(lenient=True) as lenient:
        key = lenient.create_service_account(tmp_path, project_id=PROJECT)
        token = await ServiceAccount.from_file(key, ca_file=lenient.ca_file).access_token()
        async with httpx.AsyncClient(
            base_url=lenient.url,
            verify=ssl.create_default_context(cafile=lenient.ca_file),
            headers={"authorization": f"Bearer {token}"},
        ) as client:
            assert (await send(client, {"token": "phone-1"})).status_code == 200
            # the schema is checked in both modes
            invalid(await send(client, {"token": "phone-1", "webpush": {"data": {"n": 3}}}))
