"""Leases under a real ``pushrelay serve``: renewed while the worker lives, rescued after kill -9
within one lease, and a result that arrives after its lease was taken over is counted, not dropped
silently."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from pushrelay.db import Database
from pushrelay.queue.models import DeliveryRow, WorkerRow, utcnow

from .conftest import Stack, notification_state, post_to_tokens, wait_until

D = DeliveryRow
N = {"title": "lease", "body": "test"}


def _post(stack: Stack, tokens: list[str]) -> str:
    return post_to_tokens(stack, tokens, N)


_state = notification_state


def _metric(stack: Stack, name: str) -> float:
    with stack.client(stack.sender) as snd:
        for line in snd.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_a_chunk_slower_than_its_lease_keeps_it_while_the_worker_lives(stack: Stack) -> None:
    sb = stack.sandbox
    tok = f"{1:064x}"
    sb.script(tok, "delay", times=1, seconds=5)  # APNs answers after 5 s: more than 3 leases
    stack.service.env["PUSHRELAY_WORKER_LEASE"] = "1.5"
    stack.service.start()
    nid = _post(stack, [tok])
    wait_until(lambda: _state(stack, nid) == "completed", 30, "the delivery")
    assert len(sb.received(tok)) == 1  # no other worker loop took the lease and sent it again
    db = Database(stack.db_url, migrate=False)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(select(D.attempts, D.outcome)).one() == (1, "delivered")
    finally:
        db.dispose()
    assert _metric(stack, "pushrelay_lease_lost_total") == 0


def test_a_result_after_the_lease_was_taken_over_is_logged_and_counted(stack: Stack) -> None:
    sb = stack.sandbox
    tok = f"{2:064x}"
    sb.script(tok, "delay", times=1, seconds=4)
    stack.service.start()
    db = Database(stack.db_url, migrate=False)
    try:

        def in_flight() -> bool:
            with db.engine.connect() as conn:
                return conn.execute(select(D.state)).scalar() == "in_flight"

        nid = _post(stack, [tok])
        wait_until(in_flight, 30, "the delivery to be claimed")
        # another worker takes the delivery over while APNs is still answering the first request
        with db.engine.begin() as conn:
            conn.execute(update(D).values(lease_owner="thief", next_attempt_at=utcnow() + timedelta(hours=1)))
        wait_until(lambda: _metric(stack, "pushrelay_lease_lost_total") == 1, 30, "the lost lease")
        with db.engine.connect() as conn:  # left to its new owner
            assert conn.execute(select(D.state, D.lease_owner)).one() == ("in_flight", "thief")
    finally:
        db.dispose()
    assert _state(stack, nid) == "sending"
    assert "worker.lease_lost" in stack.service.log.read_text()


def test_after_kill_9_a_restart_resumes_within_one_default_lease(stack: Stack) -> None:
    sb = stack.sandbox
    tokens = [f"{i:064x}" for i in range(10, 60)]
    for tok in tokens:  # in flight at APNs when the process dies
        sb.script(tok, "delay", times=1, seconds=60)
    del stack.service.env["PUSHRELAY_WORKER_LEASE"]  # the default lease
    stack.service.start()
    db = Database(stack.db_url, migrate=False)
    try:

        def count(*where: object) -> int:
            with db.engine.connect() as conn:
                return int(conn.scalar(select(func.count()).select_from(D).where(*where)) or 0)

        nid = _post(stack, tokens)
        wait_until(lambda: count(D.state == "in_flight") == len(tokens), 30, "every delivery in flight")
        stack.service.kill9()
        killed = utcnow()
        with db.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(WorkerRow)) == 1  # it was beating
            deadline = conn.scalar(select(func.max(D.next_attempt_at)).where(D.state == "in_flight"))
        # what the dead worker held is claimable again at most one lease (30 s) after its death
        assert deadline is not None and deadline <= killed + timedelta(seconds=30)
        stack.service.start()
        wait_until(lambda: _state(stack, nid) == "completed", 90, "the restarted service to deliver")
        assert count(D.outcome == "delivered") == len(tokens)
    finally:
        db.dispose()
    for tok in tokens:  # a resend carries the original apns-id
        assert len({r.apns_id for r in sb.received(tok)}) == 1
