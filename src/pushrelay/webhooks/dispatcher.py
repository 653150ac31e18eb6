"""Deliver webhook events from the database without ever slowing push delivery.

Events wait in the ``webhook_events`` table (:mod:`.store`), so that neither a restart nor a
receiver that is down for hours loses one. One background task per process sends them: it claims
due events under a lease (several processes on PostgreSQL share the work without sending an event
twice), groups them per app into batches of up to ``batch_size``, POSTs each batch as
``{"events": [...]}`` with an HMAC signature, deletes what the receiver accepted and reschedules
the rest with exponential backoff and jitter. Any failure is retried (a receiver answering 4xx is
most often misconfigured, and fixed later); an event still undelivered after the retention period
is dropped and counted. Producers never wait for the receiver: they only write a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from ..logs import event, get_logger
from ..queue.policy import RetryPolicy
from .signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from .store import PendingEvent, WebhookEventStore

__all__ = ["WebhookDispatcher", "WebhookSettings", "WebhookTarget"]

log = get_logger("webhooks")


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    batch_size: int = 100  # events per POST
    batch_delay: float = 0.5  # seconds to let a batch fill after being woken
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(base=1.0, cap=300.0))
    retention: timedelta = timedelta(days=3)  # undelivered events older than this are dropped
    lease: float = 30.0  # seconds before an unanswered batch is sent again (longer than timeout)
    timeout: float = 10.0  # per POST
    poll: float = 1.0  # idle check for events written by other processes


class WebhookDispatcher:
    def __init__(
        self,
        targets: Mapping[str, WebhookTarget],
        store: WebhookEventStore | None = None,
        *,
        settings: WebhookSettings | None = None,
        on_result: Callable[[str, str], None] | None = None,
        on_dropped: Callable[[str, int], None] | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.store = store
        self.settings = settings or WebhookSettings()
        self.owner = f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:6]}-wh"
        self._on_result = on_result or (lambda app, result: None)
        self._on_dropped = on_dropped or (lambda app, n: None)
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    @property
    def apps(self) -> frozenset[str]:
        """Apps with a webhook."""
        return frozenset(self.targets)

    def emit(self, app: str, kind: str, data: Mapping[str, Any]) -> bool:
        """Write one event (blocking: call it from a worker thread). False when ``app`` has no
        webhook and nothing was written."""
        if app not in self.targets or self.store is None:
            return False
        self.store.add([(app, kind, data)])
        self.wake()
        return True

    def emit_many(self, app: str, kind: str, items: Iterable[Mapping[str, Any]]) -> int:
        """Write several events of one kind in one transaction (blocking); returns how many."""
        if app not in self.targets or self.store is None:
            return 0
        n = self.store.add((app, kind, data) for data in items)
        self.wake()
        return n

    def wake(self) -> None:
        """New events are waiting (safe from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        if self.targets and self.store is not None and self._task is None:
            self._loop = asyncio.get_running_loop()
            self._stopping = False
            # TLS verification stays on (httpx default): events carry device tokens.
            self._client = httpx.AsyncClient(timeout=self.settings.timeout)
            self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self, drain_timeout: float = 2.0) -> None:
        """Let a POST in progress finish (up to ``drain_timeout`` seconds), then stop. What was not
        sent stays in the database for the next start (or another process)."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), drain_timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self.store is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.store.release, self.owner)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send_pending(self, timeout: float) -> None:  # noqa: ASYNC109 - a budget, not a cancel scope
        """Send the events waiting for our apps now, within ``timeout`` seconds, without the
        background task: a one-shot process (``pushrelay send``, ``PushNotification.send``) ends
        before a poll would. What cannot be sent stays in the database, retried by the next
        process that runs a dispatcher (a ``pushrelay serve``)."""
        if not self.targets or self.store is None or self._task is not None:
            return
        store = self.store
        deadline = time.monotonic() + timeout
        self._client = httpx.AsyncClient(timeout=max(0.1, min(self.settings.timeout, timeout)))
        try:
            while time.monotonic() < deadline:
                batch = await asyncio.to_thread(
                    store.claim, self.owner, sorted(self.targets), limit=self.settings.batch_size,
                    lease=self.settings.lease,
                )  # fmt: skip
                if not batch:
                    return
                groups: dict[str, list[PendingEvent]] = {}
                for ev in batch:
                    groups.setdefault(ev.app, []).append(ev)
                await asyncio.gather(*(self._send(app, events) for app, events in groups.items()))
        finally:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        assert self.store is not None
        store = self.store
        purged_at = 0.0
        while not self._stopping:
            try:
                if time.monotonic() - purged_at > 60:
                    purged_at = time.monotonic()
                    for app, n in (await asyncio.to_thread(store.purge, self.settings.retention)).items():
                        self._on_dropped(app, n)
                        event(log, logging.ERROR, "webhook.dropped", app=app, events=n,
                              reason=f"undelivered for {self.settings.retention.days} days")  # fmt: skip
                batch = await asyncio.to_thread(
                    store.claim,
                    self.owner,
                    sorted(self.targets),
                    limit=self.settings.batch_size,
                    lease=self.settings.lease,
                )
            except Exception as exc:  # the database blinked: try again later
                event(log, logging.ERROR, "webhook.claim_failed", error=repr(exc))
                batch = []
            if batch:
                groups: dict[str, list[PendingEvent]] = {}
                for ev in batch:
                    groups.setdefault(ev.app, []).append(ev)
                await asyncio.gather(*(self._send(app, events) for app, events in groups.items()))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), await self._idle_time())
            if self._wake.is_set() and not self._stopping:
                self._wake.clear()
                await asyncio.sleep(self.settings.batch_delay)  # let the batch fill

    async def _idle_time(self) -> float:
        """Until the next retry is due, but at most ``poll``: other processes may add events."""
        assert self.store is not None
        try:
            due = await asyncio.to_thread(self.store.next_due, sorted(self.targets))
        except Exception:
            due = None
        return self.settings.poll if due is None else min(self.settings.poll, max(0.01, due))

    async def _send(self, app: str, events: list[PendingEvent]) -> None:
        assert self.store is not None
        error = await self._post(app, events)
        try:
            if error is None:
                await asyncio.to_thread(self.store.delivered, self.owner, [e.id for e in events])
                self._on_result(app, "ok")
                return
            retries = [(e.id, self.settings.retry.delay(e.attempts)) for e in events]
            await asyncio.to_thread(self.store.failed, self.owner, retries, error)
        except Exception as exc:  # the lease runs out and the events are sent again
            event(log, logging.ERROR, "webhook.record_failed", app=app, error=repr(exc))
            return
        self._on_result(app, "retry")
        event(log, logging.WARNING, "webhook.failed", app=app, attempt=max(e.attempts for e in events),
              error=error, events=len(events))  # fmt: skip

    async def _post(self, app: str, events: list[PendingEvent]) -> str | None:
        """POST one batch; None when the receiver accepted it, else what went wrong."""
        target = self.targets[app]
        body = json.dumps({"events": [e.body() for e in events]}, separators=(",", ":")).encode()
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(ts),
            "User-Agent": "pushrelay-webhooks",
        }
        if target.secret:  # an empty key is a signature anyone can compute: send none instead
            headers[SIGNATURE_HEADER] = sign(target.secret, ts, body)
        assert self._client is not None
        try:
            resp = await self._client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return None if resp.status_code < 300 else f"HTTP {resp.status_code}"
