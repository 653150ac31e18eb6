"""Push tokens and e-mail addresses: recognising, normalising, hashing and masking them.

Pure functions, no I/O. The rules:

- an APNs device token is hexadecimal (Apple's are 32 bytes = 64 hex digits today, and Apple
  warns they may grow, so any even length from 64 to 200 digits is accepted). Apps often log it
  as ``<abcd 1234 ...>`` (the old ``NSData`` description): brackets and spaces are dropped and
  the digits lower-cased;
- an iOS simulator is addressed by its UDID (``8-4-4-4-12`` hex groups) or ``booted``;
- an FCM registration token is 100 to 2048 (the stored length; FCM's own bound is 4096) letters,
  digits, ``-``, ``_`` and ``:``, and not an APNs hex token (:func:`pushrelay.fcm.target.registration_token_problem`: one rule for every
  way in);
- a Web Push subscription is an ``https://`` endpoint URL plus its ``p256dh`` and ``auth`` keys;
- an e-mail address is ``local@domain.tld``: the 4D pattern, widened to the characters RFC 5322
  allows in the local part (``+`` tags are common). A token never contains ``@``, so the two
  cannot be confused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Final, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import logs
from .._exceptions import PushRelayError
from ..fcm.target import registration_token_problem

__all__ = [
    "ENVIRONMENTS",
    "PLATFORMS",
    "InvalidDeviceError",
    "Platform",
    "check_time_zone",
    "guess_platform",
    "is_apns_token",
    "is_email",
    "is_simulator_id",
    "mask_token",
    "normalize_email",
    "normalize_token",
    "token_hash",
    "validate_web_keys",
]

Platform = Literal["ios", "android", "web"]
PLATFORMS: Final = ("ios", "android", "web")
ENVIRONMENTS: Final = ("production", "development")

MAX_TOKEN_LENGTH: Final = 2048
MAX_EMAIL_LENGTH: Final = 320

_HEX_TOKEN = re.compile(r"[0-9a-f]{64,200}")
_SIMULATOR_UDID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL = re.compile(
    rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,}}"
)


class InvalidDeviceError(PushRelayError, ValueError):
    """A device cannot be registered as given; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def is_email(text: str) -> bool:
    """True when ``text`` is an e-mail address (see the module docstring for the pattern)."""
    return len(text) <= MAX_EMAIL_LENGTH and _EMAIL.fullmatch(text) is not None


def normalize_email(email: str) -> str:
    """The form e-mail addresses are compared in: trimmed and lower-cased."""
    return email.strip().lower()


def check_time_zone(name: str) -> str:
    """An IANA time zone name (``Europe/Paris``, ``America/Mexico_City``) known to the zone
    database; raises :class:`InvalidDeviceError` naming ``time_zone``."""
    text = name.strip() if isinstance(name, str) else ""
    try:
        # ZoneInfo also takes file paths ("../x"): only plain IANA names are zones here
        if not text or len(text) > 64 or text.startswith(("/", ".")) or ".." in text:
            raise ValueError(text)
        ZoneInfo(text)
    except (ValueError, ZoneInfoNotFoundError):
        raise InvalidDeviceError(
            f"time_zone must be an IANA time zone name like Europe/Paris, got {name!r}", field="time_zone"
        ) from None
    return text


def _strip_apns_decoration(token: str) -> str:
    return token.strip().strip("<>").replace(" ", "").lower()


def is_apns_token(token: str) -> bool:
    """True for a hexadecimal APNs device token (even length, 64 to 200 digits)."""
    t = _strip_apns_decoration(token)
    return len(t) % 2 == 0 and _HEX_TOKEN.fullmatch(t) is not None


def is_simulator_id(token: str) -> bool:
    """True for an iOS simulator UDID or the word ``booted`` (the running simulator)."""
    t = token.strip()
    return t == "booted" or _SIMULATOR_UDID.fullmatch(t) is not None


def guess_platform(token: str) -> Platform:
    """The platform a raw token most likely belongs to, when the registry does not know it:
    hexadecimal tokens and simulator ids are iOS, ``https://`` URLs are Web Push endpoints,
    anything else is taken for an FCM token."""
    if is_apns_token(token) or is_simulator_id(token):
        return "ios"
    if token.strip().lower().startswith("https://"):
        return "web"
    return "android"


def normalize_token(platform: str, token: str, *, simulator: bool = False) -> str:
    """Validate ``token`` for ``platform`` and return the form it is stored and compared in.

    Raises :class:`InvalidDeviceError` naming ``token`` (or ``platform``) and what was expected.
    """
    if not isinstance(token, str) or not token.strip():
        raise InvalidDeviceError("token must be a non-empty text", field="token")
    if platform == "ios":
        if simulator or is_simulator_id(token):
            if not is_simulator_id(token):
                raise InvalidDeviceError(
                    "a simulator token must be a simulator UDID (8-4-4-4-12 hex digits) or 'booted'",
                    field="token",
                )
            return token.strip().upper() if token.strip() != "booted" else "booted"
        t = _strip_apns_decoration(token)
        if not is_apns_token(t):
            raise InvalidDeviceError(
                f"an iOS token must be 64 (or more, even) hexadecimal digits; got {len(t)} characters"
                + ("" if all(c in "0123456789abcdef" for c in t) else " that are not all hexadecimal"),
                field="token",
            )
        return t
    if platform == "android":
        t = token.strip()
        problem = registration_token_problem(t)
        if problem is not None:
            raise InvalidDeviceError(problem, field="token")
        if len(t) > MAX_TOKEN_LENGTH:  # FCM allows longer in principle; the column does not
            raise InvalidDeviceError(
                f"an FCM registration token is stored in at most {MAX_TOKEN_LENGTH} characters, got {len(t)}",
                field="token",
            )
        return t
    if platform == "web":
        t = token.strip()
        if len(t) > MAX_TOKEN_LENGTH:
            raise InvalidDeviceError(
                f"a Web Push endpoint is at most {MAX_TOKEN_LENGTH} characters", field="token"
            )
        parts = urlsplit(t)
        if parts.scheme != "https" or not parts.hostname:
            raise InvalidDeviceError(
                "a Web Push token is the subscription's endpoint, an https:// URL", field="token"
            )
        return t
    raise InvalidDeviceError(
        f"platform must be one of {', '.join(PLATFORMS)}, got {platform!r}", field="platform"
    )


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def validate_web_keys(p256dh: str | None, auth: str | None) -> tuple[str, str]:
    """Check a Web Push subscription's keys (RFC 8291): ``p256dh`` is the browser's P-256 public
    key (65 bytes, uncompressed), ``auth`` a 16-byte secret, both base64url."""
    if not p256dh:
        raise InvalidDeviceError("a Web Push device needs its subscription key p256dh", field="web_p256dh")
    if not auth:
        raise InvalidDeviceError("a Web Push device needs its subscription secret auth", field="web_auth")
    try:
        key = _b64url_decode(p256dh.strip())
    except (binascii.Error, ValueError):
        raise InvalidDeviceError("p256dh must be base64url text", field="web_p256dh") from None
    if len(key) != 65 or key[0] != 4:
        raise InvalidDeviceError(
            "p256dh must be an uncompressed P-256 public key (65 bytes starting with 0x04)",
            field="web_p256dh",
        )
    try:
        secret = _b64url_decode(auth.strip())
    except (binascii.Error, ValueError):
        raise InvalidDeviceError("auth must be base64url text", field="web_auth") from None
    if len(secret) != 16:
        raise InvalidDeviceError(f"auth must be 16 bytes, got {len(secret)}", field="web_auth")
    return p256dh.strip(), auth.strip()


def token_hash(token: str) -> str:
    """SHA-256 of the stored token, hex: the indexed key (a full endpoint URL is too long for one)."""
    return hashlib.sha256(token.encode()).hexdigest()


def mask_token(token: str) -> str:
    """A recognisable but unusable form of a token for messages: ``0a1b2c…e9f0`` (the one mask,
    :func:`pushrelay.logs.mask_token`, with 6 leading characters); the simulator's ``booted`` is
    no secret and stays readable."""
    t = token.strip()
    return t if t == "booted" else logs.mask_token(t, head=6)
