"""APNs token-based provider authentication (the ``AuthKey_<KEYID>.p8`` key).

APNs wants one ES256 JWT per (team, key), shared by every connection and request, refreshed at
least once an hour (after that: ``403 ExpiredProviderToken``) and at most once every 20 minutes
(faster: ``429 TooManyProviderTokenUpdates``). :class:`TokenAuth` mints that token single-flight
and hands out the cached ``authorization`` header on the hot path.

Rules (times from the injectable ``clock``):

* the first :meth:`TokenAuth.authorization` call mints; the token is reused until it is
  ``refresh_after`` (45 min) old, then the next call mints a new one. ``min_interval`` (20 min) must
  not exceed ``refresh_after``, so scheduled refreshes are never closer than ``min_interval``.
* :meth:`TokenAuth.token_rejected` with ``ExpiredProviderToken`` for the *current* token mints a new
  one at once even inside the 20-minute floor: APNs refuses the token, so keeping it stops all
  delivery, while a 429 for updating too often at worst costs one retry. To rule out a mint loop,
  a token made this way that is itself called expired within ``min_interval`` is not replaced: that
  only happens when the local clock is wrong, so the call returns ``False`` (configuration broken)
  and logs why. Hence at most one extra mint per ``min_interval``, whatever APNs answers.
* a rejection of an *older* token mints nothing: a newer token exists, the caller retries with it.
* with a :class:`TokenStore`, processes that share a key (workers, a restarted worker) share the
  token too: a process that is due adopts a fresh stored token instead of minting, and a new token
  replaces the stored one only by compare-and-set, never within ``min_interval`` of it unless forced.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeGuard

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .._exceptions import ConfigurationError, CredentialsError
from .._pem import display_name, find_blocks, looks_like_der_sequence, read_credential_file
from .certificate import CertificateAuth

__all__ = ["CertificateAuth", "StoredToken", "TokenAuth", "TokenStore"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Apple's Team ID and Key ID are both 10 characters of upper-case letters and digits
# (e.g. "ABCDE12345"), exactly as the Apple Developer account shows them.
_APPLE_ID = re.compile(r"[A-Z0-9]{10}")
# The name Apple gives the download; browsers may append " (1)" to a second copy.
_KEY_FILE_NAME = re.compile(r"AuthKey_([A-Za-z0-9]+)(?: \(\d+\))?\.p8")

APNS_TOKEN_LIFETIME = 60 * 60  # APNs answers ExpiredProviderToken for tokens older than this
_ADOPT_MARGIN = 60.0  # adopt a stored token only if it has at least this long before its refresh time


@dataclass(frozen=True, slots=True)
class StoredToken:
    header: str  # "bearer <jwt>"
    minted_at: float


class TokenStore(Protocol):
    """Where processes that use the same key share its current provider token."""

    def load(self, team_id: str, key_id: str) -> StoredToken | None: ...

    def store(
        self, team_id: str, key_id: str, token: StoredToken, *, replaces: str | None, not_after: float
    ) -> bool:
        """Compare-and-set: save ``token`` if the stored header is ``replaces`` (``None``: nothing is
        stored yet) and the stored token was minted at or before ``not_after``. True if saved."""
        ...


def _check_apple_id(value: object, field: str, what: str, file: str | None) -> str:
    expected = f"the 10-character {what} (upper-case letters and digits, e.g. ABCDE12345)"
    if not isinstance(value, str):
        raise CredentialsError(
            f"{field} must be {expected}, got {type(value).__name__}", field=field, file=file
        )
    if _APPLE_ID.fullmatch(value):
        return value
    # Echo the value only when it is short: a long one may be a key pasted into the wrong setting.
    shown = repr(value) if len(value) <= 20 and value.isprintable() else f"(a {len(value)}-character value)"
    hint = ""
    if _APPLE_ID.fullmatch(value.strip().upper()):
        hint = f"; did you mean {value.strip().upper()!r}?"
    where = f" (for APNs key {file})" if file else ""
    raise CredentialsError(f"{field} {shown}{where} is not {expected}{hint}", field=field, file=file)


def _is_p256(key: object) -> TypeGuard[EllipticCurvePrivateKey]:
    return isinstance(key, EllipticCurvePrivateKey) and isinstance(key.curve, SECP256R1)


def _describe_key(key: object) -> str:
    if isinstance(key, EllipticCurvePrivateKey):
        return f"an EC {key.curve.name} key"
    if isinstance(key, RSAPrivateKey):
        return f"an RSA {key.key_size}-bit key"
    return f"a {type(key).__name__.removeprefix('_')} key"


# What a wrong PEM label means for someone holding an APNs key, and what to do about it.
_WRONG_LABEL = {
    "EC PRIVATE KEY": "a SEC1 'EC PRIVATE KEY', expected PKCS#8 'PRIVATE KEY' as Apple issues it; "
    "convert it with: openssl pkcs8 -topk8 -nocrypt -in {src} -out AuthKey_<KEYID>.p8",
    "RSA PRIVATE KEY": "an RSA key, expected the EC P-256 PKCS#8 key Apple issues for APNs",
    "ENCRYPTED PRIVATE KEY": "an encrypted key, expected the unencrypted PKCS#8 key Apple issues "
    "(decrypt it with: openssl pkcs8 -in {src} -out AuthKey_<KEYID>.p8)",
    "CERTIFICATE": "a certificate, not a private key (for certificate authentication use CertificateAuth)",
    "PUBLIC KEY": "a public key, expected the private key (AuthKey_<KEYID>.p8)",
}


def load_apns_signing_key(data: bytes | str, source: str) -> EllipticCurvePrivateKey:
    """The EC P-256 private key of an APNs ``.p8``; :class:`CredentialsError` naming ``source`` else."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    blocks = find_blocks(raw)
    key_block = next((b for b in blocks if b.label == "PRIVATE KEY"), None)
    if key_block is None:
        if blocks:
            label = blocks[0].label
            why = _WRONG_LABEL.get(label, f"a PEM '{label}' block, expected 'PRIVATE KEY'").format(src=source)
            raise CredentialsError(f"APNs key {source} holds {why}", field="key_file", file=source)
        kind = "binary DER" if looks_like_der_sequence(raw) else "not PEM text"
        raise CredentialsError(
            f"APNs key {source} is {kind}: expected the PEM file Apple provides "
            "(AuthKey_<KEYID>.p8, starting with '-----BEGIN PRIVATE KEY-----')",
            field="key_file",
            file=source,
        )
    try:
        key = load_pem_private_key(key_block.text, password=None)
    except (ValueError, TypeError):
        raise CredentialsError(
            f"APNs key {source} is damaged: its PRIVATE KEY block is not a valid PKCS#8 key",
            field="key_file",
            file=source,
        ) from None
    if not _is_p256(key):
        raise CredentialsError(
            f"APNs key {source} holds {_describe_key(key)}, expected an EC P-256 (prime256v1) key "
            "as Apple issues for APNs",
            field="key_file",
            file=source,
        )
    return key


def _jwt_part(authorization: str) -> str:
    # Callers may hand back the header value or the bare JWT; both must match the current token,
    # else a rejected current token would look "old" and be retried unchanged forever.
    scheme, _, credentials = authorization.strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else authorization.strip()


@dataclass(frozen=True, slots=True)
class _Token:
    header: str  # "bearer <jwt>"
    minted_at: float
    refresh_at: float
    forced: bool  # minted by token_rejected rather than on schedule


class TokenAuth:
    """ES256 provider tokens for one (team, key), shared by all connections of that team."""

    def __init__(
        self,
        private_key: EllipticCurvePrivateKey,
        *,
        key_id: str,
        team_id: str,
        clock: Clock = time.time,
        refresh_after: float = 45 * 60,
        min_interval: float = 20 * 60,
        store: TokenStore | None = None,
    ) -> None:
        if not _is_p256(private_key):
            raise CredentialsError(
                f"private_key is {_describe_key(private_key)}, expected an EC P-256 key", field="private_key"
            )
        self.key_id = _check_apple_id(key_id, "key_id", "Key ID", None)
        self.team_id = _check_apple_id(team_id, "team_id", "Team ID", None)
        if not 0 < refresh_after < APNS_TOKEN_LIFETIME:
            raise ConfigurationError(
                f"refresh_after must be between 0 and {APNS_TOKEN_LIFETIME} seconds "
                f"(APNs rejects older tokens), got {refresh_after}",
                field="refresh_after",
            )
        if not 0 <= min_interval <= refresh_after:
            raise ConfigurationError(
                f"min_interval must be between 0 and refresh_after ({refresh_after}), got {min_interval}",
                field="min_interval",
            )
        self._key = private_key
        self._clock = clock
        self._refresh_after = float(refresh_after)
        self._min_interval = float(min_interval)
        self._lock = threading.Lock()
        # One reference swapped atomically: readers on the hot path never see a half-updated token.
        self._token: _Token | None = None
        self._mints = 0
        self._generation = 0
        self._store = store

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        team_id: str,
        key_id: str | None = None,
        clock: Clock = time.time,
    ) -> TokenAuth:
        """Load ``AuthKey_<KEYID>.p8``; the key id comes from the file name unless given."""
        source = display_name(path)
        match = _KEY_FILE_NAME.fullmatch(Path(path).name)
        name_key_id = match.group(1) if match else None
        if key_id is None:
            if name_key_id is None:
                raise CredentialsError(
                    f"cannot tell the key id of APNs key {source}: the file is not named "
                    "AuthKey_<KEYID>.p8; pass key_id explicitly",
                    field="key_id",
                    file=source,
                )
            key_id = name_key_id
        # Checked before comparing so that a wrong value is never echoed unless it is short.
        elif _check_apple_id(key_id, "key_id", "Key ID", source) and name_key_id not in (None, key_id):
            raise CredentialsError(
                f"key_id {key_id!r} does not match the key id {name_key_id!r} in the name of {source}",
                field="key_id",
                file=source,
            )
        _check_apple_id(key_id, "key_id", "Key ID", source)
        _check_apple_id(team_id, "team_id", "Team ID", source)
        data = read_credential_file(path, what="APNs key", field="key_file")
        return cls(load_apns_signing_key(data, source), key_id=key_id, team_id=team_id, clock=clock)

    @classmethod
    def from_pem(
        cls,
        data: bytes | str,
        *,
        key_id: str,
        team_id: str,
        source: str = "<memory>",
        clock: Clock = time.time,
    ) -> TokenAuth:
        """Build from the text of a ``.p8`` (e.g. from a secret store); ``source`` names it in errors."""
        _check_apple_id(key_id, "key_id", "Key ID", source)
        _check_apple_id(team_id, "team_id", "Team ID", source)
        return cls(load_apns_signing_key(data, source), key_id=key_id, team_id=team_id, clock=clock)

    @property
    def generation(self) -> int:
        """Increments whenever the token changes (minted here or adopted from the store)."""
        return self._generation

    @property
    def mints(self) -> int:
        """How many JWTs this process signed (a metric); adopted shared tokens do not count."""
        return self._mints

    def authorization(self) -> str:
        """The ``authorization`` header value, ``bearer <jwt>``. Called for every request."""
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.header
        return self._refresh_if_due()

    def token_rejected(self, rejected_authorization: str, reason: str) -> bool:
        """APNs answered 403 ``reason`` to a request sent with ``rejected_authorization``.

        ``True``: retry the request with :meth:`authorization` (and drop the connection);
        ``False``: the credentials or the clock are wrong, retrying cannot help.
        """
        if reason != "ExpiredProviderToken":
            return False
        with self._lock:
            token = self._token
            if token is None or _jwt_part(token.header) != _jwt_part(rejected_authorization):
                # A newer token already replaced it (another caller got here first): retry with that.
                return True
            now = self._clock()
            if token.forced and now - token.minted_at < self._min_interval:
                log.error(
                    "APNs called a provider token expired right after it was minted (key id %s, team %s): "
                    "the system clock is probably wrong; not minting again",
                    self.key_id,
                    self.team_id,
                )
                return False
            self._mint(now, forced=True)
            return True

    def shared(self, store: TokenStore) -> TokenAuth:
        """The same key and team, with the token shared through ``store`` (e.g. the database)."""
        return TokenAuth(
            self._key,
            key_id=self.key_id,
            team_id=self.team_id,
            clock=self._clock,
            refresh_after=self._refresh_after,
            min_interval=self._min_interval,
            store=store,
        )

    def _refresh_if_due(self) -> str:
        with self._lock:
            now = self._clock()
            token = self._token
            if token is not None and now < token.refresh_at:
                return token.header  # minted by another thread while we waited for the lock
            return self._mint(now, forced=False).header

    def _mint(self, now: float, *, forced: bool) -> _Token:
        # Called with self._lock held.
        store = self._store
        if store is None:
            return self._install(self._sign(now, forced))
        stored = store.load(self.team_id, self.key_id)
        current = self._token.header if self._token is not None else None
        held = self._token.minted_at if self._token is not None else float("-inf")
        if (
            stored is not None
            and stored.header != current
            and (not forced or stored.minted_at > held)  # forced: only a token newer than the rejected one
            and now - stored.minted_at < self._refresh_after - _ADOPT_MARGIN
        ):
            return self._adopt(stored)  # another process refreshed it already
        token = self._sign(now, forced)
        floor = now if forced else now - self._min_interval
        replaces = stored.header if stored is not None else None
        if store.store(
            self.team_id, self.key_id, StoredToken(token.header, now), replaces=replaces, not_after=floor
        ):
            return self._install(token)
        winner = store.load(self.team_id, self.key_id)  # another process won the race: use its token
        return self._adopt(winner) if winner is not None else self._install(token)

    def _sign(self, now: float, forced: bool) -> _Token:
        encoded = jwt.encode(
            {"iss": self.team_id, "iat": int(now)},
            self._key,
            algorithm="ES256",
            headers={"kid": self.key_id, "typ": None},  # typ None: APNs documents only alg and kid
        )
        self._mints += 1
        log.debug(
            "minted APNs provider token #%d for key id %s, team %s%s",
            self._mints,
            self.key_id,
            self.team_id,
            " (previous one rejected as expired)" if forced else "",
        )
        return _Token(f"bearer {encoded}", now, now + self._refresh_after, forced)

    def _install(self, token: _Token) -> _Token:
        self._token = token
        self._generation += 1
        return token

    def _adopt(self, stored: StoredToken) -> _Token:
        return self._install(
            _Token(stored.header, stored.minted_at, stored.minted_at + self._refresh_after, False)
        )

    def __repr__(self) -> str:
        return f"TokenAuth(key_id={self.key_id!r}, team_id={self.team_id!r})"
