"""The console's bounded reads on SQLite and PostgreSQL (no browser: the pages over them are tested
in test_console.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from pushrelay.console import queries
from pushrelay.db import Database
from pushrelay.queue.models import DeliveryRow, NotificationRow, utcnow
from pushrelay.registry.devices import DeviceRegistry

TOKENS = ["ab" * 32, "ab12" + "0" * 60, "cd" * 32]


def _notification(
    conn: sa.Connection, app: str, created_ago: timedelta, outcomes: dict[str, str | None]
) -> str:
    nid = str(uuid.uuid4())
    created = utcnow() - created_ago
    conn.execute(
        sa.insert(NotificationRow.__table__).values(
            id=nid, app=app, state="sending", payload={"title": "t"}, recipients={"all": True}, targets=[],
            created_at=created, send_at=None, expires_at=created + timedelta(days=1), due_at=created,
            completed_at=None, warnings=[], errors=[], request_hash="0" * 64,
        )
    )  # fmt: skip
    for token, outcome in outcomes.items():
        conn.execute(
            sa.insert(DeliveryRow.__table__).values(
                notification_id=nid, app=app, platform="ios", environment=None, token=token, email=None,
                apns_id=str(uuid.uuid4()), state="done" if outcome else "pending", next_attempt_at=created,
                expires_at=created + timedelta(days=1), attempts=1 if outcome else 0, outcome=outcome,
                status=None, reason=None, created_at=created, updated_at=created,
            )
        )  # fmt: skip
    return nid


def test_console_reads(database_url: str) -> None:
    db = Database(database_url)
    try:
        reg = DeviceRegistry(db)
        for token in TOKENS:
            reg.register("a", token, email="Test@4D.com" if token != TOKENS[2] else "other@4d.com")
        reg.register("b", TOKENS[0], email="test@4d.com")
        engine = db.engine

        # e-mail: exact, case-insensitive, one app only
        page = queries.search_devices(reg, "a", "TEST@4d.com ")
        assert [d.token for d in page.items] == TOKENS[:2] and page.next_after is None
        # token prefix; LIKE wildcards are literal
        assert [d.token for d in queries.search_devices(reg, "a", "ab12").items] == [TOKENS[1]]
        assert queries.search_devices(reg, "a", "a%").items == []
        assert queries.search_devices(reg, "a", "_b").items == []
        # keyset pages of one device walk the app's devices once each
        seen, after = [], 0
        while True:
            p = queries.search_devices(reg, "a", "", after=after, limit=1)
            seen += [d.token for d in p.items]
            if p.next_after is None:
                break
            after = p.next_after
        assert seen == TOKENS
        first = queries.search_devices(reg, "a", "").items[0]
        found = queries.device_by_id(engine, first.id)
        assert found is not None and found.token == TOKENS[0]
        assert queries.device_by_id(engine, 10**9) is None

        with engine.begin() as conn:
            recent = _notification(conn, "a", timedelta(minutes=5),
                                   {TOKENS[0]: "delivered", TOKENS[1]: "unregistered", TOKENS[2]: None})  # fmt: skip
            _notification(conn, "a", timedelta(hours=2), {TOKENS[0]: "delivered"})
            _notification(conn, "b", timedelta(minutes=1), {TOKENS[0]: None})
        # the last hour only, per app; open ones by state
        assert queries.delivery_rates(engine, ["a", "b"]) == {
            "a": {"delivered": 1, "unregistered": 1, "pending": 1},
            "b": {"pending": 1},
        }
        assert queries.open_deliveries(engine, ["a", "b", "c"]) == {
            "a": {"pending": 1},
            "b": {"pending": 1},
            "c": {},
        }
        # a device's deliveries, newest first, of its own app only
        rows = queries.device_deliveries(engine, "a", TOKENS[0])
        assert len(rows) == 2 and rows[0].notification_id == recent and rows[0].outcome == "delivered"
        assert [r.app for r in queries.device_deliveries(engine, "b", TOKENS[0])] == ["b"]
    finally:
        db.dispose()
