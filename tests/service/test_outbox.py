"""The SQL outbox on SQLite and PostgreSQL, driven directly (no HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from pushrelay.db import Database
from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue import (
    EnqueueResult,
    IdempotencyConflict,
    NotificationRequest,
    Recipients,
    SqlOutbox,
)
from pushrelay.queue.models import AppPauseRow, DeliveryRow, NotificationRow, utcnow
from pushrelay.webhooks.store import WebhookEventStore

N = {"title": "t", "body": "b"}


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
    assert done.completed == [] and done.lost == 0
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
    assert outbox.record("w2", [(again[0], DeliveryResult("t2", Outcome.DELIVERED, 200))]).completed == [nid]
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
    # the dead worker's late answer is not stored but counted as lost; the new owner's counts
    late = outbox.record("dead", [(first[0], DeliveryResult("t1", Outcome.DELIVERED, 200))])
    assert late.lost == 1 and late.completed == []
    assert outbox.claim("x", limit=10, lease=30) == []
    assert outbox.record("alive", [(second[0], DeliveryResult("t1", Outcome.DELIVERED, 200))]).completed


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


def _claim_all(ob: SqlOutbox, worker: str) -> list:  # type: ignore[type-arg]
    return ob.claim(worker, limit=100, lease=30)


def test_a_paused_app_keeps_its_deliveries_until_resumed(outbox: SqlOutbox) -> None:
    nid = outbox.enqueue(_req()).id
    _expand(outbox, ["t1", "t2", "t3"])
    c1, c2, c3 = _claim_all(outbox, "w1")
    # the provider refused the credentials: the worker pauses the app, then records the answers
    assert outbox.pause("a", "403 InvalidProviderToken", platform="ios", by="w1", fingerprint="f1")
    assert not outbox.pause("a", "403 InvalidProviderToken", platform="ios", by="w2", fingerprint="f1")
    outbox.record(
        "w1",
        [
            (c1, DeliveryResult("t1", Outcome.CONFIG_BROKEN, 403, "InvalidProviderToken")),
            (c2, DeliveryResult("t2", Outcome.RETRY, 503, "ServiceUnavailable")),
            (c3, DeliveryResult("t3", Outcome.DELIVERED, 200)),
        ],
    )
    assert outbox.status(nid).counts == {"total": 3, "paused": 2, "delivered": 1}  # type: ignore[union-attr]
    (pause,) = outbox.paused_apps()
    assert (pause.app, pause.reason, pause.platform, pause.paused_by, pause.fingerprint) == (
        "a", "403 InvalidProviderToken", "ios", "w1", "f1"
    )  # fmt: skip
    # accepted while paused: expanded and kept too; nothing is claimable
    later = outbox.enqueue(_req()).id
    _expand(outbox, ["t4"])
    assert outbox.status(later).counts == {"total": 1, "paused": 1}  # type: ignore[union-attr]
    assert _claim_all(outbox, "w2") == [] and outbox.sweep() == []
    assert outbox.queue_depth() == {"paused": 3}

    assert outbox.resume("a") == 3 and outbox.resume("a") is None
    again = _claim_all(outbox, "w2")
    assert sorted(c.token for c in again) == ["t1", "t2", "t4"]
    assert {c.token: c.apns_id for c in again}["t1"] == c1.apns_id  # same apns-id after the pause


def test_kept_deliveries_expire_and_orphans_are_freed(outbox: SqlOutbox) -> None:
    nid = outbox.enqueue(_req()).id
    _expand(outbox, ["t1", "t2"])
    outbox.pause("a", "paused by an operator", platform=None, by="operator", fingerprint=None)
    with outbox.engine.begin() as conn:
        conn.execute(
            update(DeliveryRow)
            .where(DeliveryRow.token == "t1")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        conn.execute(delete(AppPauseRow))  # resumed behind the outbox's back
    assert outbox.sweep() == []
    assert outbox.status(nid).counts == {"total": 2, "expired": 1, "pending": 1}  # type: ignore[union-attr]
    assert [c.token for c in _claim_all(outbox, "w")] == ["t2"]


def test_a_batch_is_committed_whole_or_not_at_all(outbox: SqlOutbox) -> None:
    first = outbox.enqueue(_req(idempotency_key="k1"))
    results = outbox.enqueue_many(
        [_req(), _req(idempotency_key="k1"), _req(idempotency_key="k2"), _req(idempotency_key="k2")]
    )
    assert [r.created for r in results] == [True, False, True, False]
    assert results[1].id == first.id and results[2].id == results[3].id
    with pytest.raises(IdempotencyConflict) as e:
        outbox.enqueue_many(
            [_req(idempotency_key="k3"), _req(idempotency_key="k1", notification={"title": "x"})]
        )
    assert e.value.index == 1 and e.value.existing_id == first.id
    assert outbox.enqueue(_req(idempotency_key="k3")).created  # the refused batch left nothing behind
    with pytest.raises(IdempotencyConflict) as e:
        outbox.enqueue_many(
            [_req(idempotency_key="k4"), _req(idempotency_key="k4", notification={"title": "x"})]
        )
    assert e.value.index == 1


def test_completion_events_are_written_with_the_completion(outbox: SqlOutbox) -> None:
    outbox.event_apps = {"a"}
    nid = outbox.enqueue(_req()).id
    _expand(outbox, ["t1"])
    (c,) = _claim_all(outbox, "w")
    assert outbox.record("w", [(c, DeliveryResult("t1", Outcome.DELIVERED, 200))]).completed == [nid]
    other = outbox.enqueue(_req(app="b")).id  # b has no webhook: no event
    jobs = outbox.claim_expansions("w", limit=10, lease=30)
    assert outbox.expand_many("w", [(j.notification_id, [], [], ["No recipient found"]) for j in jobs]) == [
        other
    ]
    (event,) = WebhookEventStore(outbox.engine).claim("s", ["a", "b"], limit=10, lease=30)
    assert event.body() | {"at": 0, "event_id": "1"} == {
        "type": "notification.completed", "app": "a", "event_id": "1", "at": 0, "id": nid, "state": "completed",
        "counts": {"total": 1, "delivered": 1}, "success": True, "warnings": [], "errors": [],
    }  # fmt: skip


async def test_requests_of_the_same_moment_share_a_commit(outbox: SqlOutbox) -> None:
    from pushrelay.server.group_commit import GroupCommit

    first = outbox.enqueue(_req(idempotency_key="taken"))
    groups: list[int] = []

    def enqueue_many(requests: Sequence[NotificationRequest]) -> list[EnqueueResult]:
        groups.append(len(requests))
        return outbox.enqueue_many(requests)

    commit = GroupCommit(enqueue_many)
    requests = [_req() for _ in range(30)] + [_req(idempotency_key="taken", notification={"title": "other"})]
    results = await asyncio.gather(*(commit.enqueue(r) for r in requests), return_exceptions=True)
    conflict = results.pop()
    assert isinstance(conflict, IdempotencyConflict) and conflict.existing_id == first.id
    assert all(isinstance(r, EnqueueResult) and r.created for r in results)
    assert len({r.id for r in results}) == 30  # type: ignore[union-attr]
    # they arrived at the same moment: one group, which the conflict split into single commits
    assert groups == [31] + [1] * 31
    groups.clear()
    again = await asyncio.gather(*(commit.enqueue(_req()) for _ in range(20)))
    assert groups == [20] and all(r.created for r in again)
    assert outbox.status(again[5].id) is not None
    await commit.close()


@pytest.mark.postgres
def test_the_last_two_recorders_cannot_both_miss_the_completion(pg_url: str) -> None:
    """Two workers record the last two deliveries of one notification at the same time: each sees
    the other's row still open, yet one of them must complete the notification."""
    import threading

    db = Database(pg_url)
    try:
        outbox = SqlOutbox(db.engine)
        nid = outbox.enqueue(_req()).id
        _expand(outbox, ["t1", "t2"])
        done = update(DeliveryRow).values(state="done", outcome="delivered")
        first = db.engine.connect()
        first.begin()
        first.execute(done.where(DeliveryRow.token == "t1"))
        assert outbox._complete(first, [nid]) == []  # t2 is still open for it
        second: list[str] = []

        def other_worker() -> None:
            with db.engine.begin() as conn:
                conn.execute(done.where(DeliveryRow.token == "t2"))
                second.extend(outbox._complete(conn, [nid]))  # waits for the first to commit

        thread = threading.Thread(target=other_worker)
        thread.start()
        thread.join(0.5)  # let it reach the notification row
        first.commit()
        first.close()
        thread.join(30)
        assert second == [nid] and outbox.status(nid).state == "completed"  # type: ignore[union-attr]
    finally:
        db.dispose()
