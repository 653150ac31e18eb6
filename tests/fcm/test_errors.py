"""The FCM error table: classification of error bodies and Retry-After."""

from __future__ import annotations

import json

import pytest

from pushrelay import Outcome
from pushrelay.fcm.errors import ERROR_CODES, classify, parse_error, parse_retry_after


def body(
    status: int, rpc: str, code: str | None = None, message: str = "", field: str | None = None
) -> bytes:
    details: list[dict[str, object]] = []
    if code:
        details.append({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code})
    if field:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": field}]}
        )
    return json.dumps(
        {"error": {"code": status, "message": message, "status": rpc, "details": details}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "raw", "is_token", "outcome"),
    [
        (404, body(404, "NOT_FOUND", "UNREGISTERED"), True, Outcome.TOKEN_DEAD),
        (404, body(404, "NOT_FOUND"), True, Outcome.CONFIG_BROKEN),  # no such project
        (403, body(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), True, Outcome.TOKEN_DEAD),
        (403, body(403, "PERMISSION_DENIED"), True, Outcome.CONFIG_BROKEN),
        (
            400,
            body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", field="message.token"),
            True,
            Outcome.TOKEN_DEAD,
        ),
        (
            400,
            body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", field="message.data"),
            True,
            Outcome.PAYLOAD_REJECTED,
        ),
        (
            400,
            body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", field="message.token"),
            False,
            Outcome.PAYLOAD_REJECTED,
        ),
        (
            400,
            body(400, "INVALID_ARGUMENT", message="The registration token is not valid"),
            True,
            Outcome.TOKEN_DEAD,
        ),
        (429, body(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), True, Outcome.RETRY),
        (503, body(503, "UNAVAILABLE", "UNAVAILABLE"), True, Outcome.RETRY),
        (500, body(500, "INTERNAL", "INTERNAL"), True, Outcome.RETRY),
        (401, body(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), True, Outcome.CONFIG_BROKEN),
        (401, body(401, "UNAUTHENTICATED"), True, Outcome.CONFIG_BROKEN),
        (502, b"<html>Bad gateway</html>", True, Outcome.RETRY),
        (413, b"", True, Outcome.PAYLOAD_REJECTED),
        (418, b"", True, Outcome.FAILED),
    ],
)
def test_classify(status: int, raw: bytes, is_token: bool, outcome: Outcome) -> None:
    assert classify(parse_error(status, raw), is_token=is_token) is outcome


def test_every_documented_error_code_is_in_the_table() -> None:
    assert set(ERROR_CODES) == {
        "UNSPECIFIED_ERROR", "INVALID_ARGUMENT", "UNREGISTERED", "SENDER_ID_MISMATCH", "QUOTA_EXCEEDED",
        "UNAVAILABLE", "INTERNAL", "THIRD_PARTY_AUTH_ERROR",
    }  # fmt: skip


def test_reason_text() -> None:
    error = parse_error(404, body(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."))
    assert error.reason == "UNREGISTERED: Requested entity was not found."
    assert parse_error(502, b"oops").reason == "HTTP 502"


def test_retry_after() -> None:
    assert parse_retry_after("120", now=0) == 120.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:02:00 GMT", now=60.0) == 60.0
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None
