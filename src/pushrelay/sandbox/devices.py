"""Device tokens the APNs sandbox issued, each bound to a topic and an environment, as Apple binds them.

Apple hands a device token to an app on a device; the token belongs to that app (its bundle id) and to
one APNs environment. Sent to the other environment it is ``BadDeviceToken``; sent with another app's
topic it is ``DeviceTokenNotForTopic``; a token Apple never issued is ``BadDeviceToken`` too. The
sandbox does the same with the tokens it issues (control API ``POST /_sandbox/devices``), unless it runs
lenient (any well-formed hex token is then a device of every app, as before).

One registry may be shared by the production and the development sandboxes of a stack, so a token
issued through either port is known to both and refused by the one of the other environment.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .apns_rules import is_device_token, is_topic, split_topic

__all__ = ["DeviceRegistry", "IssuedDevice", "token_fits_topic"]

_ENVIRONMENTS = ("production", "development")


@dataclass(frozen=True, slots=True)
class IssuedDevice:
    token: str  # lower-case hex
    topic: str  # the app's bundle id (or a push-type topic, e.g. <bundle>.voip, for a PushKit token)
    environment: str


class DeviceRegistry:
    """Issued tokens; safe to share between sandboxes running on different threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, IssuedDevice] = {}
        self._watchers: list[Callable[[IssuedDevice], None]] = []

    def issue(self, topic: str, environment: str, *, token: str | None = None) -> IssuedDevice:
        """A new token (64 hex digits) for ``topic`` in ``environment``.

        ``token`` binds a token the caller already has (hex, even length, at least 64 digits) instead:
        tests that need a fixed value use it. Binding it again moves it to the new topic/environment.
        """
        if not isinstance(topic, str) or not is_topic(topic):
            raise ValueError(f"topic: expected a bundle id such as 'com.sample.myappname', got {topic!r}")
        if environment not in _ENVIRONMENTS:
            raise ValueError(f"environment: expected 'production' or 'development', got {environment!r}")
        if token is not None and (not isinstance(token, str) or not is_device_token(token)):
            raise ValueError("token: expected hex digits, an even number of them, at least 64")
        device = IssuedDevice(
            (token or secrets.token_hex(32)).lower(),
            topic,
            "development" if environment == "development" else "production",
        )
        with self._lock:
            self._devices[device.token] = device
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher(device)
        return device

    def watch(self, watcher: Callable[[IssuedDevice], None]) -> None:
        """Call ``watcher`` with every token issued so far and every one issued from now on (the
        inbox page lists a device from the moment it exists, not from its first notification).
        It is called on the issuing thread: it must be quick and thread-safe."""
        with self._lock:
            self._watchers.append(watcher)
            existing = list(self._devices.values())
        for device in existing:
            watcher(device)

    def get(self, token: str) -> IssuedDevice | None:
        return self._devices.get(token.lower())

    def all(self) -> list[IssuedDevice]:
        with self._lock:
            return list(self._devices.values())

    def __len__(self) -> int:
        return len(self._devices)


def token_fits_topic(device: IssuedDevice, topic: str) -> bool:
    """A token issued for ``com.x`` serves ``com.x`` and its push-type topics (``com.x.voip``...)."""
    return topic == device.topic or split_topic(topic, {device.topic})[0] == device.topic
