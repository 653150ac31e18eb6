"""Webhook events are durable: a restart or a receiver that is down loses none of them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from pushrelay.db import Database
from pushrelay.queue.events import WebhookEventRow
from pushrelay.queue.models import utcnow
from pushrelay.sandbox import ApnsSandbox
from pushrelay.webhooks import WebhookDispatcher, WebhookSettings, WebhookTarget, verify
from pushrelay.webhooks.store import WebhookEventStore

from .conftest import Stack, WebhookReceiver, wait_until

DEAD = "de" * 32


@pytest.fixture
def store(database_url: str) -> Iterator[WebhookEventStore]:
    db = Database(database_url)
    try:
        yield WebhookEventStore(db.engine)
    finally:
        db.dispose()


def test_events_are_leased_retried_and_kept_until_retention(store: WebhookEventStore) -> None:
    assert store.add([("a", "token.retired", {"token": "t1"}), ("a", "x", {}), ("b", "x", {})]) == 3
    first = store.claim("p1", ["a"], limit=10, lease=30)
    assert [(e.app, e.attempts) for e in first] == [("a", 1), ("a", 1)]
    assert first[0].body()["type"] == "token.retired" and first[0].body()["token"] == "t1"
    assert store.claim("p2", ["a", "b"], limit=10, lease=30)[0].app == "b"  # a's are leased
    store.failed("p1", [(first[0].id, 0.0), (first[1].id, 3600.0)], "HTTP 500")
    again = store.claim("p2", ["a"], limit=10, lease=30)
    assert [(e.id, e.attempts) for e in again] == [(first[0].id, 2)]
    store.delivered("p1", [again[0].id])  # a late answer from the previous holder changes nothing
    store.delivered("p2", [again[0].id])
    store.release("p2")
    # a sender that dies holding events: once its lease has run out, another one sends them
    (held,) = store.claim("dead", ["b"], limit=10, lease=0)
    assert [e.id for e in store.claim("alive", ["b"], limit=10, lease=30)] == [held.id]
    store.release("alive")
    assert store.pending() == {"a": 1, "b": 1}
    with store.engine.begin() as conn:  # the b event is four days old
        conn.execute(
            update(WebhookEventRow)
            .where(WebhookEventRow.app == "b")
            .values(created_at=utcnow() - timedelta(days=4))
        )
    assert store.purge(timedelta(days=3)) == {"b": 1}
    assert store.pending() == {"a": 1}


async def test_the_sender_drops_only_what_outlived_the_retention(store: WebhookEventStore) -> None:
    receiver = WebhookReceiver()
    dropped: list[tuple[str, int]] = []
    results: list[str] = []
    try:
        store.add([("a", "old", {"n": 1}), ("a", "new", {"n": 2})])
        with store.engine.begin() as conn:
            conn.execute(
                update(WebhookEventRow)
                .where(WebhookEventRow.kind == "old")
                .values(created_at=utcnow() - timedelta(days=8))
            )
        sender = WebhookDispatcher(
            {"a": WebhookTarget(receiver.url, "k")},
            store,
            settings=WebhookSettings(retention=timedelta(days=7), batch_delay=0.01, poll=0.05),
            on_result=lambda app, r: results.append(r),
            on_dropped=lambda app, n: dropped.append((app, n)),
        )
        await sender.start()
        try:
            for _ in range(200):
                if receiver.events():
                    break
                await asyncio.sleep(0.05)
        finally:
            await sender.stop()
        assert dropped == [("a", 1)] and results == ["ok"]
        assert [(e["type"], e["n"]) for e in receiver.events()] == [("new", 2)]
        assert store.pending() == {}
    finally:
        receiver.close()


def _waiting(db_url: str) -> int:
    db = Database(db_url, migrate=False)
    try:
        with db.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(WebhookEventRow)) or 0)
    finally:
        db.dispose()


def test_a_restart_loses_no_undelivered_event(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    receiver = WebhookReceiver(fail_first=10**9)  # down until further notice
    stack = Stack(database_url, sandbox, tmp_path, receiver)
    try:
        sandbox.script(DEAD, "unregistered")
        stack.service.start()
        with stack.client(stack.registrar) as reg:
            assert reg.post("/v1/devices", json={"app": "myapp", "token": DEAD}).status_code == 201
        with stack.client(stack.sender) as snd:
            r = snd.post(
                "/v1/notifications?wait=10",
                json={
                    "app": "myapp",
                    "notification": {"title": "t"},
                    "recipients": {"device_tokens": [DEAD]},
                },
            )
            assert r.json()["counts"] == {"total": 1, "token_dead": 1}, r.text
            nid = r.json()["id"]
        wait_until(lambda: len(receiver.posts) >= 2, 30, "failed posts")  # retried, still failing
        assert stack.service.stop() == 0
        assert _waiting(database_url) == 2  # token.retired and notification.completed, kept

        receiver.fail_first = 0  # the receiver is back
        stack.service.start()
        wait_until(lambda: len(receiver.events()) >= 2, 30, "the events after the restart")
        wait_until(lambda: _waiting(database_url) == 0, 30, "the events to be deleted once delivered")
        events = receiver.events()
        assert sorted(e["type"] for e in events) == ["notification.completed", "token.retired"]
        assert len({e["event_id"] for e in events}) == 2
        retired = next(e for e in events if e["type"] == "token.retired")
        assert retired["token"] == DEAD and retired["notification_id"] == nid
        completed = next(e for e in events if e["type"] == "notification.completed")
        assert completed["id"] == nid and completed["counts"] == {"total": 1, "token_dead": 1}
        for headers, body, status in receiver.posts:
            assert verify("s3cret", headers["x-pushrelay-timestamp"], body, headers["x-pushrelay-signature"])
            if status == 200:
                assert json.loads(body)["events"]
        assert stack.service.stop() == 0
    finally:
        stack.service.stop()
        receiver.close()
