"""Poison isolation: a notification that cannot be expanded or rendered fails alone, at once, with
its reason recorded; the notifications claimed with it are delivered; nothing stays ``expanding``
(the heartbeat renews only work in progress).

The poison is injected below the API (the accept side refuses what it can see): straight into the
outbox table, or by a per-device renderer that raises for one notification. The worker runs in
this process against the APNs sandbox over TLS, on SQLite and on the real PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from pushrelay.config.model import ServiceConfig
from pushrelay.db import Database
from pushrelay.notification import Notification
from pushrelay.queue import NotificationRequest, Recipients, RetryPolicy, SqlOutbox
from pushrelay.queue.interface import NotificationStatus
from pushrelay.queue.models import DeliveryRow, NotificationRow, utcnow
from pushrelay.sandbox import ApnsSandbox
from pushrelay.server.service import Service, ServiceSettings

from .conftest import running_service, sandbox_config

N = NotificationRow
D = DeliveryRow
OK = {"title": "fine", "body": "b"}


def _tok(i: int) -> str:
    return f"{i:064x}"


def _service(
    url: str, sandbox: ApnsSandbox, tmp: Path, lease: float = 30.0
) -> AbstractAsyncContextManager[Service]:
    settings = ServiceSettings.from_config(
        ServiceConfig(worker_poll=0.05, sweep_every=0.5, worker_lease=lease, retry_base=0.2, retry_cap=1)
    )
    return running_service(sandbox_config(url, sandbox, tmp), settings)


async def _final(service: Service, ids: list[str], timeout: float = 30.0) -> dict[str, NotificationStatus]:
    """Poll until every notification of ``ids`` is completed (generous timeout: no timing asserted)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = {nid: await asyncio.to_thread(service.outbox.status, nid) for nid in ids}
        if all(s is not None and s.state == "completed" for s in found.values()):
            return {k: v for k, v in found.items() if v is not None}
        assert loop.time() < deadline, {k: (v.state, v.counts) if v else None for k, v in found.items()}
        await asyncio.sleep(0.05)


def _enqueue(service: Service, recipients: Recipients, payload: dict[str, Any] | None = None) -> str:
    return service.outbox.enqueue(NotificationRequest("myapp", payload or OK, recipients)).id


def _poison_recipients(service: Service, nid: str, database_url: str) -> None:
    """What makes the expansion of ``nid`` raise: on PostgreSQL the original poison, an e-mail with
    a NUL byte (the registry query fails with a DataError); on SQLite a recipients row no release
    would write (an e-mail that is an object)."""
    bad: dict[str, Any] = (
        {"emails": ["ann\x00@example.com"], "device_tokens": [], "all": False}
        if database_url.startswith("postgresql")
        else {"emails": [{"not": "an e-mail"}], "device_tokens": [], "all": False}
    )
    with service.db.engine.begin() as conn:
        conn.execute(update(N).where(N.id == nid).values(recipients=bad))


def _hold(service: Service, ids: list[str]) -> None:
    with service.db.engine.begin() as conn:  # due in an hour: the worker claims them all at once later
        conn.execute(update(N).where(N.id.in_(ids)).values(due_at=utcnow() + timedelta(hours=1)))


def _release(service: Service, ids: list[str]) -> None:
    with service.db.engine.begin() as conn:
        conn.execute(update(N).where(N.id.in_(ids)).values(due_at=utcnow()))


async def test_a_poisoned_expansion_fails_alone_and_the_others_are_delivered(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    async with _service(database_url, sandbox, tmp_path) as service:
        # enqueued while held back, so that one claim takes the poison with the others
        ids = [_enqueue(service, Recipients(device_tokens=(_tok(i),))) for i in range(1, 6)]
        _hold(service, ids)
        poison = ids[2]
        _poison_recipients(service, poison, database_url)
        _release(service, ids)
        found = await _final(service, ids)
    bad = found.pop(poison)
    assert bad.counts == {"total": 0}
    (error,) = bad.errors
    assert error.startswith("expansion failed: ")
    assert "SELECT" not in error and "example.com" not in error  # the driver's error, not the statement
    if database_url.startswith("postgresql"):
        assert "DataError" in error and "NUL" in error
    assert all(s.counts == {"total": 1, "delivered": 1} for s in found.values())
    assert len(sandbox.all_received()) == 4
    assert (
        service.metrics.registry.get_sample_value("pushrelay_expansions_failed_total", {"app": "myapp"}) == 1
    )


async def test_an_expansion_left_unfinished_is_not_renewed_and_is_taken_again(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat bug: failing the poisoned notification fails as well (the database hiccups);
    the worker gives the expansion up, so its lease must run out and the expansion be claimed
    again, not be renewed forever as ``expanding``."""
    async with _service(database_url, sandbox, tmp_path, lease=1.5) as service:
        calls: list[str] = []
        real = service.outbox.fail_expansion

        def fail_once(notification_id: str, worker_id: str, reason: str) -> list[str]:
            calls.append(notification_id)
            if len(calls) == 1:
                raise RuntimeError("the database went away")
            return real(notification_id, worker_id, reason)

        monkeypatch.setattr(service.outbox, "fail_expansion", fail_once)
        nid = _enqueue(service, Recipients(device_tokens=(_tok(9),)))
        _hold(service, [nid])
        _poison_recipients(service, nid, database_url)
        _release(service, [nid])
        found = await _final(service, [nid])
    assert calls == [nid, nid]  # claimed again after its lease ran out
    assert found[nid].errors[0].startswith("expansion failed: ")


async def test_what_cannot_be_rendered_fails_alone_at_once(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payload over APNs' 4 KB (only known at delivery) and a per-device renderer that raises:
    each fails its own delivery as ``payload_rejected`` after one attempt; the deliveries of the
    same chunk go out."""
    from pushrelay.worker import runner

    real: Callable[..., Notification] = runner.for_device

    def render(notification: Notification, **kw: str) -> Notification:
        if notification.title == "boom":
            raise KeyError("no translation for 'boom'")
        return real(notification, **kw)

    monkeypatch.setattr(runner, "for_device", render)
    async with _service(database_url, sandbox, tmp_path) as service:
        huge = _enqueue(service, Recipients(device_tokens=(_tok(20),)), {"title": "t", "body": "x" * 5000})
        boom = _enqueue(service, Recipients(device_tokens=(_tok(21),)), {"title": "boom"})
        fine = _enqueue(service, Recipients(device_tokens=(_tok(22), _tok(23))))
        found = await _final(service, [huge, boom, fine])
        with service.db.engine.connect() as conn:
            rows = {r.token: r for r in conn.execute(select(D.token, D.attempts, D.outcome, D.reason))}
    assert found[fine].counts == {"total": 2, "delivered": 2}
    assert found[huge].counts == {"total": 1, "payload_rejected": 1}
    assert found[boom].counts == {"total": 1, "payload_rejected": 1}
    assert rows[_tok(20)].attempts == 1 and "4096" in rows[_tok(20)].reason
    assert rows[_tok(21)].attempts == 1
    assert rows[_tok(21)].reason == "cannot be rendered: KeyError: \"no translation for 'boom'\""
    assert {r.token for r in sandbox.all_received()} == {_tok(22), _tok(23)}


def test_fail_expansion_is_the_lease_holders_and_keeps_what_was_written(database_url: str) -> None:
    db = Database(database_url)
    try:
        ob = SqlOutbox(db.engine, retry=RetryPolicy(base=0.01, cap=0.05))
        nid = ob.enqueue(NotificationRequest("a", OK, Recipients(all=True))).id
        (_job,) = ob.claim_expansions("w1", limit=10, lease=30)
        ob.add_deliveries(nid, [("ios", _tok(1), None, None)], cursor="1", worker_id="w1", lease=30)
        assert ob.fail_expansion(nid, "w2", "not mine") == []  # another worker's lease: untouched
        assert ob.fail_expansion(nid, "w1", "ValueError: bad") == []  # one delivery still open
        status = ob.status(nid)
        assert status is not None and status.state == "sending"
        assert status.errors == ["expansion failed: ValueError: bad"]
        assert len(ob.claim("w1", limit=10, lease=30)) == 1  # what was written is still delivered
        # the heartbeat renews only the work named in progress
        assert ob.heartbeat("w1", lease=300, deliveries=set(), expansions=set()) == 0
    finally:
        db.dispose()


def test_an_unreadable_row_fails_alone_in_the_claim(database_url: str) -> None:
    db = Database(database_url)
    try:
        ob = SqlOutbox(db.engine)
        ids = [
            ob.enqueue(NotificationRequest("a", OK, Recipients(device_tokens=(_tok(i),)))).id for i in (1, 2)
        ]
        with db.engine.begin() as conn:
            conn.execute(update(N).where(N.id == ids[0]).values(recipients={"emails": 5}))
        (job,) = ob.claim_expansions("w1", limit=10, lease=30)
        assert job.notification_id == ids[1]
        bad = ob.status(ids[0])
        assert bad is not None and bad.state == "completed"
        assert bad.errors == [
            "expansion failed: unreadable recipients: TypeError: 'int' object is not iterable"
        ]
    finally:
        db.dispose()


async def test_a_chunk_given_up_after_an_error_is_not_renewed_and_is_sent_again(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat bug, delivery side: recording the chunk's answers fails (the database
    hiccups); the loop gives the chunk up, so its leases must run out and the deliveries be sent
    again (same apns-id), not be renewed for the 10 minutes a held chunk may last."""
    async with _service(database_url, sandbox, tmp_path, lease=1.5) as service:
        calls: list[int] = []
        real = service.outbox.record

        def fail_once(worker_id: str, results: Any, **kw: Any) -> Any:
            calls.append(len(results))
            if len(calls) == 1:  # what SQLAlchemy raises when the connection is gone
                raise OperationalError("UPDATE outbox_deliveries ...", None, Exception("server closed"))
            return real(worker_id, results, **kw)

        monkeypatch.setattr(service.outbox, "record", fail_once)
        tok = _tok(30)
        nid = _enqueue(service, Recipients(device_tokens=(tok,)))
        found = await _final(service, [nid])
        with service.db.engine.connect() as conn:
            attempts = conn.execute(select(D.attempts)).scalar_one()
    assert found[nid].counts == {"total": 1, "delivered": 1}
    assert attempts == 2 and len(calls) == 2
    ids = [r.apns_id for r in sandbox.received(tok)]
    assert len(ids) == 2 and ids[0] == ids[1]  # a duplicate the device can recognise, not a loss


class _NulReason:
    """The provider client, except that its answer for ``token`` carries a NUL byte in its reason
    (PostgreSQL refuses to store it)."""

    def __init__(self, inner: Any, token: str) -> None:
        self.inner = inner
        self.token = token

    def send_many(self, items: Any) -> AsyncIterator[Any]:
        async def answers() -> AsyncIterator[Any]:
            async for res in self.inner.send_many(items):
                if res.token == self.token:
                    res.reason = "Odd\x00Reason"
                yield res

        return answers()


async def test_an_answer_the_database_refuses_does_not_keep_its_chunk_unrecorded(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = _tok(41)
    async with _service(database_url, sandbox, tmp_path) as service:
        real_get = service.pool.get

        async def get(app: str, platform: str, environment: str | None) -> Any:
            return _NulReason(await real_get(app, platform, environment), odd)

        monkeypatch.setattr(service.pool, "get", get)
        tokens = (_tok(40), odd, _tok(42), _tok(43))
        nid = _enqueue(service, Recipients(device_tokens=tokens))
        found = await _final(service, [nid])
        with service.db.engine.connect() as conn:
            rows = {r.token: r for r in conn.execute(select(D.token, D.attempts, D.reason))}
    assert found[nid].counts == {"total": 4, "delivered": 4}
    assert all(r.attempts == 1 for r in rows.values())  # recorded at once, none sent twice
    assert len(sandbox.all_received()) == 4
    if database_url.startswith("postgresql"):
        assert rows[odd].reason.startswith("answer not recordable as given: DataError: ")
        assert all(rows[t].reason is None for t in tokens if t != odd)
