"""pushrelay: a self-hosted push-notification server for mobile-app backends."""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
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
