"""VAPID (RFC 8292): the application server's P-256 key and the ``Authorization: vapid`` header.

The browser subscribes with the *public* key (``applicationServerKey`` in
``pushManager.subscribe``); pushrelay signs a short JWT per push-service origin with the private key.
Signing is done by ``py-vapid``; this module loads keys, validates the subject, and caches one header
per origin until it nears expiry (ECDSA per request would be wasted work: the header only depends
on the origin and the hour).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, VapidException  # type: ignore[import-untyped]

from .._exceptions import ConfigurationError, CredentialsError
from .subscription import b64url_decode, b64url_encode

__all__ = [
    "DEFAULT_VALIDITY",
    "MAX_VALIDITY",
    "VapidKey",
    "VapidKeyPair",
    "generate_vapid_keys",
]

#: RFC 8292 §2: ``exp`` must not be more than 24 hours after the request.
MAX_VALIDITY = 24 * 3600
#: How long the JWTs pushrelay signs are valid; re-signed when less than REFRESH_BEFORE is left.
DEFAULT_VALIDITY = 12 * 3600
REFRESH_BEFORE = 3600
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class VapidKeyPair:
    """A new key pair: ``public_key`` goes to the web page, the private key to pushrelay's settings."""

    private_key: str  # 32-byte scalar, base64url (the ``vapid_private_key`` setting)
    public_key: str  # 65-byte uncompressed point, base64url (``applicationServerKey``)
    private_pem: bytes  # PKCS#8 PEM (for ``vapid_private_key_file``)


def generate_vapid_keys() -> VapidKeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    vapid = VapidKey(key, subject="mailto:unset@example.com")
    return VapidKeyPair(vapid.private_key_b64, vapid.public_key_b64, vapid.private_pem())


def _check_subject(subject: str, field: str) -> None:
    if not isinstance(subject, str) or not (subject.startswith("mailto:") or subject.startswith("https://")):
        raise ConfigurationError(
            f"{field} must be a mailto: address or an https:// URL where the push service can reach you "
            f"(RFC 8292), got {subject!r}",
            field=field,
        )


class VapidKey:
    """The application server's VAPID identity: a P-256 private key and a contact ``subject``."""

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        *,
        subject: str,
        validity: int = DEFAULT_VALIDITY,
    ) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise CredentialsError(
                "a VAPID key must be an EC P-256 (prime256v1) private key", field="vapid_private_key"
            )
        _check_subject(subject, "vapid_subject")
        if not REFRESH_BEFORE < validity <= MAX_VALIDITY:
            raise ValueError(
                f"validity must be between {REFRESH_BEFORE} and {MAX_VALIDITY} seconds, got {validity}"
            )
        self._key = private_key
        self.subject = subject
        self.validity = validity
        self._vapid = Vapid02(private_key)
        try:  # py-vapid's own subject rules are stricter than a prefix check: fail now, not per send
            self._vapid.sign({"aud": "https://push.example", "exp": int(time.time()) + 60, "sub": subject})
        except VapidException:
            raise ConfigurationError(
                f"vapid_subject must be mailto:<address> or https://<host> (no path), got {subject!r}",
                field="vapid_subject",
            ) from None
        self._headers: OrderedDict[str, tuple[str, int]] = OrderedDict()
        #: JWTs signed so far (for metrics and tests).
        self.signed = 0

    # -- loading ------------------------------------------------------------------------------------
    @classmethod
    def from_string(cls, text: str, *, subject: str, validity: int = DEFAULT_VALIDITY) -> VapidKey:
        """A key given inline: raw base64url scalar (what web-push tools print), or PEM."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            return cls(_load_pem(text.encode(), "vapid_private_key"), subject=subject, validity=validity)
        try:
            raw = b64url_decode(text)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise CredentialsError(
                "vapid_private_key must be the 32-byte private key in base64url (as printed by "
                "`pushrelay keys vapid`) or a PEM private key",
                field="vapid_private_key",
            )
        try:
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
        except ValueError:
            raise CredentialsError(
                "vapid_private_key is not a valid P-256 private key", field="vapid_private_key"
            ) from None
        return cls(key, subject=subject, validity=validity)

    @classmethod
    def from_file(cls, path: str | Path, *, subject: str, validity: int = DEFAULT_VALIDITY) -> VapidKey:
        """A PEM file (PKCS#8 or SEC1 ``EC PRIVATE KEY``), or a file holding the base64url scalar."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CredentialsError(
                f"VAPID key file {path} does not exist (create one with `pushrelay keys vapid --out {path}`)",
                field="vapid_private_key_file",
                file=str(path),
            ) from None
        except OSError as exc:
            raise CredentialsError(
                f"cannot read VAPID key file {path}: {exc.strerror}",
                field="vapid_private_key_file",
                file=str(path),
            ) from None
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                return cls(
                    _load_pem(data, "vapid_private_key_file", str(path)), subject=subject, validity=validity
                )
            return cls.from_string(data.decode("ascii"), subject=subject, validity=validity)
        except (CredentialsError, UnicodeDecodeError):
            raise CredentialsError(
                f"VAPID key file {path} holds no P-256 private key (expected PEM or a base64url key)",
                field="vapid_private_key_file",
                file=str(path),
            ) from None

    @classmethod
    def generate(cls, *, subject: str) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()), subject=subject)

    # -- what the browser and the settings need -----------------------------------------------------------
    @property
    def public_key_b64(self) -> str:
        """``applicationServerKey`` for ``pushManager.subscribe`` (base64url, 65 bytes)."""
        return b64url_encode(
            self._key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    @property
    def private_key_b64(self) -> str:
        return b64url_encode(self._key.private_numbers().private_value.to_bytes(32, "big"))

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def __repr__(self) -> str:  # the public key only
        return f"VapidKey(public_key={self.public_key_b64!r}, subject={self.subject!r})"

    # -- signing --------------------------------------------------------------------------------------
    def authorization(self, audience: str, *, now: float | None = None) -> str:
        """``vapid t=<JWT>, k=<public key>`` for the push service at ``audience`` (scheme://host[:port])."""
        now = time.time() if now is None else now
        cached = self._headers.get(audience)
        if cached is not None and cached[1] - now > REFRESH_BEFORE:
            self._headers.move_to_end(audience)
            return cached[0]
        exp = int(now) + self.validity
        try:
            header = self._vapid.sign({"aud": audience, "exp": exp, "sub": self.subject})["Authorization"]
        except VapidException as exc:
            raise ConfigurationError(f"cannot sign the VAPID claims: {exc}", field="vapid_subject") from None
        if not isinstance(header, str):  # pragma: no cover - py-vapid always returns text
            raise ConfigurationError("py-vapid returned no Authorization header")
        self.signed += 1
        self._headers[audience] = (header, exp)
        if len(self._headers) > _CACHE_SIZE:
            self._headers.popitem(last=False)
        return header


def _load_pem(data: bytes, field: str, file: str | None = None) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise CredentialsError(
            f"{field} is not an unencrypted PEM private key", field=field, file=file
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CredentialsError(f"{field} must be an EC P-256 (prime256v1) key", field=field, file=file)
    return key
