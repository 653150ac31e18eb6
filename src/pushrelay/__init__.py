"""pushrelay: a self-hosted push-notification server for mobile-app backends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._exceptions import (
    ConfigurationError,
    ConnectError,
    ConnectionLostError,
    CredentialsError,
    NotificationError,
    PayloadTooLargeError,
    ProtocolError,
    PushRelayError,
    RequestTimeout,
    TransportError,
)
from .notification import Notification, SoundSpec
from .outcome import DeliveryResult, Outcome

if TYPE_CHECKING:
    from .push import AsyncPushNotification, PushNotification, PushResult

__version__ = "0.1.0"

# The push API pulls in SQLAlchemy, the configuration and the providers: imported on first use so
# that `import pushrelay` stays light (e.g. for the notification model alone).
_LAZY = {"PushNotification", "AsyncPushNotification", "PushResult"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from . import push

        return getattr(push, name)
    raise AttributeError(f"module 'pushrelay' has no attribute {name!r}")


__all__ = [  # noqa: RUF022  (the lazy names are listed apart)
    "AsyncPushNotification",
    "PushNotification",
    "PushResult",
    "ConfigurationError",
    "ConnectError",
    "ConnectionLostError",
    "CredentialsError",
    "DeliveryResult",
    "Notification",
    "NotificationError",
    "Outcome",
    "PayloadTooLargeError",
    "ProtocolError",
    "PushRelayError",
    "RequestTimeout",
    "SoundSpec",
    "TransportError",
    "__version__",
]
