"""Workers woken by LISTEN/NOTIFY on PostgreSQL, with polling as the fallback (queue/wakeup.py).

An in-process worker (``run_service`` without the API) against the APNs sandbox, work committed
through another engine, as the API of another process would: nothing in this process tells the
worker about it. Its poll interval is long, so only a notification can wake it in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import update

from pushrelay.config import config_from_dict
from pushrelay.config.model import ServiceConfig
from pushrelay.db import Database
from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue import NotificationRequest, Recipients, SqlOutbox
from pushrelay.queue.models import DeliveryRow, utcnow
from pushrelay.queue.wakeup import WorkListener, notify_work
from pushrelay.sandbox import ApnsSandbox
from pushrelay.server.runtime import run_service
from pushrelay.server.service import Service, ServiceSettings
from pushrelay.server.wiring import build_service

from .conftest import BUNDLE, TEAM

N = {"title": "wake", "body": "up"}
LONG = 60.0  # seconds: the idle wait nobody would notice in a test that passes in a few


def _service(url: str, sb: ApnsSandbox, tmp: Path, **settings: Any) -> Service:
    key = sb.create_key(TEAM, "WAKEKEY001", tmp)
    config = config_from_dict(
        {
            "database": {"url": url},
            "apps": {
                "myapp": {
                    "bundle_id": BUNDLE,
                    "apns": {
                        "team_id": TEAM,
                        "key_file": str(key),
                        "endpoint": sb.url,
                        "ca_file": str(sb.ca_file),
                    },
                }
            },
        }
    )
    service = build_service(config, settings=ServiceSettings.from_config(ServiceConfig(**settings)))
    service.use_config(config)
    return service


async def _until(pred: Callable[[], Any], timeout: float, what: str) -> float:
    """Seconds until ``pred()`` (run in a thread) is true."""
    t0 = time.monotonic()
    while not await asyncio.to_thread(pred):
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


class Running:
    def __init__(self, service: Service, sender: SqlOutbox, sandbox: ApnsSandbox) -> None:
        self.service, self.sender, self.sandbox = service, sender, sandbox
        assert service.worker is not None
        self.worker = service.worker

    async def send(self, token: str) -> float:
        """Commit a notification from the other engine; seconds until APNs received it."""
        req = NotificationRequest("myapp", N, Recipients(device_tokens=(token,)))
        await asyncio.to_thread(self.sender.enqueue, req)
        return await _until(lambda: self.sandbox.received(token), 60, f"the push to {token[-4:]}")

    async def settle(self) -> None:
        """Let the loops finish what they were doing and go idle (a long wait while listening)."""
        await asyncio.sleep(1.0)


@contextlib.asynccontextmanager
async def _running(
    pg_url: str, sandbox: ApnsSandbox, tmp: Path, gate: asyncio.Event | None = None, **settings: Any
) -> AsyncIterator[Running]:
    service = _service(pg_url, sandbox, tmp, **settings)
    assert service.worker is not None and service.worker.listener is not None
    if gate is not None:  # connections fail while the gate is closed
        listener = service.worker.listener
        real: Callable[[], Awaitable[Any]] = listener._connect

        async def gated() -> Any:
            if not gate.is_set():
                raise OSError("the test keeps the listener from reconnecting")
            return await real()

        listener._connect = gated
    sender_db = Database(pg_url, migrate=False)
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(service, api=False, stop=stop))
    try:
        listener = service.worker.listener
        await _until(lambda: listener.listening, 30, "the listener")
        yield Running(service, SqlOutbox(sender_db.engine), sandbox)
    finally:
        stop.set()
        await task
        service.close()
        sender_db.dispose()


@pytest.mark.postgres
async def test_new_work_wakes_an_idle_worker_at_once(
    pg_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    async with _running(pg_url, sandbox, tmp_path, worker_poll=LONG, worker_idle_max=LONG) as run:
        await run.settle()
        took = await run.send(f"{1:064x}")
        # without the notification, its loops would sleep LONG seconds; a loaded 2-core machine
        # takes well under 10 from commit to APNs (about 10 ms when idle, see bench/wakeup_latency.py)
        assert took < 10, took
        await run.settle()
        assert await run.send(f"{2:064x}") < 10  # every time, not only the first


@pytest.mark.postgres
async def test_the_listener_reconnects_and_polling_covers_the_gap(
    pg_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    gate.set()
    async with _running(pg_url, sandbox, tmp_path, gate, worker_poll=0.3, worker_idle_max=LONG) as run:
        listener = run.worker.listener
        assert listener is not None and listener.connected_count == 1
        first_pid = listener.backend_pid
        gate.clear()
        admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            killed = conn.execute("SELECT pg_terminate_backend(%s)", (first_pid,)).fetchone()
        assert killed == (True,)
        await _until(lambda: not listener.listening, 30, "the listener to notice")
        # deaf, the worker polls every worker_poll: the push still goes out
        await run.send(f"{3:064x}")
        assert not listener.listening and listener.connected_count == 1
        gate.set()
        await _until(lambda: listener.listening, 60, "the listener to reconnect")
        assert listener.connected_count == 2 and listener.backend_pid != first_pid
        await run.settle()
        assert await run.send(f"{4:064x}") < 10  # woken again, not by the clock (LONG)


@pytest.mark.postgres
async def test_a_retry_is_claimed_when_due_while_listening(
    pg_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    """Nothing notifies a retry's time: the idle wait ends at the earliest due time instead."""
    tok = f"{5:064x}"
    sandbox.script(tok, "unavailable", times=1)
    async with _running(
        pg_url, sandbox, tmp_path, worker_poll=0.2, worker_idle_max=LONG, retry_base=1, retry_cap=1
    ) as run:
        await run.settle()
        assert await run.send(tok) < 15  # refused once (503), sent again about a second later


def test_earliest_due_and_the_idle_wait(database_url: str) -> None:
    db = Database(database_url)
    try:
        ob = SqlOutbox(db.engine)
        assert ob.earliest_due() is None
        assert ob.idle_wait(0.25, 5.0) == 5.0  # nothing waits: the longest wait
        ob.enqueue(NotificationRequest("a", N, Recipients(device_tokens=("aa" * 32,))))
        assert ob.idle_wait(0.25, 5.0) == 0.25  # due now: never below the poll interval
        (job,) = ob.claim_expansions("w", limit=5, lease=30)
        ob.add_deliveries(job.notification_id, [("ios", "aa" * 32, None, None)], cursor=None,
                          worker_id="w", lease=30)  # fmt: skip
        ob.finish_expansion(job.notification_id, warnings=[], errors=[])
        (claimed,) = ob.claim("w", limit=5, lease=30)
        # in flight: due again when the lease runs out (30 s), so the longest wait
        assert 29 < (ob.earliest_due() - utcnow()).total_seconds() <= 30  # type: ignore[operator]
        assert ob.idle_wait(0.25, 5.0) == 5.0
        ob.record("w", [(claimed, DeliveryResult(claimed.token, Outcome.RETRY, 503, "x", retry_after=2.0))])
        assert 1.5 < ob.idle_wait(0.25, 5.0) <= 2.0  # the retry's time
        with db.engine.begin() as conn:
            conn.execute(update(DeliveryRow).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
            notify_work(conn)  # a no-op on SQLite
        assert ob.idle_wait(0.25, 5.0) == 0.25
    finally:
        db.dispose()


def test_no_listener_on_sqlite(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        assert WorkListener.for_engine(db.engine) is None
    finally:
        db.dispose()
