"""API keys: creation, lookup and revocation.

A key reads ``pr_<id>_<secret>``: ``id`` (public, 12 hex characters) finds the row, ``secret`` is 32
random bytes in URL-safe base64. Only ``sha256(secret)`` is stored. A plain fast hash is the right
tool here, unlike for passwords: the secret has 256 bits of entropy, so there is nothing for a slow
hash (bcrypt, argon2) to protect against — no dictionary, no brute force — while a slow hash would
cost milliseconds on every API request. The comparison is constant-time (:func:`hmac.compare_digest`)
so response timing reveals nothing about the stored hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from ..queue.models import ApiKeyRow, utcnow

__all__ = ["SCOPES", "ApiKey", "ApiKeyStore", "KeyError_"]

SCOPES = ("send", "register", "admin")
_PREFIX = "pr_"


class KeyError_(ValueError):
    """A key given on the command line or to the store is malformed."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    scopes: tuple[str, ...]
    apps: tuple[str, ...]  # empty: every app
    name: str | None
    created_at: datetime
    revoked_at: datetime | None

    def allows_scope(self, scope: str) -> bool:
        # admin can do everything; send implies nothing about registering devices and vice versa
        return scope in self.scopes or "admin" in self.scopes

    def allows_app(self, app: str) -> bool:
        return not self.apps or app in self.apps


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    if not key.startswith(_PREFIX):
        return None
    kid, sep, secret = key[len(_PREFIX) :].partition("_")
    if not sep or len(kid) != 12 or not secret:
        return None
    return kid, secret


class ApiKeyStore:
    def __init__(self, engine: Engine, *, cache_seconds: float = 5.0) -> None:
        self.engine = engine
        # A verified key is remembered for a few seconds so that the API does not read the
        # database on every request; a revocation therefore takes effect within cache_seconds.
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, str, ApiKey]] = {}

    def create(
        self, scopes: Sequence[str], apps: Sequence[str] = (), name: str | None = None
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it and its full text, which is never retrievable again."""
        bad = [s for s in scopes if s not in SCOPES]
        if not scopes or bad:
            raise KeyError_(f"scope must be one of {', '.join(SCOPES)}; got {', '.join(bad) or 'none'}")
        kid = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                insert(ApiKeyRow).values(
                    id=kid,
                    secret_hash=_hash(secret),
                    scopes=list(dict.fromkeys(scopes)),
                    apps=list(apps),
                    name=name,
                    created_at=now,
                    revoked_at=None,
                )
            )
        key = ApiKey(kid, tuple(dict.fromkeys(scopes)), tuple(apps), name, now, None)
        return key, f"{_PREFIX}{kid}_{secret}"

    def cached(self, presented: str) -> ApiKey | None:
        """The key if ``presented`` was verified within ``cache_seconds`` (no database read), else
        None: call :meth:`authenticate` then."""
        parts = _split(presented)
        if parts is None:
            return None
        hit = self._cache.get(parts[0])
        if hit is not None and time.monotonic() < hit[0] and hmac.compare_digest(_hash(parts[1]), hit[1]):
            return hit[2]
        return None

    def authenticate(self, presented: str) -> ApiKey | None:
        """The active key matching ``presented``, or None (unknown, malformed, revoked)."""
        parts = _split(presented)
        if parts is None:
            return None
        kid, secret = parts
        digest = _hash(secret)
        hit = self._cache.get(kid)
        if hit is not None and time.monotonic() < hit[0] and hmac.compare_digest(digest, hit[1]):
            return hit[2]
        with self.engine.connect() as conn:
            row = conn.execute(select(ApiKeyRow).where(ApiKeyRow.id == kid)).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(digest, row.secret_hash):
            return None
        key = self._from_row(row)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[kid] = (time.monotonic() + self.cache_seconds, row.secret_hash, key)
        return key

    def list(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(ApiKeyRow).order_by(ApiKeyRow.created_at)).all()
        return [self._from_row(r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke by id (or by the full key text); False when no such active key exists."""
        parts = _split(key_id)
        kid = parts[0] if parts else key_id
        with self.engine.begin() as conn:
            n = conn.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == kid, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
        # at once in this process (the console's revoke button); other processes within cache_seconds
        self._cache.pop(kid, None)
        return bool(n)

    @staticmethod
    def _from_row(row: Any) -> ApiKey:
        return ApiKey(
            row.id, tuple(row.scopes), tuple(row.apps or ()), row.name, row.created_at, row.revoked_at
        )
