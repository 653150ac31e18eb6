"""Device tokens in log lines: one mask, its width chosen by the caller."""

from __future__ import annotations

import logging

import pytest

from pushrelay.logs import event, get_logger, mask_token

APNS = "a1b2c3d4" + "0" * 52 + "7f8e"


def test_the_default_mask_keeps_four_and_four() -> None:
    assert mask_token(APNS) == "a1b2…7f8e"


def test_the_attempt_lines_keep_six_and_four() -> None:
    assert mask_token(APNS, head=6) == "a1b2c3…7f8e"


@pytest.mark.parametrize(("value", "head"), [("0123456789abcdef", 4), ("0123456789abcdefghij", 6)])
def test_a_value_that_would_show_as_much_as_it_hides_is_fully_hidden(value: str, head: int) -> None:
    assert mask_token(value, head=head) == "…"
    assert mask_token(value + "x", head=head) == f"{value[:head]}…{(value + 'x')[-4:]}"


@pytest.mark.parametrize("value", [None, ""])
def test_nothing_masks_to_nothing(value: str | None) -> None:
    assert mask_token(value) == ""


def test_events_mask_values_under_secret_keys(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pushrelay")
    event(get_logger("test"), logging.INFO, "device.seen", token=APNS, app="myapp")
    (record,) = caplog.records
    assert record.fields == {"token": "a1b2…7f8e", "app": "myapp"}  # type: ignore[attr-defined]
    assert APNS not in caplog.text


def test_a_web_push_endpoint_keeps_only_its_push_service_host() -> None:
    endpoint = "https://fcm.googleapis.com/fcm/send/secret-subscription-part-x7Yz"
    assert mask_token(endpoint) == "https://fcm.googleapis.com/…x7Yz"
    assert "secret" not in mask_token(endpoint, head=6)
