"""Operator logs over a real sandbox run: one line per failed attempt with the token masked,
identical refusals summed up, an app refused on every attempt said once per window, deliveries
left unclaimed past their due time reported."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from pushrelay.config.model import ServiceConfig
from pushrelay.db import Database
from pushrelay.logs import get_logger
from pushrelay.queue import NotificationRequest, Recipients, SqlOutbox
from pushrelay.queue.models import DeliveryRow, utcnow
from pushrelay.sandbox import ApnsSandbox
from pushrelay.server.service import Service, ServiceSettings
from pushrelay.worker.attempt_log import AttemptLog

from .conftest import running_service, sandbox_config

N = {"title": "t", "body": "b"}


def _tok(i: int) -> str:
    return f"{i:064x}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _service(
    url: str, sandbox: ApnsSandbox, tmp: Path, **worker: float
) -> AbstractAsyncContextManager[Service]:
    settings = ServiceSettings.from_config(ServiceConfig(worker_poll=0.05, sweep_every=0.2))
    settings = dataclasses.replace(settings, worker=dataclasses.replace(settings.worker, **worker))
    return running_service(sandbox_config(url, sandbox, tmp), settings)


async def _completed(service: Service, nid: str) -> None:
    for _ in range(600):
        status = await asyncio.to_thread(service.outbox.status, nid)
        if status is not None and status.state == "completed":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{nid} not completed: {status}")


def _lines(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, object]]:
    return [dict(getattr(r, "fields", {})) for r in caplog.records if r.getMessage() == name]


async def test_refusals_are_logged_masked_summed_up_and_an_all_refused_app_says_so(
    sqlite_url: str, sandbox: ApnsSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pushrelay")
    bad = [_tok(i) for i in range(1, 11)]
    for t in bad:
        sandbox.script(t, "bad_token")
    clock = Clock()
    async with _service(sqlite_url, sandbox, tmp_path) as service:
        assert service.worker is not None
        service.worker.attempts = AttemptLog(get_logger("worker"), window=60, clock=clock)
        # window 1: every attempt of the app refused
        nid = service.outbox.enqueue(NotificationRequest("myapp", N, Recipients(device_tokens=tuple(bad)))).id
        await _completed(service, nid)
        clock.now += 61  # the sweep loop ends the window
        for _ in range(200):
            if _lines(caplog, "app.all_refused"):
                break
            await asyncio.sleep(0.05)
        # window 2: refused and delivered: no all_refused line for it
        mixed = (_tok(100), bad[0])
        nid = service.outbox.enqueue(NotificationRequest("myapp", N, Recipients(device_tokens=mixed))).id
        await _completed(service, nid)
        clock.now += 61
        for _ in range(200):
            if (
                len(_lines(caplog, "delivery.failed")) == 4
                and service.worker.attempts._current.started == clock.now
            ):
                break
            await asyncio.sleep(0.05)
    failed = _lines(caplog, "delivery.failed")
    assert len(failed) == 4  # 3 in full in window 1, 1 in window 2
    first = failed[0]
    assert first["app"] == "myapp" and first["platform"] == "ios"
    assert first["status"] == 400 and first["reason"] == "BadDeviceToken"
    device = str(first["device"])
    assert device.startswith("000000") and len(device) == 11 and device[6] == "…"
    (repeated,) = _lines(caplog, "delivery.failed_repeated")
    assert repeated["suppressed"] == 7 and repeated["reason"] == "BadDeviceToken"
    (refused,) = _lines(caplog, "app.all_refused")
    assert refused["app"] == "myapp" and refused["refused"] == 10 and refused["reason"] == "BadDeviceToken"
    assert not any(t in caplog.text for t in bad)  # never a whole token
    for r in caplog.records:
        assert not any(t in str(v) for t in bad for v in getattr(r, "fields", {}).values())


async def test_deliveries_left_unclaimed_past_their_due_time_are_reported(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One delivery loop, held by a slow answer: the deliveries behind it are overdue."""
    caplog.set_level(logging.INFO, logger="pushrelay")
    slow = _tok(50)
    sandbox.script(slow, "delay", times=1, seconds=30)
    async with _service(
        database_url,
        sandbox,
        tmp_path,
        concurrency=1,
        chunk=1,
        overdue_after=0.5,
        report_window=0.2,
        shutdown_grace=0.5,
    ) as service:
        service.outbox.enqueue(NotificationRequest("myapp", N, Recipients(device_tokens=(slow,))))
        for _ in range(200):  # the slow one is in flight: the loop is busy
            if service.worker is not None and service.worker._held:
                break
            await asyncio.sleep(0.05)
        service.outbox.enqueue(
            NotificationRequest("myapp", N, Recipients(device_tokens=(_tok(51), _tok(52))))
        )
        for _ in range(600):
            if _lines(caplog, "deliveries.overdue"):
                break
            await asyncio.sleep(0.05)
        sandbox.clear_scripts()
    late = _lines(caplog, "deliveries.overdue")[0]
    assert late["app"] == "myapp" and late["count"] == 2


def test_overdue_counts_what_is_due_and_unclaimed_per_app(database_url: str) -> None:
    db = Database(database_url)
    try:
        ob = SqlOutbox(db.engine)
        for app in ("a", "b"):
            nid = ob.enqueue(NotificationRequest(app, N, Recipients(device_tokens=(_tok(1),)))).id
            (job,) = ob.claim_expansions("w", limit=10, lease=30)
            ob.expand_many("w", [(job.notification_id, [("ios", _tok(1), None, None)], [], [])])
            assert job.notification_id == nid
        assert ob.overdue(60) == []  # due just now
        with db.engine.begin() as conn:
            conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.app == "a")
                .values(next_attempt_at=utcnow() - timedelta(minutes=5))
            )
        (late,) = ob.overdue(60)
        assert (late.app, late.count) == ("a", 1)
        assert late.oldest_due < utcnow() - timedelta(minutes=4)
        ob.pause("a", "test", platform=None, by="operator", fingerprint=None)
        assert ob.overdue(60) == []  # a paused app's deliveries wait on purpose
    finally:
        db.dispose()
