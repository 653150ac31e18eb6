"""Short leases renewed by a heartbeat: the outbox side, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue import NotificationRequest, Recipients, SqlOutbox
from pushrelay.queue.models import DeliveryRow, NotificationRow, WorkerRow, utcnow

D = DeliveryRow


def _queue(ob: SqlOutbox, tokens: list[str]) -> str:
    nid = ob.enqueue(NotificationRequest("a", {"title": "t"}, Recipients(device_tokens=tuple(tokens)))).id
    (_job,) = ob.claim_expansions("expander", limit=10, lease=30)
    ob.add_deliveries(
        nid, [("ios", t, None, None) for t in tokens], cursor=None, worker_id="expander", lease=30
    )
    ob.finish_expansion(nid, warnings=[], errors=[])
    return nid


def _deadlines(ob: SqlOutbox) -> dict[str, object]:
    with ob.engine.connect() as conn:
        return dict(conn.execute(select(D.token, D.next_attempt_at)).all())  # type: ignore[arg-type]


def _run_out(ob: SqlOutbox, owner: str) -> None:
    """As if ``owner`` had stopped beating long enough for its leases to run out."""
    with ob.engine.begin() as conn:
        conn.execute(
            update(D).where(D.lease_owner == owner).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def test_the_heartbeat_renews_only_the_leases_its_worker_holds(outbox: SqlOutbox) -> None:
    _queue(outbox, ["t1", "t2"])
    (mine,) = outbox.claim("w1", limit=1, lease=5)
    (theirs,) = outbox.claim("w2", limit=1, lease=5)
    before = _deadlines(outbox)
    assert outbox.heartbeat("w1", lease=300) == 1
    after = _deadlines(outbox)
    assert after[mine.token] > before[mine.token] + timedelta(seconds=200)  # type: ignore[operator]
    assert after[theirs.token] == before[theirs.token]
    assert outbox.live_workers(within=60) == 1
    outbox.heartbeat("w2", lease=5)
    assert outbox.live_workers(within=60) == 2
    outbox.forget_worker("w2")
    assert outbox.live_workers(within=60) == 1


def test_a_renewed_lease_is_not_taken_and_an_unrenewed_one_is_rescued(outbox: SqlOutbox) -> None:
    _queue(outbox, ["t1"])
    (first,) = outbox.claim("w1", limit=10, lease=30)
    outbox.heartbeat("w1", lease=30)
    assert outbox.claim("w2", limit=10, lease=30) == []  # held and renewed
    _run_out(outbox, "w1")  # w1 died: no heartbeat since
    (second,) = outbox.claim("w2", limit=10, lease=30)
    assert second.apns_id == first.apns_id and second.attempts == 2
    assert outbox.heartbeat("w1", lease=30) == 0  # a late heartbeat does not take it back
    late = outbox.record("w1", [(first, DeliveryResult("t1", Outcome.DELIVERED, 200))])
    assert (late.completed, late.lost) == ([], 1)
    assert outbox.record("w2", [(second, DeliveryResult("t1", Outcome.DELIVERED, 200))]).lost == 0


def test_lost_leases_are_counted_on_every_recording_path(outbox: SqlOutbox) -> None:
    # alike answers (one UPDATE ... IN) and answers with their own row (one executemany)
    _queue(outbox, ["t1", "t2", "t3", "t4"])
    claimed = outbox.claim("w1", limit=10, lease=30)
    _run_out(outbox, "w1")
    stolen = outbox.claim("w2", limit=2, lease=30)
    assert len(stolen) == 2
    results = [
        (
            c,
            DeliveryResult(c.token, Outcome.DELIVERED, 200)
            if i % 2
            else DeliveryResult(c.token, Outcome.RETRY, 503, "x"),
        )
        for i, c in enumerate(claimed)
    ]
    got = outbox.record("w1", results)
    assert got.lost == 2
    with outbox.engine.connect() as conn:
        owners = dict(conn.execute(select(D.token, D.lease_owner)).all())
    assert {owners[c.token] for c in stolen} == {"w2"}  # left to their new owner


def test_a_chunk_held_too_long_is_not_renewed(outbox: SqlOutbox) -> None:
    _queue(outbox, ["t1"])
    outbox.claim("w1", limit=10, lease=30)
    with outbox.engine.begin() as conn:  # claimed 20 minutes ago
        conn.execute(update(D).values(updated_at=utcnow() - timedelta(minutes=20)))
    assert outbox.heartbeat("w1", lease=30, hold=600) == 0
    assert outbox.heartbeat("w1", lease=30) == 1  # no cap given


def test_the_heartbeat_renews_expansion_leases(outbox: SqlOutbox) -> None:
    nid = outbox.enqueue(NotificationRequest("a", {"title": "t"}, Recipients(all=True))).id
    assert len(outbox.claim_expansions("w1", limit=10, lease=5)) == 1
    outbox.heartbeat("w1", lease=300)
    with outbox.engine.connect() as conn:
        due = conn.execute(select(NotificationRow.due_at).where(NotificationRow.id == nid)).scalar_one()
        beat = conn.execute(select(WorkerRow.heartbeat_at).where(WorkerRow.id == "w1")).scalar_one()
    assert due > beat + timedelta(seconds=200)
    assert outbox.claim_expansions("w2", limit=10, lease=5) == []


def test_release_gives_back_everything_at_once(outbox: SqlOutbox) -> None:
    _queue(outbox, ["t1", "t2"])
    assert len(outbox.claim("w1", limit=10, lease=30)) == 2
    assert outbox.release("w1") == 2
    assert len(outbox.claim("w2", limit=10, lease=30)) == 2
