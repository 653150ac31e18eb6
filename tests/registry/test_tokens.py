"""Recognising and normalising tokens and e-mail addresses (pure functions)."""

from __future__ import annotations

import base64

import pytest
from tokenshapes import fcm_token

from pushrelay.fcm.target import registration_token_problem
from pushrelay.registry.tokens import (
    InvalidDeviceError,
    guess_platform,
    is_apns_token,
    is_email,
    is_simulator_id,
    mask_token,
    normalize_email,
    normalize_token,
    token_hash,
    validate_web_keys,
)

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "text", ["test@4d.com", "first.last+tag@mail.example.co.uk", "a_b-c@x-y.io", "UPPER@Example.COM"]
)
def test_emails(text: str) -> None:
    assert is_email(text)


@pytest.mark.parametrize(
    "text", [HEX, "test@4d", "@4d.com", "a@b@c.com", "a b@c.com", "a@-x.com", "booted", "", "x@y.c"]
)
def test_not_emails(text: str) -> None:
    assert not is_email(text)


def test_email_normalisation_is_trim_and_lowercase() -> None:
    assert normalize_email("  Test@4D.com ") == "test@4d.com"


def test_apns_tokens_are_normalised_from_nsdata_description() -> None:
    decorated = "<" + " ".join(HEX.upper()[i : i + 8] for i in range(0, 64, 8)) + ">"
    assert is_apns_token(decorated)
    assert normalize_token("ios", decorated) == HEX


def test_apns_token_lengths() -> None:
    assert is_apns_token("ab" * 32) and is_apns_token("ab" * 50)
    assert not is_apns_token("ab" * 31)  # too short
    assert not is_apns_token("a" * 65)  # odd
    assert not is_apns_token("g" * 64)  # not hex


def test_bad_ios_token_names_the_field() -> None:
    with pytest.raises(InvalidDeviceError, match="hexadecimal") as info:
        normalize_token("ios", "not-a-token")
    assert info.value.field == "token"


def test_simulator_ids() -> None:
    udid = "a1b2c3d4-1111-2222-3333-444455556666"
    assert is_simulator_id(udid) and is_simulator_id("booted")
    assert normalize_token("ios", udid) == udid.upper()
    assert normalize_token("ios", "booted", simulator=True) == "booted"
    with pytest.raises(InvalidDeviceError, match="simulator"):
        normalize_token("ios", HEX, simulator=True)


def test_platform_guess() -> None:
    assert guess_platform(HEX) == "ios"
    assert guess_platform("booted") == "ios"
    assert guess_platform("https://fcm.googleapis.com/fcm/send/abc") == "web"
    assert guess_platform(fcm_token("x")) == "android"


def test_fcm_and_web_tokens() -> None:
    token = fcm_token("x")
    assert normalize_token("android", f" {token} ") == token
    with pytest.raises(InvalidDeviceError):
        normalize_token("android", token[:50] + " " + token[50:])
    # what cannot be an FCM registration token, whatever Google issues next (SPEC: refuse only that)
    for bad in ("phone-1", "not-a-token!", "ab" * 32, "ab" * 60, token[:99], "x" * 2049, f"topic:{token}"):
        with pytest.raises(InvalidDeviceError) as info:
            normalize_token("android", bad)
        assert info.value.field == "token"
    assert normalize_token("android", "x" * 2048) == "x" * 2048
    assert registration_token_problem("x" * 4096) is None and registration_token_problem("x" * 4097)
    url = "https://updates.push.services.mozilla.com/wpush/v2/" + "x" * 300
    assert normalize_token("web", url) == url
    with pytest.raises(InvalidDeviceError, match="https"):
        normalize_token("web", "http://push.example/abc")
    with pytest.raises(InvalidDeviceError, match="platform") as info:
        normalize_token("blackberry", "x")
    assert info.value.field == "platform"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_web_push_keys() -> None:
    p256dh, auth = _b64(b"\x04" + b"k" * 64), _b64(b"s" * 16)
    assert validate_web_keys(p256dh, auth) == (p256dh, auth)
    with pytest.raises(InvalidDeviceError) as info:
        validate_web_keys(_b64(b"\x04" + b"k" * 10), auth)
    assert info.value.field == "web_p256dh"
    with pytest.raises(InvalidDeviceError) as info:
        validate_web_keys(p256dh, _b64(b"s" * 8))
    assert info.value.field == "web_auth"
    with pytest.raises(InvalidDeviceError):
        validate_web_keys(None, auth)


def test_masking_hides_the_token() -> None:
    masked = mask_token(HEX)
    assert masked == "012345…cdef" and HEX not in masked
    assert (
        mask_token("https://fcm.googleapis.com/fcm/send/secret-part-1234")
        == "https://fcm.googleapis.com/…1234"
    )
    assert mask_token("booted") == "booted"
    assert "secret" not in mask_token("secret")


def test_token_hash_is_sha256_hex() -> None:
    assert len(token_hash(HEX)) == 64 and token_hash(HEX) != token_hash(HEX.upper())
