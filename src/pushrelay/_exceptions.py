"""The exception tree of pushrelay.

Every error pushrelay raises on purpose derives from :class:`PushRelayError`; its message names
the field, file or key at fault and what was expected, and never contains a secret.

    PushRelayError
    ├── ConfigurationError          a setting, file or key is wrong (``.field``, ``.file``)
    │   └── CredentialsError        a .p8 / .p12 / PEM credential is missing, malformed or expired
    ├── NotificationError           a notification cannot be sent as given (``.field``); also a ValueError
    │   └── PayloadTooLargeError    the rendered payload is over the provider's limit (``.size``, ``.limit``)
    └── TransportError              the connection to a provider failed; what was in flight is retried
        ├── ConnectError            could not open the TCP/TLS/HTTP2 connection
        ├── ConnectionLostError     the connection died (reset, EOF, GOAWAY, PING timeout)
        ├── ProtocolError           the peer broke HTTP/2 (``.error_code`` is the RFC 9113 code)
        └── RequestTimeout          no answer within the request deadline

Provider answers (``410 Unregistered``, ``503``...) are *outcomes*, not exceptions: see
:mod:`pushrelay.outcome`.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "ConnectError",
    "ConnectionLostError",
    "CredentialsError",
    "NotificationError",
    "PayloadTooLargeError",
    "ProtocolError",
    "PushRelayError",
    "RequestTimeout",
    "TransportError",
]


class PushRelayError(Exception):
    """Base of every error pushrelay raises on purpose."""


class ConfigurationError(PushRelayError):
    """A setting is wrong. ``field`` names the key, ``file`` the file it came from (when known)."""

    def __init__(self, message: str, *, field: str | None = None, file: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.file = file


class CredentialsError(ConfigurationError):
    """A credential file is missing, unreadable, of the wrong kind, protected by another passphrase
    or expired."""


class NotificationError(PushRelayError, ValueError):
    """The notification cannot be sent as given; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadTooLargeError(NotificationError):
    """The rendered payload exceeds the provider's limit."""

    def __init__(self, message: str, *, size: int, limit: int, field: str | None = "payload") -> None:
        super().__init__(message, field=field)
        self.size = size
        self.limit = limit


class TransportError(PushRelayError):
    """The connection to a provider failed. Requests the server did not process are retried."""


class ConnectError(TransportError):
    """Opening the TCP, TLS or HTTP/2 connection failed."""


class ConnectionLostError(TransportError):
    """An established connection died (reset, end of stream, GOAWAY, unanswered PING)."""


class ProtocolError(TransportError):
    """The peer violated HTTP/2. ``error_code`` is the RFC 9113 error code sent in GOAWAY."""

    def __init__(self, message: str, *, error_code: int = 1) -> None:
        super().__init__(message)
        self.error_code = error_code


class RequestTimeout(TransportError):
    """No answer arrived within the request deadline."""
