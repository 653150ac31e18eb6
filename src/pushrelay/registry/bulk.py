"""Registering many devices in a few statements per chunk instead of one per device.

A chunk of already validated :class:`~.devices.DeviceInfo` is registered in three statements,
whatever its size:

1. one ``SELECT`` of the chunk's existing rows (``FOR UPDATE`` on PostgreSQL, so that the statuses
   computed from them stay true until commit);
2. one multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` for the new devices;
3. one multi-row ``INSERT … ON CONFLICT DO UPDATE … WHERE stored.last_seen_at <= new.last_seen_at``
   for the devices whose registration changed something.

SQLAlchemy's "insertmanyvalues" turns (2) and (3) into multi-row ``VALUES`` on both back ends
(``executemany`` would send one statement per row). What each registration does to a stored row
(the rules of :meth:`~.devices.DeviceRegistry.register`) is decided here in Python, on plain
dicts, so that the statuses ``created`` / ``updated`` / ``unchanged`` stay exact.

If another process inserts or refreshes one of the chunk's devices between (1) and the writes, a
row is missing from a ``RETURNING``: :class:`RaceLost` is raised, the caller rolls back and runs
the chunk again (the device is then found by (1)). Registration stays idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import Device
from .tokens import token_hash

if TYPE_CHECKING:
    from .devices import DeviceInfo

__all__ = ["RaceLost", "analyze_if_never", "register_chunk"]

_TABLE = cast(sa.Table, Device.__table__)
_C = _TABLE.c
_KEY = ("app", "token_hash")
# what a later registration rewrites (never id, the key, or when the device first registered)
_UPDATED = tuple(c.name for c in _TABLE.columns if c.name not in ("id", "app", "token_hash", "created_at"))

Key = tuple[str, str]


class RaceLost(Exception):
    """Another transaction wrote one of the chunk's devices between our read and our write."""


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# PostgreSQL: the chunk's keys as one array parameter (an IN list of 500 placeholders is parsed by
# psycopg in Python, slower than the query), each looked up by a LATERAL subquery: that makes
# every key one probe of the unique (app, token_hash) index whatever the planner's statistics.
# A join or ``= ANY(array)`` scanned all of the app's rows per chunk on a table not analysed yet
# (a first import: 0.5 s a chunk at 20k devices). Rows are locked in key order (sorted by the
# caller), so concurrent chunks cannot deadlock on each other.
_PG_EXISTING = sa.text(
    f"SELECT {', '.join('d.' + c.name for c in _TABLE.columns)} "  # noqa: S608 - model's names
    "FROM unnest(CAST(:digests AS varchar[])) AS k(h) CROSS JOIN LATERAL "
    "(SELECT * FROM devices WHERE app = :app AND token_hash = k.h LIMIT 1 FOR UPDATE) AS d"
).columns(*_TABLE.columns)


def analyze_if_never(session: Session) -> None:
    """``ANALYZE devices`` on PostgreSQL if the table was never analysed.

    Without statistics the planner takes the (app, id) index with a filter on token_hash to be as
    cheap as the unique (app, token_hash) index, and every lookup scans all of the app's rows: a
    first import of 100k devices slows to ~1k/s. Autovacuum analyses the table only later.
    """
    if not _is_pg(session):
        return
    tuples = session.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass('devices')"))
    if (tuples.scalar() or 0) < 0:  # -1: never analysed (PostgreSQL 14+)
        session.execute(sa.text("ANALYZE devices"))


def _existing(session: Session, keys: set[Key]) -> dict[Key, dict[str, Any]]:
    pg = _is_pg(session)
    by_app: dict[str, list[str]] = {}
    for app, digest in keys:
        by_app.setdefault(app, []).append(digest)
    found: dict[Key, dict[str, Any]] = {}
    for app, digests in by_app.items():
        digests.sort()
        stmt: sa.Executable = (
            _PG_EXISTING.bindparams(app=app, digests=digests)
            if pg
            else sa.select(_TABLE).where(_C.app == app, _C.token_hash.in_(digests)).order_by(_C.id)
        )
        for row in session.execute(stmt):
            found[(row.app, row.token_hash)] = dict(row._mapping)
    return found


_WRITTEN = tuple(c.name for c in _TABLE.columns if c.name != "id")


def _pg_upsert_sql(update: bool) -> str:
    """INSERT … SELECT FROM unnest(one array per column): a statement of fixed text and 20
    parameters whatever the number of rows (multi-row VALUES has 20 per row, each parsed by
    psycopg in Python). The arrays go in binary (``%(name)b``), as the outbox's rows do: psycopg's
    text array dumper costs ~1.3 µs an element, ten times the binary one, and a device has 20."""
    pg = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(f"%({name})b::{_TABLE.c[name].type.compile(dialect=pg)}[]" for name in _WRITTEN)
    if update:
        sets = ", ".join(f"{name} = EXCLUDED.{name}" for name in _UPDATED)
        conflict = f"DO UPDATE SET {sets} WHERE devices.last_seen_at <= EXCLUDED.last_seen_at"
    else:
        conflict = "DO NOTHING"
    columns = ", ".join(_WRITTEN)
    sql = f"INSERT INTO devices ({columns}) SELECT * FROM unnest({arrays}) ON CONFLICT (app, token_hash) "  # noqa: S608
    return sql + f"{conflict} RETURNING id, app, token_hash"


_PG_INSERT = _pg_upsert_sql(update=False)
_PG_UPSERT = _pg_upsert_sql(update=True)


def _write(session: Session, rows: list[dict[str, Any]], *, update: bool) -> list[Any]:
    """Write ``rows``; the ``(id, app, token_hash)`` of those written."""
    if _is_pg(session):
        columns = {name: [r[name] for r in rows] for name in _WRITTEN}
        return list(session.connection().exec_driver_sql(_PG_UPSERT if update else _PG_INSERT, columns).all())
    ins = sqlite.insert(_TABLE)
    if update:
        stmt = ins.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={name: ins.excluded[name] for name in _UPDATED},
            # a newer registration committed meanwhile by someone else wins
            where=_C.last_seen_at <= ins.excluded.last_seen_at,
        )
    else:
        stmt = ins.on_conflict_do_nothing(index_elements=list(_KEY))
    # executemany with RETURNING: SQLAlchemy's "insertmanyvalues" sends multi-row VALUES
    params = [{name: r[name] for name in _WRITTEN} for r in rows]
    return list(session.execute(stmt.returning(_C.id, _C.app, _C.token_hash), params).all())


def _new_row(info: DeviceInfo, digest: str, seen_at: datetime) -> dict[str, Any]:
    return {
        "id": None,
        "app": info.app,
        "token": info.token,
        "token_hash": digest,
        "created_at": seen_at,
        "last_seen_at": seen_at,
        "active": True,
        "retired_at": None,
        "retired_reason": None,
        **info._values(),
    }


def _refresh(row: dict[str, Any], info: DeviceInfo, seen_at: datetime) -> tuple[str, bool]:
    """Apply one registration to a stored row (in place): ``(status, reactivated)``."""
    if seen_at < row["last_seen_at"]:
        return "unchanged", False  # an older registration (a replayed 4D session) changes nothing
    changed = False
    for name, value in (*info._values().items(), ("token", info.token)):
        if row[name] != value:
            row[name] = value
            changed = True
    reactivated = False
    if not row["active"] and (row["retired_at"] is None or seen_at > row["retired_at"]):
        row.update(active=True, retired_at=None, retired_reason=None)
        reactivated = changed = True
    if seen_at != row["last_seen_at"]:
        row["last_seen_at"] = seen_at
        changed = True
    return ("updated" if changed else "unchanged"), reactivated


def register_chunk(
    session: Session, infos: Sequence[DeviceInfo], now: datetime
) -> list[tuple[dict[str, Any], str, bool]]:
    """Register validated ``infos`` (:class:`~.devices.DeviceInfo`) in ``session``'s transaction.

    Returns ``(row, status, reactivated)`` per item, in input order; ``row`` holds every column
    as stored after the chunk (the same dict for the same token given twice).
    """
    keyed = [((info.app, token_hash(info.token)), info) for info in infos]
    rows = _existing(session, {key for key, _ in keyed})
    stored = set(rows)
    dirty: set[Key] = set()
    done: list[tuple[Key, str, bool]] = []
    for key, info in keyed:
        seen_at = info.seen_at or now
        row = rows.get(key)
        if row is None:
            rows[key] = _new_row(info, key[1], seen_at)
            dirty.add(key)
            done.append((key, "created", False))
        else:
            # also the same token twice in one chunk: the second refreshes the first
            status, reactivated = _refresh(row, info, seen_at)
            if status != "unchanged":
                dirty.add(key)
            done.append((key, status, reactivated))

    # sorted: concurrent chunks take the unique index's locks in one order
    new = [rows[k] for k in sorted(dirty - stored)]
    changed = [rows[k] for k in sorted(dirty & stored)]
    for part in (new, changed):
        if part:
            written = _write(session, part, update=part is changed)
            if len(written) != len(part):
                raise RaceLost
            for id_, app, digest in written:
                rows[(app, digest)]["id"] = id_
    return [(rows[key], status, reactivated) for key, status, reactivated in done]
