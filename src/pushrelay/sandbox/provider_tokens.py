"""Provider-token (JWT) checks as APNs makes them: signature, key id, team, age, refresh rate.

Signatures are verified with PyJWT, once per distinct token string: a burst of 20,000 requests that
share one token costs one ECDSA verification, the rest are dictionary lookups. Time-dependent rules
(expiry, refresh rate) are evaluated on every request against the sandbox clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from .apns_rules import (
    PROVIDER_TOKEN_FUTURE_SKEW,
    PROVIDER_TOKEN_LIFETIME,
    PROVIDER_TOKEN_MIN_REFRESH,
    Rejection,
)

__all__ = ["ProviderTokens", "RegisteredKey", "VerifiedToken"]

MISSING = Rejection(403, "MissingProviderToken")
INVALID = Rejection(403, "InvalidProviderToken")
EXPIRED = Rejection(403, "ExpiredProviderToken")
WRONG_ENVIRONMENT = Rejection(403, "BadEnvironmentKeyIdInToken")
TOO_MANY_UPDATES = Rejection(429, "TooManyProviderTokenUpdates")

_CACHE_LIMIT = 4096  # distinct token strings remembered; a well-behaved client uses one per hour
_SEEN_PER_KEY = 8  # recent tokens per key that may still be used while a newer one is current


@dataclass(frozen=True, slots=True)
class RegisteredKey:
    team_id: str
    key_id: str
    public_key: ec.EllipticCurvePublicKey
    environment: str | None = None  # None: the key works in both environments


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    team_id: str
    key_id: str
    issued_at: int


@dataclass(slots=True)
class _KeyUsage:
    """Which token is current for a (team, key) and since when (sandbox clock)."""

    current: str
    first_seen: float
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=_SEEN_PER_KEY))


class ProviderTokens:
    def __init__(self, clock: Callable[[], float], environment: str) -> None:
        self._clock = clock
        self._environment = environment
        self._keys: dict[str, RegisteredKey] = {}
        self._verified: dict[str, VerifiedToken | Rejection] = {}
        self._usage: dict[tuple[str, str], _KeyUsage] = {}
        self.verifications = 0
        self.last_detail = ""  # why the last rejection happened (for logs; never contains the token)

    def register(self, key: RegisteredKey) -> None:
        self._keys[key.key_id] = key
        self._verified.clear()  # earlier verdicts may depend on the old key

    def describe(self) -> list[dict[str, str | None]]:
        return [
            {"team_id": k.team_id, "key_id": k.key_id, "environment": k.environment}
            for k in self._keys.values()
        ]

    def check(self, authorization: str | None) -> VerifiedToken | Rejection:
        """Verify ``authorization: bearer <JWT>``; a :class:`Rejection` says what APNs would answer."""
        if not authorization or authorization[:7].lower() != "bearer ":
            self.last_detail = "no 'authorization: bearer <JWT>' header and no client certificate"
            return MISSING
        token = authorization[7:].strip()
        if not token:
            self.last_detail = "the authorization header holds no token"
            return MISSING
        verdict = self._verified.get(token)
        if verdict is None:
            verdict = self._verify(token)
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[token] = verdict
        if isinstance(verdict, Rejection):
            return verdict
        now = self._clock()
        if verdict.issued_at < now - PROVIDER_TOKEN_LIFETIME:
            self.last_detail = (
                f"iat is {now - verdict.issued_at:.0f} s old (limit {PROVIDER_TOKEN_LIFETIME:.0f} s)"
            )
            return EXPIRED
        if verdict.issued_at > now + PROVIDER_TOKEN_FUTURE_SKEW:
            self.last_detail = f"iat is {verdict.issued_at - now:.0f} s in the future"
            return INVALID
        return self._track_update(token, verdict, now)

    def _verify(self, token: str) -> VerifiedToken | Rejection:
        self.verifications += 1
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            self.last_detail = "the provider token is not a JWT"
            return INVALID
        if header.get("alg") != "ES256":
            self.last_detail = f"JWT alg is {header.get('alg')!r}, expected 'ES256'"
            return INVALID
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            self.last_detail = f"JWT kid {header.get('kid')!r} is not a registered key"
            return INVALID
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=["ES256"],
                # Time is judged against the sandbox clock below, not PyJWT's.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "iat"],
                },
            )
        except jwt.InvalidSignatureError:
            self.last_detail = f"JWT signature does not match key {key.key_id}"
            return INVALID
        except jwt.PyJWTError as exc:
            self.last_detail = f"JWT rejected: {exc}"
            return INVALID
        if claims.get("iss") != key.team_id:
            self.last_detail = f"JWT iss {claims.get('iss')!r} is not the team of key {key.key_id}"
            return INVALID
        issued_at = claims.get("iat")
        if not isinstance(issued_at, int) or isinstance(issued_at, bool):
            self.last_detail = "JWT iat is not an integer number of seconds"
            return INVALID
        if key.environment is not None and key.environment != self._environment:
            self.last_detail = f"key {key.key_id} is restricted to the {key.environment} environment"
            return WRONG_ENVIRONMENT
        return VerifiedToken(key.team_id, key.key_id, issued_at)

    def _track_update(self, token: str, verdict: VerifiedToken, now: float) -> VerifiedToken | Rejection:
        """APNs wants one token per key for at least 20 minutes.

        A token never seen before is an *update*; it is refused with 429 when the current token of that key
        was first seen less than 20 minutes ago. Tokens that were current before stay usable until they
        expire, so requests signed just before a legitimate refresh do not fail.
        """
        usage_key = (verdict.team_id, verdict.key_id)
        usage = self._usage.get(usage_key)
        if usage is None:
            self._usage[usage_key] = _KeyUsage(token, now, deque([token], maxlen=_SEEN_PER_KEY))
            return verdict
        if token == usage.current or token in usage.recent:
            return verdict
        if now - usage.first_seen < PROVIDER_TOKEN_MIN_REFRESH:
            self.last_detail = (
                f"a new token for key {verdict.key_id} only {now - usage.first_seen:.0f} s after the "
                f"previous one (minimum {PROVIDER_TOKEN_MIN_REFRESH:.0f} s)"
            )
            return TOO_MANY_UPDATES
        usage.current, usage.first_seen = token, now
        usage.recent.append(token)
        return verdict
