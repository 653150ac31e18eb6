"""The delivery worker: expands recipients, claims chunks, sends through the provider clients,
records every outcome.

Crash safety comes from the order of operations: a delivery is leased (committed) before it is
sent and recorded after the provider answered. A crash in between leaves the lease to expire,
and the delivery is sent again with the apns-id it has had since it was created, so the device
(or anyone reading the sandbox records) sees a duplicate, never a loss. Results are recorded in
small batches while a chunk is still streaming, which keeps that duplicate window small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .._exceptions import NotificationError
from ..logs import event, get_logger
from ..notification import Notification
from ..outcome import DeliveryResult, Outcome
from ..queue.interface import ClaimedDelivery, ExpansionJob
from ..queue.sql import SqlOutbox
from ..server.metrics import Metrics
from ..webhooks.dispatcher import WebhookDispatcher
from .audience import Audience
from .providers import Item, ProviderPool, UnknownTarget

__all__ = ["Worker", "WorkerSettings"]

log = get_logger("worker")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    chunk: int = 500  # deliveries claimed at once
    lease: float = 120.0  # seconds before an unrecorded chunk is handed to another worker
    concurrency: int = 4  # chunks in flight per worker process
    poll: float = 0.25  # idle wait between claims when nothing wakes us
    record_every: int = 200  # results buffered before they are written
    expand_chunk: int = 1000  # devices read from the registry per transaction
    sweep_every: float = 5.0
    shutdown_grace: float = 10.0  # seconds in-flight chunks may take to finish at shutdown


class Worker:
    def __init__(
        self,
        outbox: SqlOutbox,
        pool: ProviderPool,
        audience: Audience,
        *,
        settings: WorkerSettings | None = None,
        metrics: Metrics | None = None,
        webhooks: WebhookDispatcher | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.outbox = outbox
        self.pool = pool
        self.audience = audience
        self.settings = settings or WorkerSettings()
        self.metrics = metrics
        self.webhooks = webhooks
        self.id = worker_id or f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._payloads: dict[str, Notification | NotificationError] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- control -----------------------------------------------------------------------------
    def wake(self) -> None:
        """Tell idle loops there is new work (safe from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then shut down gracefully (see module docstring)."""
        self._loop = asyncio.get_running_loop()
        self._stop_event = stop
        event(log, logging.INFO, "worker.started", worker=self.id, concurrency=self.settings.concurrency)
        tasks = [
            asyncio.create_task(self._deliver_loop(i), name=f"deliver-{i}")
            for i in range(self.settings.concurrency)
        ]
        tasks.append(asyncio.create_task(self._expand_loop(), name="expand"))
        tasks.append(asyncio.create_task(self._sweep_loop(), name="sweep"))
        try:
            await stop.wait()
        finally:
            self._stopping = True
            self._wake.set()
            # loops finish the chunk they hold, then return; what is still running after the grace
            # period is cancelled and its leases are released for another worker
            _done, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace)
            for t in pending:
                t.cancel()
            for t in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            released = await asyncio.to_thread(self.outbox.release, self.id)
            await self.pool.close()
            event(log, logging.INFO, "worker.stopped", worker=self.id, released=released)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.settings.poll)
        self._wake.clear()

    # -- expansion -----------------------------------------------------------------------------
    async def _expand_loop(self) -> None:
        while not self._stopping:
            try:
                jobs = await asyncio.to_thread(
                    self.outbox.claim_expansions, self.id, limit=200, lease=self.settings.lease
                )
                small = [j for j in jobs if not j.recipients.all]
                if small:
                    await asyncio.to_thread(self._expand_small, small)
                for job in jobs:
                    if self._stopping:
                        break
                    if job.recipients.all:
                        await asyncio.to_thread(self._expand, job)
                if jobs:
                    self._wake.set()
                    continue
            except Exception as exc:
                event(log, logging.ERROR, "worker.expand_failed", worker=self.id, error=repr(exc))
            await self._idle()

    def _expand(self, job: ExpansionJob) -> None:
        exp = self.audience.expand(job, chunk=self.settings.expand_chunk)
        total = 0
        for devices, cursor in exp.chunks:
            n = self.outbox.add_deliveries(
                job.notification_id, devices, cursor=cursor, worker_id=self.id, lease=self.settings.lease
            )
            if n < 0:  # cancelled, or our lease went to another worker
                return
            total += n
            self._wake_from_thread()
        done = self.outbox.finish_expansion(job.notification_id, warnings=exp.warnings, errors=exp.errors)
        event(
            log,
            logging.INFO,
            "notification.expanded",
            id=job.notification_id,
            app=job.app,
            devices=total,
            warnings=len(exp.warnings),
            errors=len(exp.errors),
        )
        self._completed_from_thread(done)

    def _expand_small(self, jobs: list[ExpansionJob]) -> None:
        """Explicit recipient lists are bounded by the request size: resolve them in memory and
        commit many notifications in one transaction."""
        batch = []
        for job in jobs:
            exp = self.audience.expand(job, chunk=self.settings.expand_chunk)
            devices = [d for chunk, _ in exp.chunks for d in chunk]
            batch.append((job.notification_id, devices, exp.warnings, exp.errors))
        done = self.outbox.expand_many(self.id, batch)
        self._wake_from_thread()
        event(log, logging.DEBUG, "notifications.expanded", count=len(batch))
        self._completed_from_thread(done)

    def _wake_from_thread(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _completed_from_thread(self, ids: list[str]) -> None:
        if ids and self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._completed(ids)))

    async def _completed(self, ids: list[str]) -> None:
        for st in await asyncio.to_thread(self.outbox.summaries, ids):
            nid = st.id
            event(
                log,
                logging.DEBUG,
                "notification.completed",
                id=nid,
                app=st.app,
                **{k: v for k, v in st.counts.items() if k != "total"},
            )
            if self.webhooks is not None:
                self.webhooks.emit(
                    st.app,
                    "notification.completed",
                    {
                        "id": nid,
                        "state": st.state,
                        "counts": st.counts,
                        "success": st.success,
                        "warnings": st.warnings,
                        "errors": st.errors,
                    },
                )

    async def _sweep_loop(self) -> None:
        while not self._stopping:
            try:
                done = await asyncio.to_thread(self.outbox.sweep)
                if done:
                    await self._completed(done)
            except Exception as exc:
                event(log, logging.ERROR, "worker.sweep_failed", worker=self.id, error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), self.settings.sweep_every)

    # -- delivery ------------------------------------------------------------------------------
    async def _deliver_loop(self, index: int) -> None:
        while not self._stopping:
            try:
                claimed = await asyncio.to_thread(
                    self.outbox.claim, self.id, limit=self.settings.chunk, lease=self.settings.lease
                )
            except Exception as exc:
                event(log, logging.ERROR, "worker.claim_failed", worker=self.id, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            if not claimed:
                await self._idle()
                continue
            if len(claimed) == self.settings.chunk:
                self._wake.set()  # more is waiting: let an idle sibling loop claim too
            await self._deliver(claimed)

    async def _notifications(self, ids: set[str]) -> dict[str, Notification | NotificationError]:
        missing = [i for i in ids if i not in self._payloads]
        if missing:
            rows = await asyncio.to_thread(self.outbox.payloads, missing)
            for nid, (payload, expires_at) in rows.items():
                try:
                    n = Notification.from_dict(payload)
                    if n.expiration is None:
                        # tell Apple to stop trying when we would: apns-expiration is absolute
                        n = n.replace(expiration=int(expires_at))
                    self._payloads[nid] = n
                except NotificationError as exc:
                    self._payloads[nid] = exc
            if len(self._payloads) > 10_000:
                for k in list(self._payloads)[:5_000]:
                    del self._payloads[k]
        return {i: self._payloads[i] for i in ids if i in self._payloads}

    async def _deliver(self, claimed: list[ClaimedDelivery]) -> None:
        notes = await self._notifications({c.notification_id for c in claimed})
        groups: dict[tuple[str, str, str | None], list[ClaimedDelivery]] = {}
        ready: list[tuple[ClaimedDelivery, DeliveryResult]] = []
        for c in claimed:
            n = notes.get(c.notification_id)
            if isinstance(n, Notification):
                groups.setdefault((c.app, c.platform, c.environment), []).append(c)
            else:
                reason = f"invalid notification: {n}" if n is not None else "notification row is missing"
                ready.append((c, DeliveryResult(c.token, Outcome.PAYLOAD_REJECTED, 0, reason)))
        if ready:
            await self._record(ready)
        await asyncio.gather(*(self._send_group(key, items, notes) for key, items in groups.items()))

    async def _send_group(
        self,
        key: tuple[str, str, str | None],
        group: list[ClaimedDelivery],
        notes: dict[str, Notification | NotificationError],
    ) -> None:
        app, platform, environment = key
        by_id = {c.id: c for c in group}
        try:
            client = await self.pool.get(app, platform, environment)
        except UnknownTarget as exc:
            await self._record([(c, DeliveryResult(c.token, Outcome.FAILED, 0, str(exc))) for c in group])
            return
        except Exception as exc:  # credentials unreadable, connection refused at open...
            event(log, logging.ERROR, "provider.open_failed", app=app, platform=platform, error=repr(exc))
            await self._record(
                [
                    (c, DeliveryResult(c.token, Outcome.RETRY, 0, f"provider unavailable: {exc}"))
                    for c in group
                ]
            )
            return
        started: dict[int, float] = {}

        async def items() -> AsyncIterator[Item]:
            for c in group:
                note = notes[c.notification_id]
                assert isinstance(note, Notification)
                started[c.id] = time.monotonic()
                yield (note, c.token, c.id, c.apns_id)

        buffer: list[tuple[ClaimedDelivery, DeliveryResult]] = []
        try:
            async for res in client.send_many(items()):
                c = by_id.pop(res.tag, None) if isinstance(res.tag, int) else None
                if c is None:
                    continue
                if self.metrics is not None and c.id in started:
                    self.metrics.send_latency.labels(app, platform).observe(time.monotonic() - started[c.id])
                buffer.append((c, res))
                if len(buffer) >= self.settings.record_every:
                    await self._record(buffer)
                    buffer = []
        except Exception as exc:
            event(log, logging.ERROR, "provider.send_failed", app=app, platform=platform, error=repr(exc))
        finally:
            # anything the client did not answer goes back to the queue as a transient failure
            buffer += [
                (c, DeliveryResult(c.token, Outcome.RETRY, 0, "no answer from the provider"))
                for c in by_id.values()
            ]
            if buffer:
                await asyncio.shield(self._record(buffer))

    async def _record(self, results: list[tuple[ClaimedDelivery, DeliveryResult]]) -> None:
        done = await asyncio.to_thread(self.outbox.record, self.id, results)
        for c, res in results:
            if self.metrics is not None:
                if res.outcome is Outcome.RETRY:
                    self.metrics.retries.labels(c.app, c.platform, res.reason or str(res.status)).inc()
                else:
                    self.metrics.deliveries.labels(
                        c.app, c.platform, res.outcome.value, res.reason or ""
                    ).inc()
            if res.outcome is Outcome.TOKEN_DEAD:
                await self._retire(c, res)
            elif res.outcome is Outcome.CONFIG_BROKEN:
                event(
                    log, logging.ERROR, "app.config_broken", app=c.app, platform=c.platform, reason=res.reason
                )
        if done:
            await self._completed(done)

    async def _retire(self, c: ClaimedDelivery, res: DeliveryResult) -> None:
        reason = res.reason or "token_dead"
        try:
            retired = await asyncio.to_thread(
                self.audience.retire, c.app, c.token, reason, res.token_invalid_since
            )
        except Exception as exc:
            event(log, logging.ERROR, "device.retire_failed", app=c.app, token=c.token, error=repr(exc))
            return
        if not retired:
            return
        event(
            log, logging.INFO, "device.retired", app=c.app, platform=c.platform, token=c.token, reason=reason
        )
        if self.metrics is not None:
            self.metrics.tokens_retired.labels(c.app, reason).inc()
        if self.webhooks is not None:
            self.webhooks.emit(
                c.app,
                "token.retired",
                {
                    "platform": c.platform,
                    "token": c.token,
                    "reason": reason,
                    "notification_id": c.notification_id,
                },
            )
