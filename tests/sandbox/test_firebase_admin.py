"""The FCM sandbox's strict rules, seen through firebase-admin, Google's own Admin SDK.

``firebase_admin.messaging`` talks to the sandbox as it talks to Google: the service-account JSON
names the sandbox's OAuth endpoint as its ``token_uri`` (google-auth mints the access token there),
the SDK's own HTTP clients (requests for ``send``, httpx over HTTP/2 for ``send_each_async``) carry
the messages, and the SDK's own error mapping turns the answers into its exception types. So each
assertion on ``InvalidArgumentError``, ``UnregisteredError``... proves the sandbox answers in
Google's wire format, not only that it refuses.

What differs from production is the FCM URL (the SDK has no public option for it: the private
``_MessagingService._fcm_url`` is set) and the CA to trust (``REQUESTS_CA_BUNDLE`` for requests,
``SSL_CERT_FILE`` for httpx, set for each test alone). Verification stays on.
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import firebase_admin
import httpx
import pytest
import requests
from firebase_admin import credentials, exceptions, messaging
from tokenshapes import apns_token, fcm_fid, fcm_token

from pushrelay.sandbox.fcm import FcmSandbox

PROJECT = "demo-project"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[FcmSandbox]:
    with FcmSandbox.running() as sb:
        yield sb


@pytest.fixture
def app(sandbox: FcmSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A firebase-admin app whose messaging service sends to the sandbox."""
    sandbox.reset()
    key = sandbox.create_service_account(tmp_path, project_id=PROJECT)
    # requests reads REQUESTS_CA_BUNDLE at each request; httpx reads SSL_CERT_FILE when the SDK
    # builds its HTTP/2 transport (below, in _get_messaging_service): both before any request
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(sandbox.ca_file))
    instance = firebase_admin.initialize_app(credentials.Certificate(str(key)), name=tmp_path.name)
    service = messaging._get_messaging_service(instance)
    # firebase-admin has no endpoint option: its URL is a private attribute of the service
    service._fcm_url = f"{sandbox.url}/v1/projects/{PROJECT}/messages:send"
    yield instance
    service._client.close()  # the requests session (delete_app closes only the httpx client)
    firebase_admin.delete_app(instance)


def token_message(token: str, **fields: Any) -> Any:
    """``Message(token=...)``: deprecated by firebase-admin 7.7 for ``fid``, still what pushrelay
    sends (and FCM takes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return messaging.Message(token=token, **fields)


def received(sandbox: FcmSandbox, target: str) -> list[dict[str, Any]]:
    """What the sandbox took for ``target``, asked through its control API (as another process would)."""
    context = ssl.create_default_context(cafile=str(sandbox.ca_file))
    with httpx.Client(base_url=sandbox.url, verify=context, trust_env=False) as control:
        answer = control.get("/_sandbox/received", params={"target": target})
    answer.raise_for_status()
    records: list[dict[str, Any]] = answer.json()["received"]
    return records


def send_raw(app: Any, message: dict[str, Any]) -> str:
    """POST ``message`` as it is, for what the SDK's encoder refuses before sending: through the
    SDK's own authorised HTTP client and its own error mapping, as ``_MessagingService.send`` does
    once the message is encoded."""
    service = messaging._get_messaging_service(app)
    try:
        answer = service._client.body(
            "post", url=service._fcm_url, headers=dict(service._fcm_headers), json={"message": message}
        )
    except requests.exceptions.RequestException as error:
        raise service._handle_fcm_error(error) from None
    return str(answer["name"])


def violations(error: exceptions.FirebaseError) -> list[str]:
    """The fields a google.rpc.BadRequest detail of the answer names."""
    assert error.http_response is not None
    details = error.http_response.json()["error"].get("details", [])
    return [v["field"] for d in details for v in d.get("fieldViolations", [])]


def test_a_message_to_an_fid_a_token_and_a_topic_is_delivered(app: Any, sandbox: FcmSandbox) -> None:
    fid, token = fcm_fid("pixel"), fcm_token("pixel")
    names = [
        messaging.send(messaging.Message(fid=fid, data={"n": "1"}), app=app),
        messaging.send(
            token_message(token, notification=messaging.Notification(title="hi", body="there")), app=app
        ),
        messaging.send(messaging.Message(topic="news", data={"n": "3"}), app=app),
    ]
    assert all(name.startswith(f"projects/{PROJECT}/messages/") for name in names), names
    assert [r["message"]["data"] for r in received(sandbox, fid)] == [{"n": "1"}]
    assert [r["message"]["notification"] for r in received(sandbox, token)] == [
        {"title": "hi", "body": "there"}
    ]
    (news,) = received(sandbox, "topic:news")
    assert (news["name"], news["validate_only"], news["project_id"]) == (names[2], False, PROJECT)


def test_dry_run_is_validated_and_flagged_not_delivered(app: Any, sandbox: FcmSandbox) -> None:
    fid = fcm_fid("dry")
    messaging.send(messaging.Message(fid=fid, data={"n": "1"}), dry_run=True, app=app)
    assert [r["validate_only"] for r in received(sandbox, fid)] == [True]
    with pytest.raises(exceptions.InvalidArgumentError):
        messaging.send(messaging.Message(fid="phone-1"), dry_run=True, app=app)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("token", "phone-1"),
        ("token", "0123abcd"),
        ("token", apns_token("iphone")),  # an APNs token sent as an FCM one
        ("token", "https://push.example/x"),  # a Web Push endpoint
        ("fid", "phone-1"),
        ("fid", "a" + fcm_fid("x")[1:]),  # 22 characters, but not 0111 in the first 4 bits
        ("fid", fcm_token("long")),  # a registration token sent as an FID
    ],
)
def test_a_token_or_fid_fcm_never_issues_is_invalid_argument(
    app: Any, sandbox: FcmSandbox, field: str, value: str
) -> None:
    message = token_message(value) if field == "token" else messaging.Message(fid=value)
    with pytest.raises(exceptions.InvalidArgumentError) as refused:
        messaging.send(message, app=app)
    assert refused.value.code == exceptions.INVALID_ARGUMENT
    assert refused.value.http_response.status_code == 400
    assert f"message.{field}" in violations(refused.value)
    assert sandbox.all_received() == []


# firebase-admin's encoder refuses these itself (ValueError, nothing sent): the sandbox's refusal
# is shown by sending the same message raw, through the SDK's transport and error mapping.
SDK_REFUSES: dict[str, tuple[Callable[[str], Any], dict[str, Any], dict[str, Any], str]] = {
    "webpush.data": (
        lambda fid: messaging.Message(fid=fid, webpush=messaging.WebpushConfig(data={"n": 3})),
        {"webpush": {"data": {"n": 3}}},
        {"webpush": {"data": {"n": "3"}}},
        "message.webpush.data[0].value",
    ),
    "webpush.headers": (
        lambda fid: messaging.Message(fid=fid, webpush=messaging.WebpushConfig(headers={"TTL": 60})),
        {"webpush": {"headers": {"TTL": 60}}},
        {"webpush": {"headers": {"TTL": "60"}}},
        "message.webpush.headers[0].value",
    ),
    "apns.headers": (
        lambda fid: messaging.Message(fid=fid, apns=messaging.APNSConfig(headers={"apns-priority": 10})),
        {"apns": {"headers": {"apns-priority": 10}}},
        {"apns": {"headers": {"apns-priority": "10"}}},
        "message.apns.headers[0].value",
    ),
    "webpush.fcm_options.link": (
        lambda fid: messaging.Message(
            fid=fid,
            webpush=messaging.WebpushConfig(
                fcm_options=messaging.WebpushFCMOptions(link="http://x.example/a")
            ),
        ),
        {"webpush": {"fcm_options": {"link": "http://x.example/a"}}},
        {"webpush": {"fcm_options": {"link": "https://x.example/a"}}},
        "message.webpush.fcm_options.link",
    ),
}


@pytest.mark.parametrize(("build", "bad", "good", "field"), SDK_REFUSES.values(), ids=SDK_REFUSES.keys())
def test_non_string_values_and_http_links_are_invalid_argument(
    app: Any,
    sandbox: FcmSandbox,
    build: Callable[[str], Any],
    bad: dict[str, Any],
    good: dict[str, Any],
    field: str,
) -> None:
    fid = fcm_fid("refused")
    with pytest.raises(ValueError, match=r"must not contain non-string values|must be a HTTPS URL"):
        messaging.send(build(fid), app=app)
    with pytest.raises(exceptions.InvalidArgumentError) as refused:
        send_raw(app, {"fid": fid, **bad})
    assert field in violations(refused.value)
    assert sandbox.all_received() == []
    # the same message with text values and an https:// link goes through the same path
    assert send_raw(app, {"fid": fid, **good}).startswith(f"projects/{PROJECT}/messages/")


def condition(topics: int) -> str:
    return " || ".join(f"'t{i}' in topics" for i in range(topics))


def test_a_condition_has_at_most_five_topics(app: Any, sandbox: FcmSandbox) -> None:
    # firebase-admin checks only that a condition is non-empty text: the sandbox has the rule
    messaging.send(messaging.Message(condition=condition(5)), app=app)
    with pytest.raises(exceptions.InvalidArgumentError) as refused:
        messaging.send(messaging.Message(condition=condition(6)), app=app)
    assert "message.condition" in violations(refused.value)
    assert [r.target for r in sandbox.all_received()] == [f"condition:{condition(5)}"]


@pytest.mark.parametrize(
    ("behaviour", "error", "code"),
    [
        ("unregistered", messaging.UnregisteredError, exceptions.NOT_FOUND),
        ("sender_id_mismatch", messaging.SenderIdMismatchError, exceptions.PERMISSION_DENIED),
        ("quota_exceeded", messaging.QuotaExceededError, exceptions.RESOURCE_EXHAUSTED),
        ("third_party_auth_error", messaging.ThirdPartyAuthError, exceptions.UNAUTHENTICATED),
        ("invalid_token", exceptions.InvalidArgumentError, exceptions.INVALID_ARGUMENT),
    ],
)
def test_scripted_failures_reach_the_sdk_as_its_own_errors(
    app: Any, sandbox: FcmSandbox, behaviour: str, error: type[Exception], code: str
) -> None:
    fid, token = fcm_fid(behaviour), fcm_token(behaviour)
    sandbox.script(fid, behaviour)
    sandbox.script(token, behaviour)
    for message in (messaging.Message(fid=fid), token_message(token)):
        with pytest.raises(error) as refused:
            messaging.send(message, app=app)
        assert isinstance(refused.value, exceptions.FirebaseError)
        assert refused.value.code == code
    assert sandbox.all_received() == []


async def test_send_each_async_over_http2_maps_each_answer(app: Any, sandbox: FcmSandbox) -> None:
    good, gone = fcm_fid("good"), fcm_fid("gone")
    sandbox.script(gone, "unregistered")
    service = messaging._get_messaging_service(app)
    try:
        batch = await messaging.send_each_async(
            [
                messaging.Message(fid=good, data={"n": "1"}),
                token_message("phone-1"),
                messaging.Message(fid=gone),
            ],
            app=app,
        )
    finally:
        # close the HTTP/2 connection on this loop (delete_app would close it on a new one)
        await service._async_client.aclose()
    assert [type(r.exception) for r in batch.responses] == [
        type(None),
        exceptions.InvalidArgumentError,
        messaging.UnregisteredError,
    ]
    assert (batch.success_count, batch.failure_count) == (1, 2)
    assert [(r["message"]["data"], r["http_version"]) for r in received(sandbox, good)] == [
        ({"n": "1"}, "HTTP/2")
    ]
