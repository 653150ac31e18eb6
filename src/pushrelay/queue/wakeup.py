"""Waking workers when work becomes due: LISTEN/NOTIFY on PostgreSQL, polling as the fallback.

A transaction that makes work due *now* (a notification accepted, deliveries written by an
expansion, a paused app resumed, leases given back at shutdown, parked deliveries freed) runs
``NOTIFY pushrelay_work`` (:func:`notify_work`). PostgreSQL delivers it at commit, never before,
so a woken worker's claim sees the rows; identical notifications of one transaction are
delivered once, so a transaction that calls it several times costs one message.

Every worker process holds one dedicated connection that ``LISTEN``\\ s on that channel
(:class:`WorkListener`, psycopg 3 in autocommit, outside the engine's pool) and wakes its idle
loops the moment a notification arrives. While it listens, a loop that found nothing sleeps
until the earliest time at which something becomes due by the clock alone (a retry's backoff, a
scheduled send, a lease that runs out: :meth:`OutboxWakeups.earliest_due`), at most
``WorkerSettings.idle_max`` and at least ``poll``. When the connection is lost, the listener
says so, reconnects with backoff, and meanwhile the loops poll every ``poll`` seconds as they
always did; once listening again it wakes them once, for what was committed in between.

SQLite has no such channel: workers there poll, and the API wakes the workers of its own process
directly (``Worker.wake``).

A transaction-pooling proxy (PgBouncer ``pool_mode = transaction``) cannot carry ``LISTEN``: point
the workers at PostgreSQL directly, or set ``worker_listen = false`` (see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text

from ..backoff import Backoff
from ..logs import event, get_logger
from .interface import DeliveryState, NotificationState
from .models import utcnow
from .sql_base import D, N, SqlBase

__all__ = ["CHANNEL", "OutboxWakeups", "WorkListener", "notify_work"]

CHANNEL = "pushrelay_work"
_NOTIFY = text(f"NOTIFY {CHANNEL}")

log = get_logger("worker")


def notify_work(conn: Connection) -> None:
    """Tell every listening worker, when this transaction commits, that work is due now. Nothing on
    SQLite (no other process can listen there)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY)


class OutboxWakeups(SqlBase):
    def earliest_due(self) -> datetime | None:
        """The earliest time (naive UTC, like the columns) at which a delivery or an expansion is,
        or becomes, claimable by the clock alone; None when nothing is waiting. One statement of
        five index look-ups (``min`` per state on the ``(state, time)`` indexes)."""
        parts = [
            select(func.min(D.next_attempt_at)).where(D.state == state).scalar_subquery()
            for state in (DeliveryState.PENDING.value, DeliveryState.IN_FLIGHT.value)
        ] + [
            select(func.min(N.due_at)).where(N.state == state).scalar_subquery()
            for state in (
                NotificationState.SCHEDULED.value,
                NotificationState.PENDING.value,
                NotificationState.EXPANDING.value,
            )
        ]
        with self.engine.connect() as conn:
            found = conn.execute(select(*parts)).one()
        return min((t for t in found if t is not None), default=None)

    def idle_wait(self, poll: float, longest: float) -> float:
        """Seconds an idle worker that listens may sleep: until :meth:`earliest_due`, between
        ``poll`` and ``longest``."""
        due = self.earliest_due()
        if due is None:
            return longest
        return min(longest, max(poll, (due - utcnow()).total_seconds()))


Connect = Callable[[], Awaitable[Any]]


class WorkListener:
    """``LISTEN pushrelay_work`` on one connection of its own; :meth:`run` calls ``on_work`` for
    every notification. ``listening`` is true while the ``LISTEN`` is in place and the connection
    answered its last check."""

    def __init__(
        self,
        connect: Connect,
        *,
        check_every: float = 30.0,
        reconnect: Backoff | None = None,
        name: str = "",
    ) -> None:
        """``connect``: a coroutine function returning a psycopg ``AsyncConnection`` in autocommit.
        ``check_every``: seconds without a notification after which the connection is checked
        (``SELECT 1``): a connection cut without a word (a NAT or a firewall dropping it) would
        otherwise leave us deaf while we believe we listen."""
        self._connect = connect
        self.check_every = check_every
        self.reconnect = reconnect or Backoff(base=0.5, cap=15.0)
        self.name = name
        self.listening = False
        self.connected_count = 0  # successful LISTENs so far: the first, then each reconnection
        self.backend_pid: int | None = None

    @classmethod
    def for_engine(cls, engine: Engine, *, name: str = "") -> WorkListener | None:
        """A listener on the database of ``engine`` with the same connection settings; None unless
        it is PostgreSQL."""
        if engine.dialect.name != "postgresql":
            return None
        _args, params = engine.dialect.create_connect_args(engine.url)
        params = {k: v for k, v in params.items() if k != "context"}  # SQLAlchemy's type adapters
        params.setdefault("application_name", "pushrelay-listen")
        params.setdefault("connect_timeout", 10)

        async def connect() -> Any:
            import psycopg

            return await psycopg.AsyncConnection.connect(autocommit=True, **params)

        return cls(connect, name=name)

    async def run(self, on_work: Callable[[], None]) -> None:
        """Listen until cancelled, reconnecting after any failure."""
        failures = 0
        while True:
            try:
                await self._listen(on_work)
                failures = 0  # pragma: no cover - _listen returns only by raising
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = self.reconnect.delay(failures)
                level = logging.WARNING if failures == 1 else logging.ERROR
                event(log, level, "worker.listen_lost", worker=self.name, error=repr(exc)[:300],
                      retry_in=round(delay, 2),
                      hint="polling meanwhile; LISTEN needs a direct connection (no transaction pooling)")  # fmt: skip
                await asyncio.sleep(delay)

    async def _listen(self, on_work: Callable[[], None]) -> None:
        conn = await self._connect()
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            self.listening = True
            self.connected_count += 1
            event(log, logging.INFO, "worker.listening", worker=self.name, channel=CHANNEL)
            on_work()  # what was committed while we were not listening
            while True:
                async for _note in conn.notifies(timeout=self.check_every):
                    on_work()
                await asyncio.wait_for(conn.execute("SELECT 1"), timeout=10)
        finally:
            if self.listening:
                self.listening = False
                # loops asleep for a long wait must go back to polling now, not when it ends
                on_work()
            with contextlib.suppress(Exception):
                await conn.close()
