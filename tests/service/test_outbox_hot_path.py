"""The worker's hot path in the SQL outbox, on SQLite and PostgreSQL: delivery rows written
column by column (apns-ids made by the database), outcomes recorded in bulk, completion."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import event, select, update

from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue import NotificationRequest, Recipients, SqlOutbox
from pushrelay.queue.interface import ClaimedDelivery
from pushrelay.queue.models import DeliveryRow, utcnow

D = DeliveryRow
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _enqueue(ob: SqlOutbox, app: str = "a", **kw: object) -> str:
    req = NotificationRequest(app=app, notification={"title": "t"}, recipients=Recipients(all=True), **kw)  # type: ignore[arg-type]
    return ob.enqueue(req).id


def _rows(ob: SqlOutbox, nid: str) -> dict[str, DeliveryRow]:
    with ob.engine.connect() as conn:
        return {r.token: r for r in conn.execute(select(D).where(D.notification_id == nid))}


def test_every_column_of_a_new_delivery_is_stored(outbox: SqlOutbox) -> None:
    expires = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    nid = _enqueue(outbox, expires_at=expires)
    [job] = outbox.claim_expansions("w1", limit=10, lease=30)
    soon, late = utcnow() + timedelta(minutes=30), utcnow() + timedelta(hours=5)
    devices = [
        ("ios", "t-ios", "sandbox", "a@x.com"),
        ("ios", "t-ios-2", "production", None),
        ("android", "t-android", None, "b@x.com"),
        ("web", "t-web", None, None),
    ]
    before = utcnow()
    added = outbox.add_deliveries(
        nid, devices, cursor="4", worker_id="w1", lease=30, schedule={"t-android": soon, "t-web": late}
    )
    assert added == 4
    rows = _rows(outbox, nid)
    assert {t: (r.platform, r.environment, r.email) for t, r in rows.items()} == {
        t: (p, e, m) for p, t, e, m in devices
    }
    assert {r.app for r in rows.values()} == {"a"} and {r.state for r in rows.values()} == {"pending"}
    assert {r.attempts for r in rows.values()} == {0}
    assert {r.expires_at for r in rows.values()} == {expires}
    # apns-ids: made by the database, a distinct canonical version 4 UUID each
    assert all(UUID.match(r.apns_id) for r in rows.values())
    assert len({r.apns_id for r in rows.values()}) == 4
    # times come back as they were written (same storage as SQLAlchemy's on SQLite)
    now_rows = [rows["t-ios"], rows["t-ios-2"]]
    assert all(before <= r.created_at == r.updated_at == r.next_attempt_at <= utcnow() for r in now_rows)
    assert all(r.scheduled_for is None and r.reason is None for r in now_rows)
    assert rows["t-android"].next_attempt_at == rows["t-android"].scheduled_for == soon
    assert rows["t-android"].reason is None
    # scheduled past the expiry: waits for the expiry, and says why
    assert rows["t-web"].next_attempt_at == expires and rows["t-web"].scheduled_for == late
    assert "after the notification's expiry" in (rows["t-web"].reason or "")
    # a resumed expansion re-reads its last chunk: nothing is added twice, apns-ids are kept
    again = outbox.add_deliveries(
        nid, [*devices, ("ios", "t-new", None, None)], cursor="5", worker_id="w1", lease=30
    )
    assert again == 1
    after = _rows(outbox, nid)
    assert len(after) == 5 and all(after[t].apns_id == r.apns_id for t, r in rows.items())
    assert job.notification_id == nid


def test_one_device_and_many_notifications_in_one_insert(outbox: SqlOutbox) -> None:
    """``expand_many`` writes the rows of several notifications (apps, expiries, pauses) at once."""
    first = _enqueue(outbox, app="a", expires_at=utcnow() + timedelta(hours=1))
    second = _enqueue(outbox, app="b", expires_at=utcnow() + timedelta(hours=3))
    third = _enqueue(outbox, app="a")
    outbox.pause("b", "broken", platform=None, by="test", fingerprint=None)
    assert len(outbox.claim_expansions("w1", limit=10, lease=30)) == 3
    done = outbox.expand_many(
        "w1",
        [
            (first, [("ios", "same-token", None, None)], [], []),
            (second, [("ios", "same-token", "sandbox", "x@y.z"), ("android", "other", None, None)], [], []),
            (third, [], [], ["nobody"]),
        ],
    )
    assert done == [third]  # no device: completed at once
    one, two = _rows(outbox, first), _rows(outbox, second)
    assert list(one) == ["same-token"] and one["same-token"].app == "a"
    assert one["same-token"].state == "pending"
    assert {r.app for r in two.values()} == {"b"} and {r.state for r in two.values()} == {"paused"}
    assert two["same-token"].environment == "sandbox" and two["same-token"].email == "x@y.z"
    assert one["same-token"].expires_at != two["same-token"].expires_at
    assert one["same-token"].apns_id != two["same-token"].apns_id


def _claimed(ob: SqlOutbox, tokens: list[str], **kw: object) -> tuple[str, dict[str, ClaimedDelivery]]:
    nid = _enqueue(ob, **kw)
    ob.claim_expansions("w1", limit=10, lease=30)
    ob.add_deliveries(nid, [("ios", t, None, None) for t in tokens], cursor=None, worker_id="w1", lease=30)
    ob.finish_expansion(nid, warnings=[], errors=[])
    return nid, {c.token: c for c in ob.claim("w1", limit=100, lease=30)}


def test_a_mixed_batch_is_recorded_in_one_statement_each_answer_right(outbox: SqlOutbox) -> None:
    tokens = ["ok", "ok2", "own-id", "dead", "retry", "late", "broken", "rejected", "lost"]
    nid, c = _claimed(outbox, tokens, expires_at=utcnow() + timedelta(seconds=20))
    lease_deadline = _rows(outbox, nid)["ok"].next_attempt_at
    with outbox.engine.begin() as conn:  # "lost": its lease ran out and another worker took it
        conn.execute(update(D).where(D.token == "lost").values(lease_owner="w2"))
    ok = DeliveryResult("ok", Outcome.DELIVERED, 200, provider_id=c["ok"].apns_id)
    answers = [
        (c["ok"], ok),
        (c["ok2"], DeliveryResult("ok2", Outcome.DELIVERED, 200)),
        (c["own-id"], DeliveryResult("own-id", Outcome.DELIVERED, 200, provider_id="fcm-msg-1")),
        (
            c["dead"],
            DeliveryResult("dead", Outcome.TOKEN_DEAD, 410, "Unregistered", token_invalid_since=1234),
        ),
        (c["retry"], DeliveryResult("retry", Outcome.RETRY, 503, "ServiceUnavailable")),
        (c["late"], DeliveryResult("late", Outcome.RETRY, 429, "TooManyRequests", retry_after=3600)),
        (c["broken"], DeliveryResult("broken", Outcome.CONFIG_BROKEN, 403, "InvalidProviderToken")),
        (c["rejected"], DeliveryResult("rejected", Outcome.PAYLOAD_REJECTED, 400, "x" * 400)),
        (c["lost"], DeliveryResult("lost", Outcome.DELIVERED, 200)),
    ]
    before = utcnow()
    recorded = outbox.record("w1", answers)
    assert recorded.lost == 1 and recorded.completed == []
    rows = _rows(outbox, nid)
    got = {t: (r.state, r.outcome, r.status, r.lease_owner) for t, r in rows.items()}
    assert got == {
        "ok": ("done", "delivered", 200, None),
        "ok2": ("done", "delivered", 200, None),
        "own-id": ("done", "delivered", 200, None),
        "dead": ("done", "token_dead", 410, None),
        "retry": ("pending", None, 503, None),
        "late": ("done", "expired", 429, None),
        "broken": ("paused", None, 403, None),
        "rejected": ("done", "payload_rejected", 400, None),
        "lost": ("in_flight", None, None, "w2"),  # left to its new owner
    }
    # a plain 200 keeps nothing of its own: the provider's id is the apns-id, the lease deadline stays
    assert rows["ok"].provider_id is None and rows["ok"].next_attempt_at == lease_deadline
    assert rows["own-id"].provider_id == "fcm-msg-1"
    assert rows["dead"].token_invalid_since == 1234 and rows["dead"].reason == "Unregistered"
    assert rows["retry"].next_attempt_at > before and rows["retry"].reason == "ServiceUnavailable"
    assert (rows["late"].reason or "").startswith("expired after 1 attempts; last: TooManyRequests")
    assert rows["rejected"].reason == "x" * 300
    assert all(r.updated_at >= before for t, r in rows.items() if t != "lost")
    # the new owner records the lost one, which completes the notification... once the rest is final
    again = outbox.claim("w1", limit=10, lease=30)
    assert again == [] or [a.token for a in again] == ["retry"]


def test_recording_reads_by_primary_key_however_many_are_in_flight(outbox: SqlOutbox) -> None:
    """Batches of a large chunk, each answer recorded once, the last completes the notification."""
    tokens = [f"t{i:05}" for i in range(1200)]
    nid, c = _claimed(outbox, tokens)
    claimed = sorted(c.values(), key=lambda x: x.id)
    assert len(claimed) == 100  # the claim's limit
    while more := outbox.claim("w1", limit=500, lease=30):
        claimed += more
    assert len(claimed) == 1200
    completed: list[str] = []
    for i in range(0, 1200, 200):
        batch = [(x, DeliveryResult(x.token, Outcome.DELIVERED, 200)) for x in claimed[i : i + 200]]
        rec = outbox.record("w1", batch)
        assert rec.lost == 0
        completed += rec.completed
    assert completed == [nid]
    st = outbox.status(nid)
    assert st is not None and st.counts == {"total": 1200, "delivered": 1200}


def test_a_claim_reads_its_rows_in_order(outbox: SqlOutbox) -> None:
    """The claim reads due deliveries in the order it takes them and stops at its limit, with no
    sort, whatever the planner believes of the table (a send's table is never analysed in time,
    and this one is tiny). On PostgreSQL that is the partial index of claimable deliveries:
    through the (state, next_attempt_at) index, or a sort of a bitmap scan, every due delivery was
    read and sorted for each chunk, a cost that grew with the size of the send. SQLite reads the
    (state, next_attempt_at) index one state after the other, each in order. The statements the
    claim sent are replayed, in one transaction, with the last one explained, after telling
    PostgreSQL that reading an index costs a thousand times what it does: what the claim sets
    must still rule out the sort it then finds cheaper."""
    nid = _enqueue(outbox)
    outbox.claim_expansions("w1", limit=10, lease=30)
    devices = [("ios", f"t{i}", None, None) for i in range(5)]
    outbox.add_deliveries(nid, devices, cursor="5", worker_id="w1", lease=30)
    sent: list[tuple[str, object]] = []

    def keep(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        sent.append((statement, params))

    event.listen(outbox.engine, "before_cursor_execute", keep)
    try:
        assert len(outbox.claim("w1", limit=2, lease=30)) == 2
    finally:
        event.remove(outbox.engine, "before_cursor_execute", keep)
    *before, (claim, params) = [(st, p) for st, p in sent if st.lstrip().split()[0] in ("SET", "UPDATE")]
    assert claim.lstrip().startswith("UPDATE outbox_deliveries SET state")
    pg = outbox.engine.dialect.name == "postgresql"
    with outbox.engine.begin() as conn:
        if pg:
            conn.exec_driver_sql("SET LOCAL random_page_cost = 4000")
        for statement, p in before:
            conn.exec_driver_sql(statement, p)  # type: ignore[arg-type]
        rows = conn.exec_driver_sql(("EXPLAIN " if pg else "EXPLAIN QUERY PLAN ") + claim, params)  # type: ignore[arg-type]
        plan = "\n".join(str(r[0] if pg else r[-1]) for r in rows)
    if pg:
        assert "ix_outbox_deliveries_claimable" in plan and "Sort" not in plan, plan
    else:
        assert "ix_outbox_deliveries_state_next" in plan, plan
