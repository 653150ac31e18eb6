"""Console sign-in: server-side sessions keyed by a random cookie, each with its CSRF token.

The cookie holds only a random session id (256 bits); the API key's secret is never stored, in the
cookie or here. Each request re-reads the key's row, so a revoked key ends its sessions at once
(unlike the API's 5-second key cache, a console page is not a hot path).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select

from ..queue.models import ApiKeyRow
from ..server.apikeys import ApiKey, ApiKeyStore

__all__ = ["COOKIE", "ConsoleSession", "SessionStore"]

COOKIE = "pushrelay_console"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    key: ApiKey
    csrf: str
    expires: float

    @property
    def apps(self) -> tuple[str, ...]:
        """The apps this session may see; empty means every app."""
        return self.key.apps

    def check_csrf(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf, presented or "")


class SessionStore:
    """In-process sessions: signing in again after a restart is the price of keeping no secret."""

    def __init__(self, keys: ApiKeyStore, engine: Engine, *, ttl: float = 8 * 3600) -> None:
        self.keys = keys
        self.engine = engine
        self.ttl = ttl
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def sign_in(self, presented: str) -> tuple[str, ConsoleSession] | None:
        """A new session for an active ``admin`` key, or None (unknown, revoked, not admin)."""
        key = self.keys.authenticate(presented.strip())
        if key is None or "admin" not in key.scopes:
            return None
        sid = secrets.token_urlsafe(32)
        session = ConsoleSession(key, secrets.token_urlsafe(32), time.monotonic() + self.ttl)
        with self._lock:
            now = time.monotonic()
            for old in [s for s, v in self._sessions.items() if v.expires <= now]:
                del self._sessions[old]
            self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> ConsoleSession | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
        if session is None:
            return None
        if session.expires <= time.monotonic() or self._revoked(session.key.id):
            self.sign_out(sid)
            return None
        return session

    def sign_out(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._sessions.pop(sid, None)

    def _revoked(self, key_id: str) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(select(ApiKeyRow.revoked_at).where(ApiKeyRow.id == key_id)).first()
        return row is None or row.revoked_at is not None
