"""Inline sends (``PushNotification.send``, ``pushrelay send``) run the service's worker code: the
same lease heartbeat, so that a long send is not taken over by a service worker, and the same
``token.retired`` webhook when a provider calls a device dead. Real APNs sandbox over TLS,
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pushrelay.config import Config, config_from_dict
from pushrelay.push import AsyncPushNotification
from pushrelay.queue import SqlOutbox
from pushrelay.queue.models import DeliveryRow
from pushrelay.registry import DeviceRegistry
from pushrelay.sandbox import ApnsSandbox
from pushrelay.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from pushrelay.worker.runner import WorkerSettings

from .conftest import BUNDLE, TEAM, WebhookReceiver

N = {"title": "inline", "body": "b"}


def _tok(i: int) -> str:
    return f"{i:064x}"


def _config(url: str, sandbox: ApnsSandbox, tmp: Path, **app: Any) -> Config:
    key = sandbox.create_key(TEAM, "ABC123DEFG", tmp)
    apns = {"team_id": TEAM, "key_file": str(key), "endpoint": sandbox.url, "ca_file": str(sandbox.ca_file)}
    return config_from_dict(
        {"database": {"url": url}, "apps": {"myapp": {"bundle_id": BUNDLE, "apns": apns, **app}}}
    )


async def test_a_long_inline_send_keeps_its_lease(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    """APNs answers after 4 s, more than two leases of 1.5 s: a service worker claiming meanwhile
    gets nothing, and the device gets the notification once."""
    config = _config(database_url, sandbox, tmp_path)
    tok = _tok(7)
    sandbox.script(tok, "delay", times=1, seconds=4)
    stolen: list[object] = []
    done = threading.Event()
    push = AsyncPushNotification("myapp", config=config)
    async with push:
        worker = push._worker
        assert worker is not None
        worker.settings = WorkerSettings(lease=1.5)
        outbox = SqlOutbox(push.registry.db.engine)

        def service_worker() -> None:  # what a `pushrelay serve` worker does: claim what is due
            while not done.is_set():
                stolen.extend(outbox.claim("service-worker", limit=10, lease=30))
                done.wait(0.1)

        thief = asyncio.create_task(asyncio.to_thread(service_worker))
        try:
            result = await push.send(N, tok, timeout=30)
        finally:
            done.set()
            await thief
    assert stolen == []
    assert result.success and len(sandbox.received(tok)) == 1
    with push.registry.db.engine.connect() as conn:
        assert conn.execute(select(DeliveryRow.attempts, DeliveryRow.outcome)).one() == (1, "delivered")


async def test_an_inline_send_tells_the_webhook_of_a_retired_token(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    receiver = WebhookReceiver()
    try:
        config = _config(database_url, sandbox, tmp_path, webhook_url=receiver.url, webhook_secret="s3cret")
        dead, alive = _tok(8), _tok(9)
        with DeviceRegistry(database_url) as registry:
            registry.register("myapp", dead, email="ann@example.com")
            registry.register("myapp", alive, email="ann@example.com")
        sandbox.script(dead, "unregistered")
        push = AsyncPushNotification("myapp", config=config)
        result = await push.send(N, "ann@example.com", timeout=30)
        assert [d.token for d in result.deliveries if d.retired] == [dead]
        (retired,) = [e for e in receiver.events() if e["type"] == "token.retired"]
        assert retired["token"] == dead and retired["notification_id"] == result.notification_id
        (completed,) = [e for e in receiver.events() if e["type"] == "notification.completed"]
        assert completed["id"] == result.notification_id
        assert completed["counts"] == {"total": 2, "delivered": 1, "token_dead": 1}
        headers, body, _status = receiver.posts[0]
        ts = int(headers[TIMESTAMP_HEADER.lower()])
        assert headers[SIGNATURE_HEADER.lower()] == sign("s3cret", ts, body)
    finally:
        receiver.close()
