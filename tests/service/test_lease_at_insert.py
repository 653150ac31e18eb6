"""Deliveries inserted already leased by the expansion (``Handoff``): the outbox side, on SQLite
and PostgreSQL.

The worker that expands a send inserts the deliveries it will send next in flight, leased to
itself as a claim would lease them: no claim statement, no second row version. Only what is due
now, of an app that is not paused, before the expiry; only as many as the handoff has room for;
the rest is ``pending`` for any worker. A lease taken this way runs out and is taken over exactly
like a claimed one.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pushrelay.db import Database
from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue import Handoff, NotificationRequest, Recipients, SqlOutbox
from pushrelay.queue.models import DeliveryRow, utcnow

from .test_completion_race import _race

D = DeliveryRow


def _devices(n: int, start: int = 0) -> list[tuple[str, str, None, None]]:
    return [("ios", f"{i:064x}", None, None) for i in range(start, start + n)]


def _expanding(ob: SqlOutbox, **kw: Any) -> str:
    nid = ob.enqueue(NotificationRequest("a", {"title": "t"}, Recipients(all=True), **kw)).id
    assert len(ob.claim_expansions("w1", limit=1, lease=30)) == 1
    return nid


def _rows(ob: SqlOutbox) -> dict[str, Any]:
    with ob.engine.connect() as conn:
        return {
            r.token: r
            for r in conn.execute(
                select(D.token, D.state, D.lease_owner, D.attempts, D.next_attempt_at, D.apns_id, D.outcome)
            )
        }


def _delivered(claimed: Any) -> list[tuple[Any, DeliveryResult]]:
    return [(c, DeliveryResult(c.token, Outcome.DELIVERED, 200)) for c in claimed]


def test_the_expansion_leases_what_it_has_room_for_and_leaves_the_rest_pending(outbox: SqlOutbox) -> None:
    nid = _expanding(outbox)
    before = utcnow()
    handoff = Handoff(room=3, lease=30)
    added = outbox.add_deliveries(nid, _devices(5), cursor="c", worker_id="w1", lease=30, handoff=handoff)
    assert added == 5
    taken = handoff.taken
    assert [c.token for c in taken] == [t for _p, t, _e, _m in _devices(3)]
    assert [c.id for c in taken] == sorted(c.id for c in taken)
    rows = _rows(outbox)
    for c in taken:  # as a claim leaves them: in flight, ours, the attempt counted, a lease deadline
        r = rows[c.token]
        assert (r.state, r.lease_owner, r.attempts, r.apns_id) == ("in_flight", "w1", 1, c.apns_id)
        assert c.attempts == 1 and c.notification_id == nid and c.app == "a" and c.platform == "ios"
        assert before + timedelta(seconds=25) < r.next_attempt_at <= utcnow() + timedelta(seconds=30)
    rest = [t for _p, t, _e, _m in _devices(2, 3)]
    assert {(rows[t].state, rows[t].lease_owner, rows[t].attempts) for t in rest} == {("pending", None, 0)}
    # another worker claims the pending remainder only: the leased rows are not claimable
    other = outbox.claim("w2", limit=10, lease=30)
    assert sorted(c.token for c in other) == rest
    assert outbox.record("w1", _delivered(taken)).lost == 0
    assert outbox.record("w2", _delivered(other)).lost == 0
    assert outbox.finish_expansion(nid, warnings=[], errors=[]) == [nid]
    status = outbox.status(nid)
    assert status is not None and status.counts == {"total": 5, "delivered": 5}


def test_paused_scheduled_and_expired_deliveries_are_never_inserted_leased(outbox: SqlOutbox) -> None:
    # scheduled (a device's local time): pending until then, like before
    nid = _expanding(outbox)
    later = utcnow() + timedelta(hours=1)
    handoff = Handoff(room=10, lease=30)
    devices = _devices(3)
    schedule = {devices[0][1]: later}
    outbox.add_deliveries(
        nid, devices, cursor=None, worker_id="w1", lease=30, schedule=schedule, handoff=handoff
    )
    assert sorted(c.token for c in handoff.taken) == sorted(d[1] for d in devices[1:])
    row = _rows(outbox)[devices[0][1]]
    assert (row.state, row.lease_owner, row.attempts, row.next_attempt_at) == ("pending", None, 0, later)

    # a paused app: parked, none leased
    outbox.pause("a", "403 InvalidProviderToken", platform="ios", by="test", fingerprint=None)
    nid2 = _expanding(outbox)
    paused = Handoff(room=10, lease=30)
    outbox.add_deliveries(nid2, _devices(2, 10), cursor=None, worker_id="w1", lease=30, handoff=paused)
    assert paused.taken == []
    assert {_rows(outbox)[t].state for _p, t, _e, _m in _devices(2, 10)} == {"paused"}
    outbox.resume("a")

    # past its expiry while expanding: left to the sweeper, which ends them expired
    nid3 = _expanding(outbox, expires_at=utcnow() + timedelta(seconds=1))
    time.sleep(1.1)
    late = Handoff(room=10, lease=30)
    outbox.add_deliveries(nid3, _devices(2, 20), cursor=None, worker_id="w1", lease=30, handoff=late)
    assert late.taken == []
    assert {_rows(outbox)[t].state for _p, t, _e, _m in _devices(2, 20)} == {"pending"}


def test_a_resumed_chunk_and_a_lost_expansion_lease_hand_nothing_over(outbox: SqlOutbox) -> None:
    nid = _expanding(outbox)
    outbox.add_deliveries(nid, _devices(3), cursor="c1", worker_id="w1", lease=30)  # pending
    # the same chunk read again after a crash: rows already there are whoever holds them
    again = Handoff(room=10, lease=30)
    assert outbox.add_deliveries(nid, _devices(4), cursor="c2", worker_id="w1", lease=30, handoff=again) == 1
    assert [c.token for c in again.taken] == [_devices(1, 3)[0][1]]
    assert {_rows(outbox)[t].state for _p, t, _e, _m in _devices(3)} == {"pending"}
    # cancelled meanwhile: nothing kept, nothing handed over
    outbox.cancel(nid)
    lost = Handoff(room=10, lease=30)
    assert (
        outbox.add_deliveries(nid, _devices(2, 50), cursor="c3", worker_id="w1", lease=30, handoff=lost) == -1
    )
    assert lost.taken == []
    assert not {t for _p, t, _e, _m in _devices(2, 50)} & set(_rows(outbox))


def test_a_lease_taken_at_insert_runs_out_and_is_taken_over_like_a_claim(outbox: SqlOutbox) -> None:
    nid = _expanding(outbox)
    handoff = Handoff(room=10, lease=0.3)
    outbox.add_deliveries(nid, _devices(2), cursor=None, worker_id="w1", lease=30, handoff=handoff)
    assert len(handoff.taken) == 2
    assert outbox.claim("w2", limit=10, lease=30) == []  # leased: not claimable while it lasts
    assert outbox.heartbeat("w1", lease=0.3, deliveries=[c.id for c in handoff.taken]) == 2  # renewable
    time.sleep(0.4)  # w1 died: no heartbeat
    rescued = outbox.claim("w2", limit=10, lease=30)
    assert sorted(c.id for c in rescued) == sorted(c.id for c in handoff.taken)
    # the second attempt, with the apns-id the delivery was created with
    assert {(c.attempts, c.apns_id) for c in rescued} == {(2, c.apns_id) for c in handoff.taken}
    late = outbox.record("w1", _delivered(handoff.taken))
    assert late.lost == 2  # left to its new owner
    assert outbox.record("w2", _delivered(rescued)).lost == 0
    assert outbox.finish_expansion(nid, warnings=[], errors=[]) == [nid]
    assert {(r.outcome, r.attempts) for r in _rows(outbox).values()} == {("delivered", 2)}


def test_many_small_sends_share_one_handoff(outbox: SqlOutbox) -> None:
    ids = [
        outbox.enqueue(
            NotificationRequest("a", {"title": str(i)}, Recipients(device_tokens=(f"{i:064x}",)))
        ).id
        for i in range(4)
    ]
    assert len(outbox.claim_expansions("w1", limit=10, lease=30)) == 4
    jobs = [(nid, _devices(1, i), [], []) for i, nid in enumerate(ids)]
    handoff = Handoff(room=3, lease=30)
    assert outbox.expand_many("w1", jobs, handoff=handoff) == []
    assert len(handoff.taken) == 3 and all(c.attempts == 1 for c in handoff.taken)
    rows = _rows(outbox)
    assert sorted(r.state for r in rows.values()) == ["in_flight", "in_flight", "in_flight", "pending"]
    (other,) = outbox.claim("w2", limit=10, lease=30)
    completed = (
        outbox.record("w1", _delivered(handoff.taken)).completed
        + outbox.record("w2", _delivered([other])).completed
    )
    assert sorted(completed) == sorted(ids)


@pytest.mark.postgres
@pytest.mark.parametrize("record_first", [False, True])
def test_a_leased_insert_recorded_while_the_expansion_finishes_completes_once(
    pg_url: str, record_first: bool
) -> None:
    """The completion race of test_completion_race.py with a delivery inserted leased: one side
    commits while the other waits on the notification row, in both orders."""
    db = Database(pg_url)
    try:
        ob = SqlOutbox(db.engine)
        nid = _expanding(ob)
        handoff = Handoff(room=1, lease=30)
        ob.add_deliveries(nid, _devices(1), cursor="c", worker_id="w1", lease=30, handoff=handoff)
        done = _delivered(handoff.taken)
        if record_first:
            first, second = _race(
                ob,
                lambda conn: ob._record(conn, "w1", done, utcnow()).completed,
                lambda: ob.finish_expansion(nid, warnings=[], errors=[]),
            )
        else:
            first, second = _race(
                ob,
                lambda conn: ob._finish_expansion(conn, nid, warnings=[], errors=[]),
                lambda: ob.record("w1", done).completed,
            )
        assert (first, second) == ([], [nid])  # the first saw the other side unfinished
        status = ob.status(nid)
        assert status is not None and status.state == "completed"
    finally:
        db.dispose()
