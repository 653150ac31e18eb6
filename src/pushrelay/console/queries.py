"""The console's reads. Each one is bounded (a page, an hour, the newest N) and follows an index, so
that a page stays fast with a million devices: nothing here loads a whole table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ..queue.models import CountRow, DeliveryRow, NotificationRow, utcnow
from ..registry.devices import DevicePage, DeviceRegistry
from ..registry.models import Device

__all__ = [
    "delivery_rates",
    "device_by_id",
    "device_deliveries",
    "open_deliveries",
    "search_devices",
    "surfaces",
]

N, D, C = NotificationRow, DeliveryRow, CountRow
OPEN = ("pending", "in_flight", "paused")
#: how many of the app's newest notifications "recent deliveries" of a device look through
RECENT_NOTIFICATIONS = 200


def search_devices(
    registry: DeviceRegistry, app: str, query: str, *, after: int = 0, limit: int = 50
) -> DevicePage:
    """The console's device search, through the registry's keyset :meth:`~DeviceRegistry.page`:
    anything with an ``@`` is an e-mail address (exact, case-insensitive), anything else a token
    prefix; an empty query lists the app's devices."""
    query = query.strip()
    if "@" in query:
        return registry.page(app, email=query, after=after, limit=limit)
    return registry.page(app, token_prefix=query or None, after=after, limit=limit)


def device_by_id(engine: Engine, device_id: int) -> Device | None:
    with Session(engine) as s:
        return s.get(Device, device_id)


def device_deliveries(engine: Engine, app: str, token: str, *, limit: int = 20) -> list[Any]:
    """The device's deliveries among the app's newest notifications: one probe per notification
    through the ``(notification_id, token)`` unique index, rather than a scan of every delivery."""
    newest = select(N.id).where(N.app == app).order_by(N.created_at.desc()).limit(RECENT_NOTIFICATIONS)
    q = (
        select(D, N.created_at.label("sent_at"))
        .join(N, N.id == D.notification_id)
        .where(D.notification_id.in_(newest.scalar_subquery()), D.token == token)
        .order_by(N.created_at.desc(), D.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(q).all())


def delivery_rates(engine: Engine, apps: Sequence[str]) -> dict[str, dict[str, int]]:
    """Outcomes of the deliveries of each app's notifications accepted in the last hour, through
    the ``(app, created_at)`` index: on PostgreSQL the sums of their counts (``outbox_counts``),
    on SQLite a count of their deliveries (it keeps no counts)."""
    since = utcnow() - timedelta(hours=1)
    recent = [N.app.in_(list(apps)), N.created_at >= since]
    if engine.dialect.name == "postgresql":
        q = (
            select(N.app, C.name, func.sum(C.n))
            .join(C, C.notification_id == N.id)
            .where(*recent)
            .group_by(N.app, C.name)
            .having(func.sum(C.n) != 0)
        )
    else:
        q = (
            select(N.app, func.coalesce(D.outcome, D.state), func.count())
            .join(D, D.notification_id == N.id)
            .where(*recent)
            .group_by(N.app, func.coalesce(D.outcome, D.state))
        )
    out: dict[str, dict[str, int]] = {a: {} for a in apps}
    with engine.connect() as conn:
        for app, name, n in conn.execute(q):
            out[app][str(name)] = int(n)
    return out


def open_deliveries(engine: Engine, apps: Sequence[str]) -> dict[str, dict[str, int]]:
    """Queue depth per app: open deliveries by state (the ``(state, next_attempt_at)`` index)."""
    q = (
        select(D.app, D.state, func.count())
        .where(D.state.in_(OPEN), D.app.in_(list(apps)))
        .group_by(D.app, D.state)
    )
    out: dict[str, dict[str, int]] = {a: {} for a in apps}
    with engine.connect() as conn:
        for app, state, n in conn.execute(q):
            out[app][str(state)] = int(n)
    return out


def surfaces(engine: Engine, ids: Sequence[str]) -> dict[str, str]:
    """Which surface (API, CLI, library) sent each notification, where the outbox records it."""
    column = getattr(N, "surface", None)
    if column is None or not ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(N.id, column).where(N.id.in_(list(ids)))).all()
    return {str(r[0]): str(r[1]) for r in rows if r[1] is not None}
