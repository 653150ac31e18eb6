"""The worker's hot path in the SQL outbox, on SQLite and PostgreSQL: delivery rows written
column by column (apns-ids made by the database), outcomes recorded in bulk, completion."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from pushrelay.db import Database
from pushrelay.queue import NotificationRequest, Recipients, RetryPolicy, SqlOutbox
from pushrelay.queue.models import DeliveryRow, utcnow

D = DeliveryRow
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def outbox(database_url: str) -> Iterator[SqlOutbox]:
    db = Database(database_url)
    try:
        yield SqlOutbox(db.engine, retry=RetryPolicy(base=0.01, cap=0.05))
    finally:
        db.dispose()


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
