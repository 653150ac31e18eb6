"""Provider state shared through the database by every process: workers, ``pushrelay send``,
``PushNotification`` (the embedded SQLite included).

- :class:`SqlTokenStore`: the APNs provider token per (team, key). Every process (and a process
  restarted after a crash, and the next ``pushrelay send``) would otherwise mint its own token for
  the same key, and APNs answers 429 TooManyProviderTokenUpdates to a new token less than 20
  minutes after the previous one. :class:`~pushrelay.apns.TokenAuth` adopts a fresh stored token
  and replaces it only by compare-and-set. Read only when a token is due, never per request.
- :class:`SqlAccessTokenStore`: the FCM OAuth2 access token per service account, adopted while it
  is fresh instead of minting one per process.
- :class:`Deferrals`: targets a provider asked to leave alone until a time (Retry-After, or the
  backoff of a 429). A send never contacts such a target before then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..apns import TokenAuth
from ..apns.auth import StoredToken
from ..fcm.credentials import StoredAccessToken
from ..outcome import DeliveryResult, Outcome
from .models import AccessTokenRow, DeferralRow, ProviderTokenRow

__all__ = [
    "DEFAULT_429_WAIT",
    "Deferral",
    "Deferrals",
    "SharedTokenAuth",
    "SqlAccessTokenStore",
    "SqlTokenStore",
    "deferral_for",
    "token_hash",
]

DEFAULT_429_WAIT = 60.0
"""Seconds to leave a target alone after a 429 that named no Retry-After (APNs TooManyRequests:
Apple gives no time; Firebase asks for at least a minute after QUOTA_EXCEEDED)."""


class SqlTokenStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, team_id: str, key_id: str) -> StoredToken | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ProviderTokenRow.header, ProviderTokenRow.minted_at).where(
                    ProviderTokenRow.team_id == team_id, ProviderTokenRow.key_id == key_id
                )
            ).first()
        return StoredToken(row.header, row.minted_at) if row is not None else None

    def store(
        self, team_id: str, key_id: str, token: StoredToken, *, replaces: str | None, not_after: float
    ) -> bool:
        with self.engine.begin() as conn:
            if replaces is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(ProviderTokenRow).values(
                                team_id=team_id, key_id=key_id, header=token.header, minted_at=token.minted_at
                            )
                        )
                except IntegrityError:  # another process stored one first
                    return False
                return True
            swapped = conn.execute(
                update(ProviderTokenRow)
                .where(
                    ProviderTokenRow.team_id == team_id,
                    ProviderTokenRow.key_id == key_id,
                    ProviderTokenRow.header == replaces,
                    ProviderTokenRow.minted_at <= not_after,
                )
                .values(header=token.header, minted_at=token.minted_at)
            ).rowcount
            return bool(swapped)


def SharedTokenAuth(base: TokenAuth, engine: Engine) -> TokenAuth:
    """``base`` with its token shared through the database of ``engine``."""
    return base.shared(SqlTokenStore(engine))


class SqlAccessTokenStore:
    """:class:`~pushrelay.fcm.credentials.AccessTokenStore` in ``provider_access_tokens``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, account: str, token_uri: str) -> StoredAccessToken | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(AccessTokenRow.token, AccessTokenRow.expires_at, AccessTokenRow.refresh_at).where(
                    AccessTokenRow.account == account, AccessTokenRow.token_uri == token_uri
                )
            ).first()
        return StoredAccessToken(row.token, row.expires_at, row.refresh_at) if row is not None else None

    def save(self, account: str, token_uri: str, token: StoredAccessToken) -> None:
        values = {"token": token.token, "expires_at": token.expires_at, "refresh_at": token.refresh_at}
        with self.engine.begin() as conn:
            # a newer token always wins: two processes refreshing at once both hold valid tokens
            done = conn.execute(
                update(AccessTokenRow)
                .where(
                    AccessTokenRow.account == account,
                    AccessTokenRow.token_uri == token_uri,
                    AccessTokenRow.expires_at <= token.expires_at,
                )
                .values(**values)
            ).rowcount
            if done:
                return
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(AccessTokenRow).values(account=account, token_uri=token_uri, **values)
                    )
            except IntegrityError:  # a newer one is stored already
                pass

    def discard(self, account: str, token_uri: str, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(AccessTokenRow).where(
                    AccessTokenRow.account == account,
                    AccessTokenRow.token_uri == token_uri,
                    AccessTokenRow.token == token,
                )
            )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Deferral:
    token: str
    until: datetime  # aware UTC
    status: int
    reason: str


def deferral_for(result: DeliveryResult, *, now: datetime | None = None) -> tuple[datetime, int, str] | None:
    """``(until, status, reason)`` when ``result`` asks to leave its target alone for a while: a
    429 that is about the target (FCM QUOTA_EXCEEDED, Web Push 429, APNs TooManyRequests), not
    about our credentials (APNs TooManyProviderTokenUpdates)."""
    if result.outcome is not Outcome.RETRY or result.status != 429:
        return None
    if result.reason == "TooManyProviderTokenUpdates":
        return None
    wait = result.retry_after if result.retry_after is not None else DEFAULT_429_WAIT
    until = (now or datetime.now(UTC)) + timedelta(seconds=wait)
    return until, result.status, result.reason or "429"


def _naive(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None)


class Deferrals:
    """Per-target "not before" times, set from a provider's 429 and read before every send."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def defer(
        self, app: str, platform: str, token: str, until: datetime, *, status: int, reason: str
    ) -> None:
        """Leave ``token`` alone until ``until`` (a later deadline already stored is kept)."""
        key = {"app": app, "platform": platform, "token_hash": token_hash(token)}
        values = {"until": _naive(until), "status": status, "reason": reason[:300]}
        with self.engine.begin() as conn:
            done = conn.execute(
                update(DeferralRow)
                .where(*(getattr(DeferralRow, k) == v for k, v in key.items()))
                .where(DeferralRow.until <= values["until"])
                .values(**values)
            ).rowcount
            if done:
                return
            try:
                with conn.begin_nested():
                    conn.execute(insert(DeferralRow).values(**key, **values))
            except IntegrityError:  # a later deadline is stored already
                pass

    def active(
        self, app: str, platform: str, tokens: Iterable[str], *, now: datetime | None = None
    ) -> dict[str, Deferral]:
        """``{token: deferral}`` for the tokens that must not be contacted yet."""
        tokens = list(tokens)
        if not tokens:
            return {}
        moment = _naive(now or datetime.now(UTC))
        found: dict[str, Deferral] = {}
        with self.engine.connect() as conn:
            # Almost always nothing is deferred: one short query answers that for the whole batch,
            # instead of an IN list of 500 hashes per 500 tokens (7 % of the service's time in a
            # send to all on PostgreSQL, mostly psycopg parsing the placeholders); the tokens are
            # hashed only when something is.
            any_active = select(DeferralRow.token_hash).where(
                DeferralRow.app == app, DeferralRow.platform == platform, DeferralRow.until > moment
            )
            if conn.execute(any_active.limit(1)).first() is None:
                return found
            by_hash = {token_hash(t): t for t in tokens}
            hashes = list(by_hash)
            for start in range(0, len(hashes), 500):
                rows = conn.execute(
                    select(
                        DeferralRow.token_hash, DeferralRow.until, DeferralRow.status, DeferralRow.reason
                    ).where(
                        DeferralRow.app == app,
                        DeferralRow.platform == platform,
                        DeferralRow.token_hash.in_(hashes[start : start + 500]),
                        DeferralRow.until > moment,
                    )
                )
                for row in rows:
                    token = by_hash[row.token_hash]
                    found[token] = Deferral(token, row.until.replace(tzinfo=UTC), row.status, row.reason)
        return found

    def purge(self, *, now: datetime | None = None) -> int:
        """Forget the deadlines that have passed."""
        with self.engine.begin() as conn:
            return conn.execute(
                delete(DeferralRow).where(DeferralRow.until <= _naive(now or datetime.now(UTC)))
            ).rowcount
