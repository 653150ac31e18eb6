"""Deliver webhook events without ever slowing push delivery.

Producers call :meth:`WebhookDispatcher.emit`, which only appends to a bounded in-memory queue
(never awaits, never blocks). One background task drains it: events are grouped per app into
batches of up to ``batch_size`` (waiting at most ``batch_delay`` for a batch to fill), POSTed as
``{"events": [...]}`` with an HMAC signature, and retried with exponential backoff on connection
errors and 5xx/429 answers. When the queue is full (a receiver down for long), new events are
dropped and counted: delivery of notifications matters more than feedback about them. Events are
not durable across restarts (the outbox and registry are the source of truth; the webhook is a
convenience feed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..logs import event, get_logger
from .signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

__all__ = ["WebhookDispatcher", "WebhookTarget"]

log = get_logger("webhooks")


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    secret: str


class WebhookDispatcher:
    def __init__(
        self,
        targets: Mapping[str, WebhookTarget],
        *,
        max_queue: int = 10_000,
        batch_size: int = 100,
        batch_delay: float = 0.5,
        max_attempts: int = 6,
        backoff_base: float = 1.0,
        timeout: float = 10.0,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.batch_size = batch_size
        self.batch_delay = batch_delay
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.timeout = timeout
        self.dropped = 0
        self._on_result = on_result or (lambda app, result: None)
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def emit(self, app: str, kind: str, data: Mapping[str, Any]) -> None:
        if app not in self.targets:
            return
        ev = {"type": kind, "app": app, "at": time.time(), **data}
        try:
            self._queue.put_nowait((app, ev))
        except asyncio.QueueFull:
            self.dropped += 1
            self._on_result(app, "dropped")

    async def start(self) -> None:
        if self.targets and self._task is None:
            # TLS verification stays on (httpx default): events carry device tokens.
            self._client = httpx.AsyncClient(timeout=self.timeout)
            self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self, drain_timeout: float = 2.0) -> None:
        """Try to flush what is queued for up to ``drain_timeout`` seconds, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            app, first = await self._queue.get()
            batch: dict[str, list[dict[str, Any]]] = {app: [first]}
            taken = 1
            deadline = asyncio.get_running_loop().time() + self.batch_delay
            while taken < self.batch_size:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    a, ev = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
                batch.setdefault(a, []).append(ev)
                taken += 1
            try:
                for a, events in batch.items():
                    await self._post(a, events)
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    async def _post(self, app: str, events: list[dict[str, Any]]) -> None:
        target = self.targets[app]
        body = json.dumps({"events": events}, separators=(",", ":")).encode()
        assert self._client is not None
        for attempt in range(1, self.max_attempts + 1):
            ts = int(time.time())
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(ts),
                SIGNATURE_HEADER: sign(target.secret, ts, body),
                "User-Agent": "pushrelay-webhooks",
            }
            try:
                resp = await self._client.post(target.url, content=body, headers=headers)
                if resp.status_code < 300:
                    self._on_result(app, "ok")
                    return
                retryable = resp.status_code >= 500 or resp.status_code == 429
                why = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                retryable, why = True, type(exc).__name__
            event(log, 30, "webhook.failed", app=app, attempt=attempt, error=why, events=len(events))
            if not retryable:
                break
            self._on_result(app, "retry")
            if attempt < self.max_attempts:
                await asyncio.sleep(min(60.0, self.backoff_base * 2 ** (attempt - 1)))
        self._on_result(app, "failed")
