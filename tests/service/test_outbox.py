"""The SQL outbox on SQLite and PostgreSQL, driven directly (no HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from pushrelay.db import Database
from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue import (
    IdempotencyConflict,
    NotificationRequest,
    Recipients,
    RetryPolicy,
    SqlOutbox,
)
from pushrelay.queue.models import DeliveryRow, NotificationRow, utcnow

N = {"title": "t", "body": "b"}


@pytest.fixture
def outbox(database_url: str) -> Iterator[SqlOutbox]:
    db = Database(database_url)
    try:
        yield SqlOutbox(db.engine, retry=RetryPolicy(base=0.01, cap=0.05))
    finally:
        db.dispose()


def _req(**kw: object) -> NotificationRequest:
    base: dict[str, object] = {
        "app": "a",
        "notification": N,
        "recipients": Recipients(device_tokens=("aa" * 32,)),
    }
    base.update(kw)
    return NotificationRequest(**base)  # type: ignore[arg-type]


def _expand(ob: SqlOutbox, tokens: list[str], worker: str = "w1") -> str:
    jobs = ob.claim_expansions(worker, limit=10, lease=30)
    assert len(jobs) == 1
    nid = jobs[0].notification_id
    assert ob.add_deliveries(
        nid, [("ios", t, None, None) for t in tokens], cursor=None, worker_id=worker, lease=30
    ) == len(tokens)
    assert ob.finish_expansion(nid, warnings=[], errors=[]) == []
    return nid


def test_lifecycle_with_retry_and_completion(outbox: SqlOutbox) -> None:
    nid = outbox.enqueue(_req()).id
    assert outbox.status(nid).state == "pending"  # type: ignore[union-attr]
    _expand(outbox, ["t1", "t2"])
    claimed = outbox.claim("w1", limit=10, lease=30)
    assert [c.token for c in claimed] == ["t1", "t2"]
    assert outbox.claim("w2", limit=10, lease=30) == []  # leased
    apns_ids = {c.token: c.apns_id for c in claimed}
    done = outbox.record(
        "w1",
        [
            (claimed[0], DeliveryResult("t1", Outcome.DELIVERED, 200, provider_id=claimed[0].apns_id)),
            (claimed[1], DeliveryResult("t2", Outcome.RETRY, 503, "ServiceUnavailable")),
        ],
    )
    assert done == []
    st = outbox.status(nid)
    assert st is not None and st.counts["delivered"] == 1 and st.counts["pending"] == 1
    again: list = []
    for _ in range(200):
        again = outbox.claim("w2", limit=10, lease=30)
        if again:
            break
        import time

        time.sleep(0.01)
    assert [c.token for c in again] == ["t2"] and again[0].attempts == 2
    assert again[0].apns_id == apns_ids["t2"]  # the same apns-id on the retry
    assert outbox.record("w2", [(again[0], DeliveryResult("t2", Outcome.DELIVERED, 200))]) == [nid]
    st = outbox.status(nid)
    assert st is not None and st.state == "completed" and st.counts == {"total": 2, "delivered": 2}


def test_crashed_worker_lease_is_reclaimed(outbox: SqlOutbox) -> None:
    outbox.enqueue(_req())
    _expand(outbox, ["t1"])
    first = outbox.claim("dead", limit=10, lease=30)
    with outbox.engine.begin() as conn:  # the lease runs out
        conn.execute(update(DeliveryRow).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    second = outbox.claim("alive", limit=10, lease=30)
    assert [c.apns_id for c in second] == [first[0].apns_id]
    # the dead worker's late answer is ignored; the new owner's counts
    outbox.record("dead", [(first[0], DeliveryResult("t1", Outcome.DELIVERED, 200))])
    assert outbox.claim("x", limit=10, lease=30) == []
    assert outbox.record("alive", [(second[0], DeliveryResult("t1", Outcome.DELIVERED, 200))])


def test_idempotency(outbox: SqlOutbox) -> None:
    a = outbox.enqueue(_req(idempotency_key="k1"))
    b = outbox.enqueue(_req(idempotency_key="k1"))
    assert a.created and not b.created and a.id == b.id
    with pytest.raises(IdempotencyConflict):
        outbox.enqueue(_req(idempotency_key="k1", notification={"title": "other"}))
    assert outbox.enqueue(_req(idempotency_key="k1", app="b")).created  # keys are per app
    with outbox.engine.begin() as conn:  # 25 h later the key is free again
        conn.execute(update(NotificationRow).values(created_at=utcnow() - timedelta(hours=25)))
    assert outbox.enqueue(_req(idempotency_key="k1")).id != a.id


def test_schedule_cancel_expire(outbox: SqlOutbox) -> None:
    later = outbox.enqueue(_req(send_at=utcnow() + timedelta(hours=1))).id
    assert outbox.status(later).state == "scheduled"  # type: ignore[union-attr]
    assert outbox.claim_expansions("w", limit=10, lease=30) == []
    assert outbox.cancel(later).state == "cancelled"  # type: ignore[union-attr]

    nid = outbox.enqueue(_req()).id
    _expand(outbox, ["t1", "t2"])
    outbox.claim("w", limit=1, lease=30)
    st = outbox.cancel(nid)
    assert st is not None and st.counts == {"total": 2, "in_flight": 1, "cancelled": 1}

    gone = outbox.enqueue(_req(expires_at=utcnow() + timedelta(seconds=5))).id
    _expand(outbox, ["t3"])
    with outbox.engine.begin() as conn:
        conn.execute(
            update(DeliveryRow)
            .where(DeliveryRow.notification_id == gone)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert outbox.sweep() == [gone]
    st = outbox.status(gone)
    assert st is not None and st.state == "completed" and st.counts == {"total": 1, "expired": 1}
