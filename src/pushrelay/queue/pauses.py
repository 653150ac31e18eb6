"""Paused apps in the SQL outbox.

When a provider calls an app's configuration broken (APNs 403 InvalidProviderToken, 400
TopicDisallowed...), every further request would fail the same way: sending on is pointless, and
hammering Apple with a revoked key looks like abuse. The app is *paused*: a row in ``app_pauses``,
and its deliveries move to the ``paused`` state. Claims skip paused apps, so nothing is sent and
nothing is dropped; :meth:`OutboxPauses.resume` makes the deliveries due again at once. Paused
deliveries still end as ``expired`` at their notification's deadline, like any other.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, select, update

from .interface import AppPause, DeliveryState
from .models import AppPauseRow, utcnow
from .sql_base import D, SqlBase
from .wakeup import notify_work

__all__ = ["OutboxPauses"]

P = AppPauseRow
OPERATOR = "operator"


class OutboxPauses(SqlBase):
    def pause(self, app: str, reason: str, *, platform: str | None, by: str, fingerprint: str | None) -> bool:
        """Pause ``app``; True when this call paused it, False when it already was paused."""
        now = utcnow()
        with self._tx() as conn:
            created = conn.execute(
                self._insert(P.__table__)
                .values(
                    app=app,
                    reason=reason[:300],
                    platform=platform,
                    paused_at=now,
                    paused_by=by[:64],
                    fingerprint=fingerprint,
                )
                .on_conflict_do_nothing(index_elements=["app"])
                .returning(P.app)
            ).first()
            conn.execute(
                update(D)
                .where(D.app == app, D.state == DeliveryState.PENDING.value)
                .values(state=DeliveryState.PAUSED.value, updated_at=now)
            )
        return created is not None

    def resume(self, app: str) -> int | None:
        """Resume ``app``: its parked deliveries are due at once. Returns how many, or None when the
        app was not paused."""
        now = utcnow()
        with self._tx() as conn:
            if not conn.execute(delete(P).where(P.app == app)).rowcount:
                return None
            freed = int(
                conn.execute(
                    update(D)
                    .where(D.app == app, D.state == DeliveryState.PAUSED.value)
                    .values(state=DeliveryState.PENDING.value, next_attempt_at=now, updated_at=now)
                ).rowcount
            )
            notify_work(conn)  # an app's pending work waited on the pause too, not only parked rows
            return freed

    def paused_apps(self) -> list[AppPause]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(P).order_by(P.app)).all()
        return [AppPause(r.app, r.reason, r.platform, r.paused_at, r.paused_by, r.fingerprint) for r in rows]

    @staticmethod
    def _unpark_orphans(conn: Connection) -> int:
        """Deliveries parked for an app that is no longer paused become due (a resume that raced
        with a worker parking its last answers)."""
        now = utcnow()
        return int(
            conn.execute(
                update(D)
                .where(D.state == DeliveryState.PAUSED.value, D.app.not_in(select(P.app)))
                .values(state=DeliveryState.PENDING.value, next_attempt_at=now, updated_at=now)
            ).rowcount
        )
