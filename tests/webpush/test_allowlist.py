"""The endpoint allow-list: the SSRF guard in front of every Web Push request."""

from __future__ import annotations

import pytest

from pushrelay import ConfigurationError
from pushrelay.webpush import DEFAULT_ALLOWED_HOSTS, EndpointAllowList


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://fcm.googleapis.com/fcm/send/abc",
        "https://updates.push.services.mozilla.com/wpush/v2/gAAA",
        "https://web.push.apple.com/QGr0",
        "https://wns2-by3p.notify.windows.com/w/?token=BQYAAA",
        "https://FCM.googleapis.com:443/fcm/send/abc",
    ],
)
def test_known_push_services_are_allowed_by_default(endpoint: str) -> None:
    assert EndpointAllowList().allows(endpoint)


@pytest.mark.parametrize(
    ("endpoint", "fragment"),
    [
        ("https://10.0.0.5/admin", "host 10.0.0.5 is not in"),
        ("https://localhost/x", "host localhost is not in"),
        ("https://fcm.googleapis.com.evil.example/x", "not in"),
        ("https://evilfcm.googleapis.com/x", "not in"),
        ("https://fcm.googleapis.com:8443/x", "host fcm.googleapis.com:8443 is not in"),
        ("http://fcm.googleapis.com/x", "only https://"),
        ("https://notify.windows.com/x", "not in"),  # "*.domain" is subdomains only
        ("https://[::1]:99999/x", "not a valid URL"),
    ],
)
def test_everything_else_is_refused(endpoint: str, fragment: str) -> None:
    reason = EndpointAllowList().reason_refused(endpoint)
    assert reason is not None and fragment in reason
    assert "/admin" not in reason and "/x" not in reason  # the endpoint path is never quoted


def test_custom_entries_with_ports() -> None:
    allow = EndpointAllowList(["127.0.0.1:8443", "*.push.example.org"])
    assert allow.allows("https://127.0.0.1:8443/wp/1")
    assert not allow.allows("https://127.0.0.1/wp/1")
    assert allow.allows("https://eu.push.example.org/x")
    assert not allow.allows("https://push.example.org/x")


@pytest.mark.parametrize("entries", [["https://fcm.googleapis.com"], ["*"], ["fcm.googleapis.com/x"], [3]])
def test_bad_entries(entries: list[object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        EndpointAllowList(entries)  # type: ignore[arg-type]
    assert info.value.field == "allowed_hosts"


def test_defaults() -> None:
    assert "fcm.googleapis.com" in DEFAULT_ALLOWED_HOSTS
    assert "updates.push.services.mozilla.com" in DEFAULT_ALLOWED_HOSTS
