"""The inbox log: newest first, bounded (older entries let go and counted), per-device tallies,
reasons read from each provider's answer, and no credential in what it shows."""

from __future__ import annotations

import json

import pytest

from pushrelay.sandbox.records import InboxLog, fcm_target


def test_bounded_newest_first_with_device_tallies() -> None:
    log = InboxLog(limit=3, clock=lambda: 1000.0)
    for n in range(5):
        status = 200 if n % 2 == 0 else 410
        log.observe(
            "apns",
            "ab" * 32,
            "POST",
            "/3/device/" + "ab" * 32,
            status,
            [],
            b"{}",
            b'{"reason":"Unregistered"}',
        )
    assert [e.id for e in log.entries()] == [5, 4, 3]
    assert log.dropped == 2 and log.total == 5 and log.last_id == 5
    assert [e.id for e in log.entries(after=3)] == [5, 4]
    assert [e.id for e in log.entries(before=5, limit=1)] == [4]
    (device,) = log.devices()
    assert (device.accepted, device.refused) == (3, 2)  # counted even for entries let go
    assert log.get(4) is not None and log.get(1) is None
    with pytest.raises(ValueError, match="limit"):
        InboxLog(limit=0)


def test_filter_by_device_and_labels() -> None:
    log = InboxLog()
    log.add_device("webpush", "sub1", "Browser")
    log.observe("webpush", "sub1", "POST", "/wp/sub1", 201, [], b"hi")
    log.observe("fcm", "tok", "POST", "/v1/projects/p/messages:send", 200, [], b"{}")
    assert [e.platform for e in log.entries(platform="webpush", device="sub1")] == ["webpush"]
    assert log.label("webpush", "sub1") == "Browser"
    assert [d.platform for d in log.devices()] == ["fcm", "webpush"]  # the most recently active first


def test_reasons_per_provider() -> None:
    log = InboxLog()
    fcm_error = {"error": {"code": 429, "message": "Message rate exceeded for the project.", "status": "RESOURCE_EXHAUSTED",
                           "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "QUOTA_EXCEEDED"}]}}  # fmt: skip
    log.observe(
        "apns",
        "t",
        "POST",
        "/3/device/t",
        400,
        [("authorization", "bearer x")],
        b"{}",
        b'{"reason":"BadDeviceToken"}',
    )
    log.observe("fcm", "t", "POST", "/", 429, [], b"{}", json.dumps(fcm_error).encode())
    log.observe("webpush", "s", "POST", "/wp/s", 410, [], b"", b'{"error":"gone"}')
    log.observe("apns", "t", "POST", "/3/device/t", 0, [], b"{}", note="scripted: GOAWAY")
    gone, quota, bad_token = log.entries()[1:]
    assert bad_token.reason() == "BadDeviceToken" and bad_token.request_headers() == []
    assert quota.reason() == "QUOTA_EXCEEDED" and quota.detail() == "Message rate exceeded for the project."
    assert gone.reason() == "gone"
    assert log.entries()[0].reason() == "scripted: GOAWAY"


def test_fcm_target() -> None:
    assert fcm_target(b'{"message":{"token":"abc"}}') == "abc"
    assert fcm_target(b'{"message":{"topic":"news"}}') == "topic:news"
    assert fcm_target(b"not json") == "" and fcm_target(b"[]") == ""
