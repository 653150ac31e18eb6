"""APNs provider tokens shared through the database by every worker process.

Every worker process (and a worker restarted after a crash) would otherwise mint its own token for
the same key, and APNs answers 429 TooManyProviderTokenUpdates to a new token less than 20 minutes
after the previous one. :class:`SqlTokenStore` is the :class:`~pushrelay.apns.auth.TokenStore` of
the ``provider_tokens`` table: :class:`~pushrelay.apns.TokenAuth` adopts a fresh stored token and
replaces it only by compare-and-set. The database is read only when a token is due (every ~45
minutes), never per request.
"""

from __future__ import annotations

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..apns import TokenAuth
from ..apns.auth import StoredToken
from ..queue.models import ProviderTokenRow

__all__ = ["SharedTokenAuth", "SqlTokenStore"]


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
