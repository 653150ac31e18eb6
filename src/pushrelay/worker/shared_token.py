"""An APNs :class:`~pushrelay.apns.TokenAuth` whose JWT is shared through the database.

Every worker process (and a worker restarted after a crash) would otherwise mint its own token
for the same key, and APNs answers 429 TooManyProviderTokenUpdates to a new token less than 20
minutes after the previous one. Here minting is a compare-and-set on the ``provider_tokens`` row:
a process mints only if the stored token is older than ``min_interval``; otherwise it adopts the
stored one. The database is touched only when a token is due (every ~45 minutes), not per request.
"""

from __future__ import annotations

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..apns import TokenAuth
from ..apns.auth import _Token
from ..queue.models import ProviderTokenRow

__all__ = ["SharedTokenAuth"]

_MARGIN = 60.0  # adopt a stored token only if it has at least this long before our refresh time


class SharedTokenAuth(TokenAuth):
    def __init__(
        self,
        base: TokenAuth,
        engine: Engine,
        *,
        refresh_after: float = 45 * 60,
        min_interval: float = 20 * 60,
    ) -> None:
        super().__init__(
            base._key,
            key_id=base.key_id,
            team_id=base.team_id,
            clock=base._clock,
            refresh_after=refresh_after,
            min_interval=min_interval,
        )
        self._engine = engine

    def _mint(self, now: float, *, forced: bool) -> _Token:
        # Called with self._lock held (see TokenAuth).
        row_key = (ProviderTokenRow.team_id == self.team_id, ProviderTokenRow.key_id == self.key_id)
        with self._engine.begin() as conn:
            row = conn.execute(
                select(ProviderTokenRow.header, ProviderTokenRow.minted_at).where(*row_key)
            ).first()
            current = self._token.header if self._token is not None else None
            fresh_enough = row is not None and now - row.minted_at < self._refresh_after - _MARGIN
            if row is not None and row.header != current and not forced and fresh_enough:
                return self._adopt(row.header, row.minted_at)
            token = super()._mint(now, forced=forced)
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(ProviderTokenRow).values(
                                team_id=self.team_id, key_id=self.key_id, header=token.header, minted_at=now
                            )
                        )
                    return token
                except IntegrityError:
                    row = conn.execute(
                        select(ProviderTokenRow.header, ProviderTokenRow.minted_at).where(*row_key)
                    ).first()
                    assert row is not None
                    return self._adopt(row.header, row.minted_at)
            # compare-and-set: only one process replaces a token, and not within min_interval
            # (unless APNs called it expired, which is the one case a forced mint is right)
            floor = now if forced else now - self._min_interval
            swapped = conn.execute(
                update(ProviderTokenRow)
                .where(*row_key, ProviderTokenRow.minted_at <= floor, ProviderTokenRow.header == row.header)
                .values(header=token.header, minted_at=now)
            ).rowcount
            if swapped:
                return token
            fresh = conn.execute(
                select(ProviderTokenRow.header, ProviderTokenRow.minted_at).where(*row_key)
            ).first()
            assert fresh is not None
            return self._adopt(fresh.header, fresh.minted_at)

    def _adopt(self, header: str, minted_at: float) -> _Token:
        token = _Token(header, minted_at, minted_at + self._refresh_after, False)
        self._token = token
        return token
