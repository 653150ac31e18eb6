"""Several workers on one PostgreSQL: each delivery attempted once, no row they all queue on.

Two real ``pushrelay worker`` processes and ``pushrelay serve --api-only`` share one send to
3,000 devices; the APNs sandbox counts what it received per apns-id. Then, with two real
connections (the harness of test_completion_race.py), the recording of a large send is shown not
to wait on its notification row, while two workers recording its last two deliveries at once
still complete it exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from pushrelay.db import Database
from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue import NotificationRequest, Recipients, SqlOutbox
from pushrelay.queue.models import DeliveryRow, utcnow
from pushrelay.sandbox import ApnsSandbox

from .conftest import Stack, assert_counts_add_up, register_and_send_all, wait_until
from .test_completion_race import _race, _Second

pytestmark = pytest.mark.postgres

DEVICES = 3000


@pytest.fixture
def database_url(pg_url: str) -> str:
    """These races need PostgreSQL's row locks: conftest's ``outbox`` fixture runs on it here."""
    return pg_url


def test_two_worker_processes_attempt_each_delivery_once(
    pg_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    stack = Stack(pg_url, sandbox, tmp_path, None)
    # small chunks, so that both workers take part however fast the first one starts
    env = {**os.environ, **stack.service.env, "PUSHRELAY_WORKER_CHUNK": "50", "PUSHRELAY_WORKER_CONCURRENCY": "2",
           "PUSHRELAY_WORKER_POLL": "5"}  # fmt: skip
    stack.service.start("--api-only")
    workers: list[subprocess.Popen[bytes]] = []
    logs = [(tmp_path / f"worker{k}.log").open("wb") for k in range(2)]
    try:
        for log in logs:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "pushrelay", "worker", "--config", str(stack.config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        wait_until(
            lambda: all("worker.listening" in (tmp_path / f"worker{k}.log").read_text() for k in range(2)),
            60,
            "both workers to listen",
        )
        tokens = [f"{i:064x}" for i in range(DEVICES)]
        nid = register_and_send_all(stack, tokens)
        with stack.client(stack.admin) as c:
            wait_until(
                lambda: c.get(f"/v1/notifications/{nid}").json()["state"] == "completed", 120, "the send"
            )
            counts = c.get(f"/v1/notifications/{nid}").json()["counts"]
        assert counts == {"total": DEVICES, "delivered": DEVICES}, counts
        received = sandbox.all_received()
        per_id = Counter(r.apns_id for r in received)
        assert len(per_id) == DEVICES and set(per_id.values()) == {1}  # each once, none twice
        assert {r.token for r in received} == set(tokens)
        # each worker process has its own APNs connection: both sent a share
        by_connection = Counter(r.connection_id for r in received)
        assert len(by_connection) >= 2, by_connection
        db = Database(pg_url, migrate=False)
        try:
            with db.engine.connect() as conn:
                attempts = Counter(conn.execute(select(DeliveryRow.attempts)).scalars())
        finally:
            db.dispose()
        assert attempts == {1: DEVICES}  # no delivery was claimed twice
        assert_counts_add_up(pg_url)  # two workers' deltas, none lost or doubled
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(5)
        for log in logs:
            log.close()
        stack.service.stop()


def _sending(ob: SqlOutbox, tokens: list[str]) -> str:
    nid = ob.enqueue(NotificationRequest("a", {"title": "t"}, Recipients(all=True))).id
    assert len(ob.claim_expansions("expander", limit=1, lease=30)) == 1
    devices = [("ios", t, None, None) for t in tokens]
    assert ob.add_deliveries(nid, devices, cursor=None, worker_id="expander", lease=30) == len(tokens)
    assert ob.finish_expansion(nid, warnings=[], errors=[]) == []
    return nid


def test_recording_a_large_send_does_not_wait_on_its_notification_row(outbox: SqlOutbox) -> None:
    """Two recordings of one notification's deliveries while others are still open: the second
    does not wait for the first to commit (before, both locked the notification row)."""
    nid = _sending(outbox, ["t1", "t2", "t3"])
    one, two = outbox.claim("w1", limit=1, lease=30), outbox.claim("w2", limit=1, lease=30)
    with outbox.engine.connect() as conn:
        tx = conn.begin()
        first = outbox._record(
            conn, "w1", [(one[0], DeliveryResult(one[0].token, Outcome.DELIVERED, 200))], utcnow()
        )
        assert first.completed == []
        other = _Second(
            lambda: outbox.record("w2", [(two[0], DeliveryResult(two[0].token, Outcome.DELIVERED, 200))])
        )
        other.start()
        other.join(20)
        finished_while_first_open = not other.is_alive()
        tx.commit()
    other.join(20)
    assert other.error is None, other.error
    assert finished_while_first_open, "the second recording waited for the first one's commit"
    assert other.result.completed == [] and outbox.status(nid).state == "sending"  # type: ignore[union-attr]


def test_two_workers_recording_the_last_deliveries_at_once_complete_it_once(outbox: SqlOutbox) -> None:
    nid = _sending(outbox, ["t1", "t2"])
    (one,), (two,) = outbox.claim("w1", limit=1, lease=30), outbox.claim("w2", limit=1, lease=30)
    first, second = _race(
        outbox,
        lambda conn: outbox._record(
            conn, "w1", [(one, DeliveryResult(one.token, Outcome.DELIVERED, 200))], utcnow()
        ),
        lambda: outbox.record("w2", [(two, DeliveryResult(two.token, Outcome.DELIVERED, 200))]),
    )
    # the first saw the second's delivery open and nobody writing it: it kept it open until its
    # commit; the second waited for that, then found nothing open and completed the notification
    assert first.completed == [] and second.completed == [nid]
    assert outbox.status(nid).state == "completed"  # type: ignore[union-attr]


def test_an_expansion_that_lost_its_lease_keeps_nothing_of_its_chunk(database_url: str) -> None:
    """add_deliveries checks the lease with its last statement: lost meanwhile, the chunk's rows
    are rolled back (both databases)."""
    db = Database(database_url)
    try:
        ob = SqlOutbox(db.engine)
        nid = ob.enqueue(NotificationRequest("a", {"title": "t"}, Recipients(all=True))).id
        assert len(ob.claim_expansions("w1", limit=1, lease=30)) == 1
        assert ob.add_deliveries(nid, [("ios", "t1", None, None)], cursor="1", worker_id="w1", lease=30) == 1
        assert ob.add_deliveries(nid, [("ios", "t2", None, None)], cursor="2", worker_id="w2", lease=30) == -1
        ob.cancel(nid)
        assert ob.add_deliveries(nid, [("ios", "t3", None, None)], cursor="3", worker_id="w1", lease=30) == -1
        with db.engine.connect() as conn:
            assert list(conn.execute(select(DeliveryRow.token, DeliveryRow.state))) == [("t1", "cancelled")]
    finally:
        db.dispose()
