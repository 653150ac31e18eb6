"""FcmClient against the FCM sandbox over real sockets: outcomes, tokens, topics, batches."""

from __future__ import annotations

import socket

import pytest
from tokenshapes import fcm_token

from pushrelay import ConfigurationError, Notification, NotificationError, Outcome
from pushrelay.fcm import FcmClient, FcmTarget, HttpxTransport, ServiceAccount
from pushrelay.sandbox.fcm import FcmSandbox

N = Notification(title="Hello", body="from pushrelay", user_info={"dataClass": "Employee"})


@pytest.mark.parametrize(
    ("behaviour", "status", "outcome", "reason"),
    [
        ("unregistered", 404, Outcome.TOKEN_DEAD, "UNREGISTERED"),
        ("sender_id_mismatch", 403, Outcome.TOKEN_DEAD, "SENDER_ID_MISMATCH"),
        ("invalid_token", 400, Outcome.TOKEN_DEAD, "INVALID_ARGUMENT"),
        ("unavailable", 503, Outcome.RETRY, "UNAVAILABLE"),
        ("internal", 500, Outcome.RETRY, "INTERNAL"),
        ("quota_exceeded", 429, Outcome.RETRY, "QUOTA_EXCEEDED"),
        ("third_party_auth_error", 401, Outcome.CONFIG_BROKEN, "THIRD_PARTY_AUTH_ERROR"),
    ],
)
async def test_every_error_class(
    behaviour: str, status: int, outcome: Outcome, reason: str, fcm_sandbox: FcmSandbox, fcm: FcmClient
) -> None:
    fcm_sandbox.script(fcm_token("tok"), behaviour)
    result = await fcm.send(N, fcm_token("tok"))
    assert (result.status, result.outcome) == (status, outcome)
    assert result.reason is not None and result.reason.startswith(reason)
    assert result.attempts == 1  # a 401 THIRD_PARTY_AUTH_ERROR is not an access-token problem: no refresh
    assert fcm_sandbox.received(fcm_token("tok")) == []


async def test_invalid_argument_not_about_the_token_rejects_the_payload(
    fcm_sandbox: FcmSandbox, fcm: FcmClient
) -> None:
    # A topic target: FCM's INVALID_ARGUMENT cannot be about a registration token.
    fcm_sandbox.script("topic:news", "invalid_token")
    result = await fcm.send(N, "topic:news")
    assert result.outcome is Outcome.PAYLOAD_REJECTED


@pytest.mark.parametrize(("retry_after", "expected"), [(None, 60.0), (5, 60.0), (120, 120.0)])
async def test_quota_backoff_is_at_least_a_minute(
    retry_after: int | None, expected: float, fcm_sandbox: FcmSandbox, fcm: FcmClient
) -> None:
    fcm_sandbox.script(fcm_token("busy"), "quota_exceeded", times=1, retry_after=retry_after)
    first = await fcm.send(N, fcm_token("busy"))
    assert first.outcome is Outcome.RETRY and first.retry_after == expected
    second = await fcm.send(N, fcm_token("busy"))  # the script was for one answer only
    assert second.ok


async def test_unavailable_honours_retry_after(fcm_sandbox: FcmSandbox, fcm: FcmClient) -> None:
    fcm_sandbox.script(fcm_token("tok"), "unavailable", retry_after=7)
    result = await fcm.send(N, fcm_token("tok"))
    assert result.outcome is Outcome.RETRY and result.retry_after == 7.0


async def test_topic_and_condition_sends(fcm_sandbox: FcmSandbox, fcm: FcmClient) -> None:
    assert (await fcm.send(N, "topic:news")).ok
    assert (await fcm.send(N, "/topics/sport")).ok
    condition = "'news' in topics && 'fr' in topics"
    result = await fcm.send(N, FcmTarget.condition(condition))
    assert result.ok and result.token == f"condition:{condition}"
    assert fcm_sandbox.received("topic:news")[0].message["topic"] == "news"
    assert fcm_sandbox.received("topic:sport")[0].message["topic"] == "sport"
    assert fcm_sandbox.received(f"condition:{condition}")[0].message["condition"] == condition
    with pytest.raises(NotificationError) as info:
        await fcm.send(N, "topic:bad name!")
    assert info.value.field == "topic"


async def test_validate_only(fcm_sandbox: FcmSandbox, service_account: ServiceAccount) -> None:
    async with FcmClient(
        service_account, base_url=fcm_sandbox.url, ca_file=fcm_sandbox.ca_file, validate_only=True
    ) as client:
        assert (await client.send(N, fcm_token("tok"))).ok
    (got,) = fcm_sandbox.received(fcm_token("tok"))
    assert got.validate_only


async def test_empty_token_is_dead_without_a_request(fcm_sandbox: FcmSandbox, fcm: FcmClient) -> None:
    result = await fcm.send(N, "")
    assert result.outcome is Outcome.TOKEN_DEAD
    assert fcm_sandbox.stats == {}


async def test_invalid_notification_raises(fcm: FcmClient) -> None:
    with pytest.raises(NotificationError):
        await fcm.send(Notification(title="x", user_info={"gcm.key": 1}), fcm_token("tok"))


async def test_send_many_tags_and_outcomes(fcm_sandbox: FcmSandbox, fcm: FcmClient) -> None:
    fcm_sandbox.script(fcm_token("tok-7"), "unregistered")
    items = [(N, fcm_token(f"tok-{i}"), i) for i in range(40)]
    items.append((Notification(title="x", user_info={"from": "me"}), fcm_token("tok-bad"), "bad"))
    results = {r.tag: r async for r in fcm.send_many(items, concurrency=8)}
    assert set(results) == {*range(40), "bad"}
    assert results[7].outcome is Outcome.TOKEN_DEAD
    assert results["bad"].outcome is Outcome.PAYLOAD_REJECTED and "data.from" in (results["bad"].reason or "")
    assert all(results[i].ok for i in range(40) if i != 7)
    assert len(fcm_sandbox.all_received()) == 39


async def test_send_many_accepts_an_async_iterable(fcm_sandbox: FcmSandbox, fcm: FcmClient) -> None:
    async def items():  # type: ignore[no-untyped-def]
        for i in range(5):
            yield N, f"a-{i}", i

    assert sorted([r.tag async for r in fcm.send_many(items())]) == [0, 1, 2, 3, 4]


async def test_wrong_project_is_a_configuration_error(
    fcm_sandbox: FcmSandbox, service_account: ServiceAccount
) -> None:
    async with FcmClient(
        service_account, project_id="someone-else", base_url=fcm_sandbox.url, ca_file=fcm_sandbox.ca_file
    ) as client:
        result = await client.send(N, fcm_token("tok"))
    assert (result.status, result.outcome) == (403, Outcome.CONFIG_BROKEN)
    assert result.reason is not None and result.reason.startswith("PERMISSION_DENIED")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_fcm_is_retried_later(
    fcm_sandbox: FcmSandbox, service_account: ServiceAccount
) -> None:
    async with FcmClient(
        service_account, base_url=f"https://127.0.0.1:{_closed_port()}", ca_file=fcm_sandbox.ca_file
    ) as client:
        result = await client.send(N, fcm_token("tok"))
    assert result.outcome is Outcome.RETRY and result.status == 0
    assert "connect" in (result.reason or "").lower()


async def test_untrusted_certificate_is_never_accepted(
    fcm_sandbox: FcmSandbox, service_account: ServiceAccount
) -> None:
    # The access token comes from the sandbox (its CA is trusted there); FCM itself is reached
    # without that CA: TLS verification must refuse it, and the bearer token must not leave.
    async with FcmClient(service_account, base_url=fcm_sandbox.url) as client:
        result = await client.send(N, fcm_token("tok"))
    assert result.outcome is Outcome.RETRY
    assert "certificate" in (result.reason or "").lower()
    assert fcm_sandbox.stats == {}


async def test_httpx_transport_is_a_drop_in(fcm_sandbox: FcmSandbox, service_account: ServiceAccount) -> None:
    transport = HttpxTransport(fcm_sandbox.url, ca_file=fcm_sandbox.ca_file)
    fcm_sandbox.script(fcm_token("dead"), "unregistered")
    async with FcmClient(service_account, transport=transport) as client:
        assert (await client.send(N, fcm_token("tok"))).ok
        assert (await client.send(N, fcm_token("dead"))).outcome is Outcome.TOKEN_DEAD
    assert fcm_sandbox.received(fcm_token("tok"))[0].http_version == "HTTP/2"


def test_project_id_must_be_one(service_account: ServiceAccount) -> None:
    with pytest.raises(ConfigurationError) as info:
        FcmClient(service_account, project_id="../../admin")
    assert info.value.field == "project_id"
