"""A notification's counts are kept as they change on PostgreSQL (``outbox_counts``, filled by
triggers on the deliveries): they must equal a count of its delivery rows after every move a
delivery can make. SQLite counts the deliveries: the same tests hold its numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import update

from pushrelay.db import Database, upgrade
from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue import NotificationRequest, Recipients, SqlOutbox
from pushrelay.queue.models import CountRow, DeliveryRow, utcnow

from .conftest import assert_counts_add_up


def _req(tokens: list[str], app: str = "a") -> NotificationRequest:
    return NotificationRequest(
        app=app, notification={"title": "t"}, recipients=Recipients(device_tokens=tuple(tokens))
    )


def _expand(ob: SqlOutbox, tokens: list[str], worker: str = "w1") -> str:
    jobs = ob.claim_expansions(worker, limit=10, lease=30)
    assert len(jobs) == 1
    nid = jobs[0].notification_id
    devices = [("ios", t, None, None) for t in tokens]
    assert ob.add_deliveries(nid, devices, cursor=None, worker_id=worker, lease=30) == len(tokens)
    assert ob.finish_expansion(nid, warnings=[], errors=[]) == []
    return nid


def _due_now(ob: SqlOutbox) -> None:
    """Retries and leases run out now (instead of waiting for them)."""
    with ob.engine.begin() as conn:
        conn.execute(update(DeliveryRow).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def test_counts_follow_every_move_of_a_delivery(outbox: SqlOutbox, database_url: str) -> None:
    tokens = [f"t{i}" for i in range(12)]
    nid = outbox.enqueue(_req(tokens)).id
    _expand(outbox, tokens)
    assert outbox.status(nid).counts == {"total": 12, "pending": 12}  # type: ignore[union-attr]
    claimed = outbox.claim("w1", limit=8, lease=30)
    assert outbox.status(nid).counts == {"total": 12, "pending": 4, "in_flight": 8}  # type: ignore[union-attr]
    assert outbox.heartbeat("w1", lease=60) == 8  # renews leases: moves no count
    outbox.record(
        "w1",
        [
            (claimed[0], DeliveryResult("t0", Outcome.DELIVERED, 200)),
            (claimed[1], DeliveryResult("t1", Outcome.TOKEN_DEAD, 410, "Unregistered")),
            (claimed[2], DeliveryResult("t2", Outcome.RETRY, 503, "ServiceUnavailable")),
            (claimed[3], DeliveryResult("t3", Outcome.CONFIG_BROKEN, 403, "InvalidProviderToken")),
        ],
    )
    assert_counts_add_up(database_url)
    outbox.postpone("w1", [(claimed[4], datetime.now(UTC) + timedelta(hours=1))])
    assert_counts_add_up(database_url)
    outbox.resume("a")  # the parked (config_broken) one is due again
    assert_counts_add_up(database_url)
    _due_now(outbox)  # w1's remaining leases run out: another worker takes them over
    taken = outbox.claim("w2", limit=20, lease=30)
    assert {c.token for c in taken} >= {c.token for c in claimed[5:8]}
    assert outbox.record("w1", [(claimed[5], DeliveryResult("t5", Outcome.DELIVERED, 200))]).lost == 1
    assert_counts_add_up(database_url)
    assert outbox.release("w2") == len(taken)  # graceful shutdown
    assert_counts_add_up(database_url)
    outbox.pause("a", "broken", platform="ios", by="test", fingerprint=None)
    assert_counts_add_up(database_url)
    outbox.resume("a")
    assert outbox.abandon(nid, "call over") == [nid]  # everything pending ends expired
    assert outbox.status(nid).counts == {  # type: ignore[union-attr]
        "total": 12,
        "delivered": 1,
        "token_dead": 1,
        "expired": 10,
    }
    assert_counts_add_up(database_url)

    # a second one: cancelled with deliveries in flight, which are still recorded afterwards
    other = outbox.enqueue(_req(["u1", "u2", "u3"])).id
    _expand(outbox, ["u1", "u2", "u3"])
    flying = outbox.claim("w3", limit=1, lease=30)
    outbox.cancel(other)
    assert outbox.status(other).counts == {"total": 3, "cancelled": 2, "in_flight": 1}  # type: ignore[union-attr]
    outbox.record("w3", [(flying[0], DeliveryResult("u1", Outcome.DELIVERED, 200))])
    assert outbox.status(other).counts == {"total": 3, "cancelled": 2, "delivered": 1}  # type: ignore[union-attr]

    # a third one: its deadline passes with a delivery in flight and one pending
    late = outbox.enqueue(_req(["v1", "v2"])).id
    _expand(outbox, ["v1", "v2"])
    outbox.claim("w4", limit=1, lease=30)
    with outbox.engine.begin() as conn:
        past = utcnow() - timedelta(seconds=1)
        conn.execute(
            update(DeliveryRow)
            .where(DeliveryRow.notification_id == late)
            .values(expires_at=past, next_attempt_at=past)
        )
    assert late in outbox.sweep()
    assert outbox.status(late).counts == {"total": 2, "expired": 2}  # type: ignore[union-attr]
    assert_counts_add_up(database_url)


@pytest.mark.postgres
def test_a_completed_notification_keeps_one_row_per_count(pg_url: str) -> None:
    with Database(pg_url) as db:
        _one_row_per_count(SqlOutbox(db.engine))


def _one_row_per_count(outbox: SqlOutbox) -> None:
    tokens = [f"t{i}" for i in range(30)]
    nid = outbox.enqueue(_req(tokens)).id
    _expand(outbox, tokens)
    while claimed := outbox.claim("w1", limit=7, lease=30):  # several claims and records: many rows
        outbox.record("w1", [(c, DeliveryResult(c.token, Outcome.DELIVERED, 200)) for c in claimed])
    assert outbox.status(nid).state == "completed"  # type: ignore[union-attr]
    with outbox.engine.connect() as conn:
        rows = conn.execute(sa.select(CountRow.name, CountRow.n).where(CountRow.notification_id == nid)).all()
    assert [tuple(r) for r in rows] == [("delivered", 30)]


@pytest.mark.postgres
def test_two_recorders_of_one_notification_do_not_wait_for_each_other(pg_url: str) -> None:
    """Both record a batch of the same notification, the first holding its transaction open: the
    second neither waits for it (no counter row they share) nor loses a count."""
    db = Database(pg_url)
    try:
        ob = SqlOutbox(db.engine)
        tokens = [f"t{i}" for i in range(5)]
        nid = ob.enqueue(_req(tokens)).id
        _expand(ob, tokens)
        a = ob.claim("wa", limit=2, lease=30)
        b = ob.claim("wb", limit=2, lease=30)  # one stays pending: neither batch completes it
        first = db.engine.connect()
        first.begin()
        ob._record(first, "wa", [(c, DeliveryResult(c.token, Outcome.DELIVERED, 200)) for c in a], utcnow())
        with db.engine.begin() as second:
            second.exec_driver_sql("SET LOCAL lock_timeout = '2s'")  # waiting would fail, not hang
            got = ob._record(
                second, "wb", [(c, DeliveryResult(c.token, Outcome.TOKEN_DEAD, 410)) for c in b], utcnow()
            )
        assert got.lost == 0
        assert ob.status(nid).counts == {"total": 5, "pending": 1, "in_flight": 2, "token_dead": 2}  # type: ignore[union-attr]
        first.commit()
        first.close()
        assert ob.status(nid).counts == {  # type: ignore[union-attr]
            "total": 5,
            "pending": 1,
            "delivered": 2,
            "token_dead": 2,
        }
        assert_counts_add_up(pg_url)
    finally:
        db.dispose()


def test_the_migration_counts_the_deliveries_already_there(database_url: str) -> None:
    """0009 on a database with notifications under way: their counts start right."""
    upgrade(database_url, "0008_device_token_prefix")
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    now = utcnow()
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO outbox_notifications (id, app, state, payload, recipients, targets, "
                    "created_at, expires_at, due_at, warnings, errors, request_hash, surface, urgent) "
                    "VALUES ('n1', 'a', 'sending', '{}', '{}', '[]', :now, :now, :now, '[]', '[]', 'h', "
                    "'api', false)"
                ),
                {"now": now},
            )
            for i, (state, outcome) in enumerate(
                [("done", "delivered")] * 3 + [("pending", None), ("in_flight", None), ("done", "expired")]
            ):
                conn.execute(
                    sa.text(
                        "INSERT INTO outbox_deliveries (notification_id, app, platform, token, apns_id, "
                        "state, outcome, next_attempt_at, expires_at, attempts, created_at, updated_at) "
                        "VALUES ('n1', 'a', 'ios', :token, :token, :state, :outcome, :now, :now, 1, :now, :now)"
                    ),
                    {"token": f"t{i}", "state": state, "outcome": outcome, "now": now},
                )
    finally:
        engine.dispose()
    upgrade(database_url)
    with Database(database_url) as db:
        status = SqlOutbox(db.engine).status("n1")
    assert status is not None and status.counts == {
        "total": 6,
        "delivered": 3,
        "pending": 1,
        "in_flight": 1,
        "expired": 1,
    }
    assert_counts_add_up(database_url)


@pytest.mark.postgres
def test_the_sweep_folds_the_rows_of_a_large_send_still_sending(pg_url: str) -> None:
    with Database(pg_url) as db:
        ob = SqlOutbox(db.engine)
        tokens = [f"t{i}" for i in range(41)]
        nid = ob.enqueue(_req(tokens)).id
        _expand(ob, tokens)
        for _ in range(40):  # one at a time: two rows a claim, two a record; one stays pending
            claimed = ob.claim("w1", limit=1, lease=30)
            ob.record("w1", [(claimed[0], DeliveryResult(claimed[0].token, Outcome.DELIVERED, 200))])
        before = ob.status(nid)
        assert before is not None and before.state == "sending"

        def rows() -> int:
            with db.engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.select(sa.func.count())
                        .select_from(CountRow)
                        .where(CountRow.notification_id == nid)
                    ).scalar_one()
                )

        assert rows() > 64
        ob.sweep()
        assert rows() == 2  # delivered 40, pending 1
        after = ob.status(nid)
        assert after is not None and after.counts == before.counts == {
            "total": 41,
            "delivered": 40,
            "pending": 1,
        }
