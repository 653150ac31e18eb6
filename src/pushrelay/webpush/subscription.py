"""A browser's push subscription: where to POST (``endpoint``) and the keys to encrypt for.

The browser hands it over as ``PushSubscription.toJSON()``::

    {"endpoint": "https://fcm.googleapis.com/fcm/send/...", "expirationTime": null,
     "keys": {"p256dh": "<65-byte P-256 point, base64url>", "auth": "<16 bytes, base64url>"}}

:meth:`WebSubscription.from_dict` reads exactly that and says precisely what is wrong otherwise.
The registry stores ``endpoint`` as the device token, with ``p256dh`` and ``auth`` beside it.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from .._exceptions import PushRelayError

__all__ = ["SubscriptionError", "WebSubscription", "b64url_decode", "b64url_encode"]

MAX_ENDPOINT_LENGTH = 4096


class SubscriptionError(PushRelayError, ValueError):
    """A push subscription is malformed; ``field`` names the part (``endpoint``, ``keys.p256dh``...)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding (browsers omit it; some libraries use +/)."""
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class WebSubscription:
    """``endpoint`` plus the browser's ``p256dh`` public key and ``auth`` secret (base64url text)."""

    endpoint: str
    p256dh: str
    auth: str

    def __post_init__(self) -> None:
        _check_endpoint(self.endpoint)
        self.public_key()
        self.auth_secret()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | WebSubscription) -> WebSubscription:
        """Read ``PushSubscription.toJSON()``: ``{"endpoint", "keys": {"p256dh", "auth"}}``."""
        if isinstance(data, WebSubscription):
            return data
        if not isinstance(data, Mapping):
            raise SubscriptionError(
                f"a push subscription must be an object {{endpoint, keys: {{p256dh, auth}}}}, "
                f"got {type(data).__name__}",
                field="subscription",
            )
        endpoint = data.get("endpoint")
        if not isinstance(endpoint, str):
            raise SubscriptionError("endpoint is missing or not text", field="endpoint")
        keys = data.get("keys")
        if not isinstance(keys, Mapping):
            raise SubscriptionError(
                'keys is missing: expected "keys": {"p256dh": ..., "auth": ...} as given by '
                "PushSubscription.toJSON()",
                field="keys",
            )
        values = []
        for name in ("p256dh", "auth"):
            value = keys.get(name)
            if not isinstance(value, str) or not value:
                raise SubscriptionError(f"keys.{name} is missing or not text", field=f"keys.{name}")
            values.append(value)
        return cls(endpoint, values[0], values[1])

    def to_dict(self) -> dict[str, Any]:
        """The browser's shape again."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The browser's P-256 key the payload is encrypted for."""
        raw = _decode(self.p256dh, "keys.p256dh")
        if len(raw) != 65 or raw[0] != 4:
            raise SubscriptionError(
                f"keys.p256dh must be an uncompressed P-256 point (65 bytes starting 0x04), "
                f"got {len(raw)} bytes",
                field="keys.p256dh",
            )
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raise SubscriptionError(
                "keys.p256dh is not a point on the P-256 curve", field="keys.p256dh"
            ) from None

    def auth_secret(self) -> bytes:
        raw = _decode(self.auth, "keys.auth")
        if len(raw) != 16:
            raise SubscriptionError(f"keys.auth must be 16 bytes, got {len(raw)}", field="keys.auth")
        return raw

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.endpoint).hostname or ""


def _decode(text: str, field: str) -> bytes:
    if not isinstance(text, str):
        raise SubscriptionError(f"{field} must be base64url text", field=field)
    try:
        return b64url_decode(text)
    except (binascii.Error, ValueError):
        raise SubscriptionError(f"{field} is not base64url", field=field) from None


def _check_endpoint(endpoint: str) -> None:
    if not isinstance(endpoint, str) or not endpoint:
        raise SubscriptionError("endpoint must be a non-empty https:// URL", field="endpoint")
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise SubscriptionError(f"endpoint is longer than {MAX_ENDPOINT_LENGTH} characters", field="endpoint")
    try:
        parts = urllib.parse.urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise SubscriptionError("endpoint is not a valid URL", field="endpoint") from None
    if parts.scheme != "https" or not parts.hostname:
        raise SubscriptionError("endpoint must be an https:// URL", field="endpoint")
    if parts.username is not None or parts.password is not None:
        raise SubscriptionError("endpoint must not carry user:password@", field="endpoint")
