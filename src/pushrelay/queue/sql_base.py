"""What every part of the SQL outbox shares: the engine, transactions, row building, completion.

SQLite has a single writer: the statement runs under the database write lock, and a
process-local lock keeps this process's threads (API + workers) from contending for it and
hitting ``database is locked``. PostgreSQL takes row locks and needs no such lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    case,
    exists,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .events import insert_events
from .interface import ClaimedDelivery, DeliveryState, DeviceRef, NotificationState, NotificationStatus
from .models import OPEN_SQL, AppPauseRow, CountRow, DeliveryRow, NotificationRow, utcnow
from .policy import RetryPolicy

__all__ = [
    "IS_OPEN",
    "OPEN",
    "Leasing",
    "NewDeliveries",
    "SqlBase",
    "fold_counts",
    "lease_rows",
    "outcome_counts",
    "sqlite_time",
    "status_from_row",
    "unnest_params",
]

N = NotificationRow
D = DeliveryRow
C = CountRow
OPEN = (DeliveryState.PENDING.value, DeliveryState.IN_FLIGHT.value, DeliveryState.PAUSED.value)
"""Delivery states that are not final: a notification with one of these is not completed."""
IS_OPEN = D.state.in_([literal_column(repr(state)) for state in OPEN])
"""``state IN ('pending', ...)`` with the states written out, not bound: what lets PostgreSQL (a
generic plan too) and SQLite use the partial index of open deliveries. Add it to a narrower
state condition on a notification's deliveries for the same reason."""

_IN_CHUNK = 500  # values per IN (...) / multi-row INSERT: SQLite allows ~32k bound values

# the columns of a new delivery row that its builder sets, with their PostgreSQL types; the rest
# (``apns_id``, ``attempts``, ``created_at``, ``updated_at``) are the same expression for every row
_ROW_TYPES = {
    "notification_id": "varchar",
    "app": "varchar",
    "platform": "varchar",
    "token": "varchar",
    "environment": "varchar",
    "email": "varchar",
    "state": "varchar",
    "next_attempt_at": "timestamp",
    "expires_at": "timestamp",
    "scheduled_for": "timestamp",
    "reason": "varchar",
}
# a random (version 4) UUID made by the database for each row: ``uuid.uuid4()`` in Python was
# ~2.5 us a delivery, a tenth of what sending it costs
_PG_UUID = "gen_random_uuid()::varchar"
_SQLITE_UUID = (
    "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
    "substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random() % 4), 1) || "
    "substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))"
)
_TAIL = "ON CONFLICT (notification_id, token) DO NOTHING"
_SQLITE_INSERT = (
    # built from the constant table above only: no outside text reaches this statement
    f"INSERT INTO outbox_deliveries ({', '.join(_ROW_TYPES)}, apns_id, attempts, created_at, "  # noqa: S608
    f"updated_at) VALUES ({', '.join('?' for _ in _ROW_TYPES)}, {_SQLITE_UUID}, 0, ?, ?) {_TAIL}"
)
# inserted leased (see SqlBase._insert_leased): in flight, the attempt counted as a claim counts it
_SQLITE_INSERT_LEASED = (
    f"INSERT INTO outbox_deliveries ({', '.join(_ROW_TYPES)}, apns_id, attempts, created_at, "  # noqa: S608
    f"updated_at, lease_owner) VALUES ({', '.join('?' for _ in _ROW_TYPES)}, {_SQLITE_UUID}, 1, ?, ?, ?) "
    f"{_TAIL}"
)
# what a claim returns (ClaimedDelivery's fields but the attempt, 1 here)
_CLAIMED = "id, notification_id, app, platform, environment, token, apns_id"
_SQLITE_LEASED_SINCE = (
    f"SELECT {_CLAIMED} FROM outbox_deliveries WHERE id > ? AND lease_owner = ? "  # noqa: S608
    "AND state = 'in_flight' ORDER BY id"
)


def sqlite_time(value: datetime) -> Any:
    return _SQLITE_TIME_BIND(value) if _SQLITE_TIME_BIND is not None else value


_SQLITE_TIME_BIND = DateTime().bind_processor(sqlite_dialect())


@lru_cache(maxsize=64)
def _pg_insert_sql(arrays: frozenset[str], leased: bool = False) -> str:
    """``INSERT ... SELECT FROM unnest(arrays)``: one array per column whose value differs between
    rows, in binary (``%b``: psycopg's text array dumper cost ~1.3 us an element, ten times the
    binary one), one parameter for each column the same for all rows. A short statement whatever
    the number of rows, and a handful of texts for psycopg to prepare. ``leased``: the rows are
    in flight with ``%(owner)s``, their first attempt counted, and what a claim returns comes back."""
    names = [c for c in _ROW_TYPES if c in arrays]
    values = [f"u.{c}" if c in arrays else f"CAST(%({c})s AS {t})" for c, t in _ROW_TYPES.items()]
    unnest = ", ".join(f"%({c})b::{_ROW_TYPES[c]}[]" for c in names)
    lease_col, lease_val, returning = (", lease_owner", ", %(owner)s", _CLAIMED) if leased else ("", "", "id")
    return (
        # built from the constant table above only: no outside text reaches this statement
        f"INSERT INTO outbox_deliveries ({', '.join(_ROW_TYPES)}, apns_id, attempts, created_at, "  # noqa: S608
        f"updated_at{lease_col}) SELECT {', '.join(values)}, {_PG_UUID}, {int(leased)}, %(now)s, "
        f"%(now)s{lease_val} FROM unnest({unnest}) AS u({', '.join(names)}) {_TAIL} RETURNING {returning}"
    )


class Leasing:
    """The part of an expansion inserted already leased to ``owner`` (see :class:`Handoff`):
    at most ``room`` rows, due now, of an app not paused, in flight until ``until``."""

    def __init__(self, owner: str, room: int, until: datetime) -> None:
        self.owner = owner
        self.room = room
        self.until = until
        self.rows = NewDeliveries()


class NewDeliveries:
    """New delivery rows, column by column (no dict or tuple per row): a value shared by every
    row, as the notification's id is when one notification is expanded, is kept once."""

    def __init__(self) -> None:
        self.size = 0
        self.columns: dict[str, Any] = {}  # a list: one value per row; else: the value of all rows
        self._shared: set[str] = set()

    def add(self, values: Mapping[str, Any], size: int) -> None:
        """``size`` rows: each value of ``values`` a list of ``size`` items or one for all of them."""
        if not size:
            return
        for name in _ROW_TYPES:
            value = values[name]
            shared = not isinstance(value, list)
            if not self.size:
                self.columns[name] = value if shared else list(value)
                if shared:
                    self._shared.add(name)
                continue
            if name in self._shared:
                if shared and value == self.columns[name]:
                    continue
                self.columns[name] = [self.columns[name]] * self.size
                self._shared.discard(name)
            self.columns[name].extend([value] * size if shared else value)
        self.size += size

    def per_row(self, name: str, convert: Callable[[Any], Any] | None = None) -> list[Any]:
        """The column's value for each row, through ``convert`` (None stays None) if given."""
        value = self.columns[name]
        if name in self._shared:
            return [value if convert is None or value is None else convert(value)] * self.size
        return value if convert is None else [v if v is None else convert(v) for v in value]

    def pg_params(self) -> tuple[frozenset[str], dict[str, Any]]:
        """The columns sent as arrays, and the parameters (see :func:`unnest_params`)."""
        return unnest_params({name: self.per_row(name) for name in self.columns}, always="token")


def unnest_params(columns: Mapping[str, list[Any]], *, always: str) -> tuple[frozenset[str], dict[str, Any]]:
    """For ``unnest``: the columns to send as arrays, and the parameters. A column whose rows all
    hold the same value (the platform, the outcome of a batch of 200 OK...) is sent once, as a
    scalar; ``always`` is an array whatever its values (``unnest`` needs one)."""
    arrays = {always}
    params: dict[str, Any] = {}
    for name, value in columns.items():
        if name != always and value.count(value[0]) == len(value):
            params[name] = value[0]
        else:
            arrays.add(name)
            params[name] = value
    return frozenset(arrays), params


# The notifications of :ids with an open delivery that no other transaction is writing, that
# delivery locked FOR SHARE until commit (see SqlBase._complete). SKIP LOCKED: a delivery another
# transaction is recording (or claiming) is passed over, never waited for.
#
# Through the partial index of open deliveries (``ix_outbox_deliveries_notification_open``: the
# state condition is its predicate, so a generic plan, which knows nothing of the notification,
# still uses it), read from its end: pending before in flight, as its claim skips our lock, while
# the recording of an in-flight delivery would wait for our commit.
assert f"state IN ({', '.join(repr(s) for s in OPEN)})" == OPEN_SQL, "the index must hold OPEN only"
_STILL_OPEN = text(
    "SELECT n.id FROM unnest(CAST(:ids AS varchar[])) AS n(id) CROSS JOIN LATERAL ("  # noqa: S608
    f"SELECT 1 FROM outbox_deliveries d WHERE d.notification_id = n.id AND d.{OPEN_SQL} "
    "ORDER BY d.notification_id DESC, d.state DESC LIMIT 1 FOR SHARE OF d SKIP LOCKED) AS still_open"
)


def lease_rows(
    key: Any,
    *,
    where: Sequence[Any],
    order_by: Any,
    limit: int,
    values: dict[str, Any],
    returning: Sequence[Any],
    skip_locked: bool,
) -> Any:
    """The claim statement every queue here uses: ``UPDATE t SET <lease> WHERE key IN (SELECT key
    ... ORDER BY ... LIMIT n [FOR UPDATE SKIP LOCKED]) RETURNING ...``. One statement, so that a
    claim is atomic; ``SKIP LOCKED`` (PostgreSQL) lets concurrent workers take disjoint rows
    instead of waiting on each other."""
    sub = select(key).where(*where).order_by(order_by).limit(limit)
    if skip_locked:
        sub = sub.with_for_update(skip_locked=True)
    return update(key.table).where(key.in_(sub.scalar_subquery())).values(**values).returning(*returning)


def status_from_row(row: Any, counts: dict[str, int]) -> NotificationStatus:
    return NotificationStatus(
        id=row.id,
        app=row.app,
        state=row.state,
        created_at=row.created_at,
        send_at=row.send_at,
        expires_at=row.expires_at,
        completed_at=row.completed_at,
        counts=counts,
        warnings=list(row.warnings or []),
        errors=list(row.errors or []),
        notification=dict(row.payload or {}),
        recipients=dict(row.recipients or {}),
        idempotency_key=row.idempotency_key,
        surface=row.surface,
        deliver_at_local=row.deliver_at_local,
        urgent=bool(row.urgent),
    )


def outcome_counts(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Deliveries per outcome (final ones) or state (open ones), and ``total``, per notification.

    PostgreSQL: the sums of their ``outbox_counts`` rows (a few per recorded batch), not a count
    of the deliveries, which grew with the send (~80 ms of server CPU a read at 100k deliveries).
    SQLite counts the deliveries: a row trigger per delivery moved cost more than the reads."""
    counts: dict[str, dict[str, int]] = {nid: {"total": 0} for nid in ids}
    pg = conn.dialect.name == "postgresql"
    for i in range(0, len(ids), _IN_CHUNK):
        part = list(ids[i : i + _IN_CHUNK])
        rows: Iterable[Any]
        if pg:
            rows = conn.execute(
                select(C.notification_id, C.name, func.sum(C.n))
                .where(C.notification_id.in_(part))
                .group_by(C.notification_id, C.name)
                .having(func.sum(C.n) != 0)
            )
        else:
            name = case((D.state == DeliveryState.DONE.value, D.outcome), else_=D.state)
            rows = conn.execute(
                select(D.notification_id, name, func.count())
                .where(D.notification_id.in_(part))
                .group_by(D.notification_id, name)
            )
        for nid, name, n in rows:
            c = counts[nid]
            c[str(name)] = c.get(str(name), 0) + int(n)
            c["total"] += int(n)
    return counts


# Replace the count rows of the notifications given with their sums, one row per name. The rows
# being folded by another transaction are skipped (SKIP LOCKED), not waited for: each fold puts
# back exactly what it took away, so the sums hold whoever folds what.
_PG_FOLD = text(
    "WITH gone AS (DELETE FROM outbox_counts WHERE id IN (SELECT id FROM outbox_counts "
    "WHERE notification_id = ANY(CAST(:ids AS varchar[])) FOR UPDATE SKIP LOCKED) "
    "RETURNING notification_id, name, n) "
    "INSERT INTO outbox_counts (notification_id, name, n) "
    "SELECT notification_id, name, sum(n) FROM gone GROUP BY notification_id, name HAVING sum(n) <> 0"
)


def fold_counts(conn: Connection, ids: Sequence[str]) -> None:
    """Fold the count rows of ``ids`` (PostgreSQL: SQLite keeps none)."""
    if ids and conn.dialect.name == "postgresql":
        conn.execute(_PG_FOLD, {"ids": list(ids)})


class SqlBase:
    def __init__(self, engine: Engine, *, retry: RetryPolicy | None = None) -> None:
        self.engine = engine
        self.retry = retry or RetryPolicy()
        self._pg = engine.dialect.name == "postgresql"
        self._write_lock: AbstractContextManager[Any] = nullcontext() if self._pg else threading.Lock()
        #: apps with a webhook: their completions are written as webhook events (same transaction)
        self.event_apps: Collection[str] = frozenset()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    def _insert(self, table: Any) -> Any:
        return pg_insert(table) if self._pg else sqlite_insert(table)

    @staticmethod
    def _paused(conn: Connection) -> set[str]:
        return set(conn.execute(select(AppPauseRow.app)).scalars())

    def _new_deliveries(
        self,
        into: NewDeliveries,
        notification_id: str,
        app: str,
        expires_at: datetime,
        devices: Sequence[DeviceRef],
        *,
        paused: bool,
        schedule: Mapping[str, datetime] | None = None,
        now: datetime,
        leasing: Leasing | None = None,
    ) -> None:
        """One row per device, added to ``into``. Each gets its ``apns_id`` on insert, once, so
        that every attempt, before and after a crash, carries the same one. A delivery in
        ``schedule`` waits until its time (``next_attempt_at``, which is what claims look at); one
        whose time is past the expiry waits for the expiry instead, and ends ``expired`` saying
        why. With ``leasing``, the first deliveries a claim could take now (due, app not paused,
        not expired) go to ``leasing.rows`` instead, as many as it has room for."""
        if not devices:
            return
        if leasing is not None and leasing.room > 0 and not paused and expires_at > now:
            due = [d for d in devices if schedule is None or d[1] not in schedule][: leasing.room]
            if due:
                leasing.room -= len(due)
                in_flight = self._columns(notification_id, app, expires_at, due, DeliveryState.IN_FLIGHT)
                leasing.rows.add({**in_flight, "next_attempt_at": leasing.until}, len(due))
                if len(due) == len(devices):
                    return
                taken = {d[1] for d in due}
                devices = [d for d in devices if d[1] not in taken]
        state = DeliveryState.PAUSED if paused else DeliveryState.PENDING
        values = self._columns(notification_id, app, expires_at, devices, state)
        values["next_attempt_at"] = now
        tokens = values["token"]
        if schedule:
            timings = [self._timing(schedule.get(token), now, expires_at) for token in tokens]
            values["next_attempt_at"], values["scheduled_for"], values["reason"] = (
                list(col) for col in zip(*timings, strict=True)
            )
        into.add(values, len(tokens))

    @staticmethod
    def _columns(
        notification_id: str,
        app: str,
        expires_at: datetime,
        devices: Sequence[DeviceRef],
        state: DeliveryState,
    ) -> dict[str, Any]:
        platforms, tokens, environments, emails = (list(col) for col in zip(*devices, strict=True))
        return {
            "notification_id": notification_id,
            "app": app,
            "platform": platforms,
            "token": tokens,
            "environment": environments,
            "email": emails,
            "state": state.value,
            "next_attempt_at": None,
            "expires_at": expires_at,
            "scheduled_for": None,
            "reason": None,
        }

    @staticmethod
    def _timing(
        when: datetime | None, now: datetime, expires_at: datetime
    ) -> tuple[datetime, datetime | None, str | None]:
        if when is None:
            return now, None, None
        if when >= expires_at:
            late = f"scheduled for {when.isoformat(timespec='minutes')}Z, after the notification's expiry"
            return expires_at, when, late
        return when, when, None

    def _insert_rows(self, conn: Connection, rows: NewDeliveries, now: datetime) -> int:
        """Insert delivery rows, skipping a token already there for its notification (an expansion
        resumed after a crash re-reads its last chunk); returns how many were added.

        Plain driver SQL: through SQLAlchemy's ``insertmanyvalues`` (SQLite) and psycopg's text
        array dumper (PostgreSQL), turning the rows into parameters was three quarters of the cost
        of writing them, and the insert of an ``all`` send the largest item of the worker's CPU."""
        if not rows.size:
            return 0
        if self._pg:
            arrays, params = rows.pg_params()
            return len(conn.exec_driver_sql(_pg_insert_sql(arrays), {**params, "now": now}).all())
        # executemany of one short statement: the sqlite3 module binds every row in C, and its
        # rowcount is the sum of the rows each execution added. Times are bound as SQLAlchemy
        # stores them (its DateTime's bind processor), so that they read back the same.
        cols = [
            rows.per_row(name, sqlite_time if _ROW_TYPES[name] == "timestamp" else None)
            for name in _ROW_TYPES
        ]
        stamp = sqlite_time(now)
        return int(
            conn.exec_driver_sql(
                _SQLITE_INSERT, [(*row, stamp, stamp) for row in zip(*cols, strict=True)]
            ).rowcount
        )

    def _insert_leased(self, conn: Connection, leasing: Leasing, now: datetime) -> list[ClaimedDelivery]:
        """Insert ``leasing.rows`` in flight with their owner, and return them as a claim would
        (its first attempt, in id order). A token already there for its notification (an
        expansion resumed after a crash) is skipped, as in :meth:`_insert_rows`: whoever holds
        that row sends it."""
        rows = leasing.rows
        if not rows.size:
            return []
        if self._pg:
            arrays, params = rows.pg_params()
            got = conn.exec_driver_sql(
                _pg_insert_sql(arrays, leased=True), {**params, "now": now, "owner": leasing.owner}
            ).all()
        else:
            # executemany returns no rows: the ones just added are those after the largest id
            # (an INTEGER PRIMARY KEY grows; SQLite has one writer, and this transaction is it)
            since = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM outbox_deliveries").scalar()
            cols = [
                rows.per_row(name, sqlite_time if _ROW_TYPES[name] == "timestamp" else None)
                for name in _ROW_TYPES
            ]
            stamp = sqlite_time(now)
            conn.exec_driver_sql(
                _SQLITE_INSERT_LEASED,
                [(*row, stamp, stamp, leasing.owner) for row in zip(*cols, strict=True)],
            )
            got = conn.exec_driver_sql(_SQLITE_LEASED_SINCE, (since, leasing.owner)).all()
        out = [ClaimedDelivery(r[0], r[1], r[2], r[3], r[4], r[5], r[6], 1) for r in got]
        out.sort(key=lambda c: c.id)
        return out

    def _complete(self, conn: Connection, ids: Sequence[str]) -> list[str]:
        """Mark completed those of ``ids`` that are sending and have no open delivery left; their
        ``notification.completed`` webhook events are written in this same transaction.

        Every path that can complete a notification comes through here, after the writes that
        may have made it complete (recording its last deliveries, or finishing its expansion):
        that is what closes the race between them. On PostgreSQL (READ COMMITTED), two such
        transactions would each check in a snapshot without the other's uncommitted writes, and
        neither would complete the notification. So the notification row is locked first,
        whatever its state, ``FOR NO KEY UPDATE`` (the lock an ``UPDATE`` of it takes): the later
        transaction waits for the earlier one to commit, and its check, a new statement with a
        new snapshot, sees the earlier one's work. ``finish_expansion`` holds that lock from its
        own ``UPDATE`` to ``sending``. Rows are locked in id order, so two transactions never wait
        on each other in a cycle. SQLite runs one writer at a time and needs no lock.

        That lock would make the notification row of a large send a hot row: every recording
        transaction of every worker would queue on it until commit. So a notification is first
        proven still open, without it (:data:`_STILL_OPEN`): one of its open deliveries that no
        other transaction is writing is locked ``FOR SHARE`` until we commit. It cannot become
        final before our commit, and whoever makes it final waits for our commit and checks
        after it. Only the notifications with no such delivery (nearly done) take the lock."""
        if not ids:
            return []
        ordered = sorted(set(ids))
        open_left = exists().where(D.notification_id == N.id, IS_OPEN)
        done: list[tuple[str, str]] = []
        for i in range(0, len(ordered), _IN_CHUNK):
            part = ordered[i : i + _IN_CHUNK]
            if self._pg:
                still_open = set(conn.execute(_STILL_OPEN, {"ids": part}).scalars())
                part = [nid for nid in part if nid not in still_open]
                if not part:
                    continue
                conn.execute(
                    select(N.id).where(N.id.in_(part)).order_by(N.id).with_for_update(key_share=True)
                )
            done += [
                (r.id, r.app)
                for r in conn.execute(
                    update(N)
                    .where(N.id.in_(part), N.state == NotificationState.SENDING.value, ~open_left)
                    .values(state=NotificationState.COMPLETED.value, completed_at=utcnow())
                    .returning(N.id, N.app)
                )
            ]
        fold_counts(conn, [nid for nid, _ in done])  # no count of theirs changes any more
        self._completion_events(conn, [nid for nid, app in done if app in self.event_apps])
        return [nid for nid, _ in done]

    def _completion_events(self, conn: Connection, ids: list[str]) -> None:
        for i in range(0, len(ids), _IN_CHUNK):
            part = ids[i : i + _IN_CHUNK]
            counts = outcome_counts(conn, part)
            rows = conn.execute(
                select(N.id, N.app, N.state, N.warnings, N.errors).where(N.id.in_(part))
            ).all()
            insert_events(
                conn,
                (
                    (
                        r.app,
                        "notification.completed",
                        {
                            "id": r.id,
                            "state": r.state,
                            "counts": counts[r.id],
                            "success": counts[r.id].get("delivered", 0) > 0,
                            "warnings": list(r.warnings or []),
                            "errors": list(r.errors or []),
                        },
                    )
                    for r in rows
                ),
            )
