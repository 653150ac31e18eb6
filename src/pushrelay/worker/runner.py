"""The delivery worker: expands recipients, claims chunks, sends through the provider clients,
records every outcome.

Crash safety comes from the order of operations: a delivery is leased (committed) before it is
sent and recorded after the provider answered. Leases are short (30 s) and a heartbeat renews
them while this worker lives (see :mod:`pushrelay.queue.leases`). A crash in between leaves the
lease to expire within one lease time, and the delivery is sent again with the apns-id it has had since it was created, so the device
(or anyone reading the sandbox records) sees a duplicate, never a loss. Results are recorded in
small batches while a chunk is still streaming, which keeps that duplicate window small.

A provider that calls an app's configuration broken pauses the app (see
:mod:`pushrelay.queue.pauses`): this worker logs it loudly, tells the app's webhook, and parks the
deliveries. When the app is resumed, its deliveries are claimable again; the first chunk of it
this worker claims afterwards gets fresh provider clients, since the old ones refuse to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .._exceptions import ConfigurationError, NotificationError
from ..local_time import parse_local_time, scheduled_for
from ..logs import event, get_logger
from ..metrics import Metrics
from ..notification import Notification
from ..outcome import DeliveryResult, Outcome
from ..providers.base import AppProviderPool, Item, UnknownTarget, for_device
from ..providers.state import Deferrals, deferral_for
from ..queue.errors import describe_error, is_transient
from ..queue.interface import ClaimedDelivery, DeviceRef, ExpansionJob, Handoff, Outbox, Recorded
from ..queue.models import utcnow
from ..queue.wakeup import WorkListener
from ..webhooks.dispatcher import WebhookDispatcher
from .attempt_log import AttemptLog
from .audience import Audience

__all__ = ["Worker", "WorkerSettings"]

log = get_logger("worker")

Results = list[tuple[ClaimedDelivery, DeliveryResult]]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    chunk: int = 500  # deliveries claimed at once
    lease: float = 30.0  # seconds without a heartbeat before a held chunk goes to another worker
    heartbeat: float | None = None  # seconds between two renewals of our leases; None: lease / 3
    hold: float = 600.0  # seconds after its claim that a chunk's lease is renewed at most
    concurrency: int = 4  # chunks in flight per worker process
    poll: float = 0.25  # idle wait between claims when nothing wakes us (no LISTEN, or it is down)
    idle_max: float = 5.0  # longest idle wait while LISTEN/NOTIFY wakes us (see queue.wakeup)
    listen: bool = True  # LISTEN for new work on PostgreSQL (off behind a transaction-pooling proxy)
    record_every: int = 200  # results buffered before they are written
    expand_chunk: int = 1000  # devices read from the registry per transaction
    sweep_every: float = 5.0
    shutdown_grace: float = 10.0  # seconds in-flight chunks may take to finish at shutdown
    paused_reminder: float = 300.0  # seconds between two log lines about a paused app
    report_window: float = 60.0  # seconds: refusal summaries and the overdue report, at most once per
    overdue_after: float = 60.0  # seconds past due after which an unclaimed delivery is reported


class Worker:
    def __init__(
        self,
        outbox: Outbox,
        pool: AppProviderPool,
        audience: Audience,
        *,
        settings: WorkerSettings | None = None,
        metrics: Metrics | None = None,
        webhooks: WebhookDispatcher | None = None,
        worker_id: str | None = None,
        fingerprint: Callable[[str], str | None] = lambda app: None,
        deferrals: Deferrals | None = None,
        listener: WorkListener | None = None,
    ) -> None:
        """``fingerprint(app)`` identifies the credentials this worker uses for ``app``; it is kept
        with a pause so that a restart with other credentials resumes the app by itself.
        ``deferrals``: the targets' Retry-After deadlines shared by every process (none: not shared).
        ``listener``: wakes this worker when another process commits work (PostgreSQL's NOTIFY);
        without it, or while it is disconnected, idle loops poll every ``settings.poll`` seconds."""
        self.outbox = outbox
        self.pool = pool
        self.audience = audience
        self.settings = settings or WorkerSettings()
        self.metrics = metrics
        self.webhooks = webhooks
        self.fingerprint = fingerprint
        self.deferrals = deferrals
        self.park_broken = True  # config_broken answers park the app's deliveries (and pause it)
        self.id = worker_id or f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.listener = listener
        # Idle loops wait on the current bell; ringing it wakes them all and hangs up a new one.
        # A loop notes the generation before it claims, and does not sleep if the bell rang since:
        # a wake-up that arrives while it is claiming is not lost (one shared, cleared event would
        # lose it when another loop clears it first).
        self._bell = asyncio.Event()
        self._rung = 0
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._payloads: dict[str, Notification | NotificationError] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refused: set[str] = set()  # apps whose clients here were refused (config_broken)
        self._reminded: dict[str, float] = {}  # paused app -> when we last logged it
        # the work in progress, whose leases the heartbeat renews (see _heartbeat_loop)
        self._held: set[int] = set()
        self._expanding: set[str] = set()
        # Deliveries the expansion inserted already leased to us (no claim), in chunks waiting for
        # a delivery loop: written by the expansion's thread, taken by the loops (see _handoff)
        self._handed: deque[list[ClaimedDelivery]] = deque()
        self._handed_rows = 0
        self._handed_cond = threading.Condition()
        self._delivering = False  # the delivery loops run (run()): the expansion may wait for them
        self.attempts = AttemptLog(log, window=self.settings.report_window)
        self._overdue_said = -float("inf")
        self.recorded = 0  # attempts whose outcome this worker recorded (its share, with others)

    # -- control -----------------------------------------------------------------------------
    def wake(self) -> None:
        """Tell idle loops there is new work (safe from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._ring)

    def _ring(self) -> None:
        """Wake every idle loop (on the loop's thread)."""
        self._rung += 1
        self._bell.set()
        self._bell = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then shut down gracefully (see module docstring)."""
        self._loop = asyncio.get_running_loop()
        self._stop_event = stop
        self._delivering = True
        event(log, logging.INFO, "worker.started", worker=self.id, concurrency=self.settings.concurrency)
        # listed alive before it leases anything (an expansion inserts rows leased to it at once)
        await self._beat()
        tasks = [
            asyncio.create_task(self._deliver_loop(i), name=f"deliver-{i}")
            for i in range(self.settings.concurrency)
        ]
        tasks.append(asyncio.create_task(self._expand_loop(), name="expand"))
        tasks.append(asyncio.create_task(self._sweep_loop(), name="sweep"))
        beat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        listen = (
            asyncio.create_task(self.listener.run(self._ring), name="listen")
            if self.listener is not None
            else None
        )
        try:
            await stop.wait()
        finally:
            self._stopping = True
            self._ring()
            with self._handed_cond:  # an expansion waiting for room stops waiting
                self._handed_cond.notify_all()
            # loops finish the chunk they hold, then return; what is still running after the grace
            # period is cancelled and its leases are released for another worker
            _done, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace)
            for t in pending:
                t.cancel()
            for t in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            for side in (beat, listen):
                if side is not None:
                    side.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await side
            released = await asyncio.to_thread(self.outbox.release, self.id)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.outbox.forget_worker, self.id)
            await self.pool.close()
            event(log, logging.INFO, "worker.stopped", worker=self.id, released=released,
                  attempts=self.recorded)  # fmt: skip

    async def _heartbeat_loop(self) -> None:
        """Renew the leases of the work in progress, a few times per lease: a chunk may take longer
        than one lease while we live, and is handed to another worker within one lease once we
        are dead. Only work in progress: what a loop gave up on after an error is not renewed, so
        it goes back to the queue within one lease instead of staying ours forever."""
        every = self.settings.heartbeat or self.settings.lease / 3
        while True:
            await self._beat()
            await asyncio.sleep(every)

    async def _beat(self) -> None:
        held, expanding = set(self._held), set(self._expanding)  # copied on the loop's thread
        with self._handed_cond:  # leased at insert, waiting for a loop: ours as much
            held.update(c.id for chunk in self._handed for c in chunk)
        try:
            await asyncio.to_thread(
                self.outbox.heartbeat,
                self.id,
                lease=self.settings.lease,
                hold=self.settings.hold,
                deliveries=held,
                expansions=expanding,
            )
        except Exception as exc:  # the database is away: our leases may run out meanwhile
            event(log, logging.ERROR, "worker.heartbeat_failed", worker=self.id, error=repr(exc))

    async def _idle(self, rung: int) -> None:
        """Wait for a wake-up, unless one came since generation ``rung`` (noted before the claim
        that found nothing). While the listener listens, new work rings at once, so the wait is
        only for work that becomes due by the clock (see :mod:`pushrelay.queue.wakeup`); else,
        ``poll`` seconds."""
        if self._rung != rung or self._stopping:
            return
        bell, wait = self._bell, self.settings.poll
        if self.listener is not None and self.listener.listening:
            try:
                wait = await asyncio.to_thread(
                    self.outbox.idle_wait, self.settings.poll, max(self.settings.poll, self.settings.idle_max)
                )
            except Exception as exc:  # the database is away: the claim will say so
                event(log, logging.DEBUG, "worker.idle_wait_failed", error=repr(exc))
        if self._rung != rung:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(bell.wait(), wait)

    # -- expansion -----------------------------------------------------------------------------
    async def _expand_loop(self) -> None:
        while not self._stopping:
            rung = self._rung
            try:
                jobs = await asyncio.to_thread(
                    self.outbox.claim_expansions, self.id, limit=200, lease=self.settings.lease
                )
            except Exception as exc:
                event(log, logging.ERROR, "worker.expand_failed", worker=self.id, error=describe_error(exc))
                await self._idle(rung)
                continue
            if not jobs:
                await self._idle(rung)
                continue
            await self._expand_jobs(jobs)
            self._ring()

    async def _expand_jobs(self, jobs: list[ExpansionJob]) -> None:
        """Expand claimed notifications: the small ones together in one transaction, and one by one
        if that raises, so that a poisoned notification fails alone (:meth:`_expand_failed`)."""
        ids = {j.notification_id for j in jobs}
        self._expanding |= ids
        try:
            small = [j for j in jobs if not j.recipients.all]
            if len(small) > 1:
                try:
                    self._completed(await asyncio.to_thread(self._expand_small, small))
                    small = []
                except Exception as exc:
                    event(log, logging.WARNING, "worker.expand_batch_failed", worker=self.id,
                          notifications=len(small), error=describe_error(exc),
                          hint="expanding them one by one to isolate the cause")  # fmt: skip
            for job in [*small, *(j for j in jobs if j.recipients.all)]:
                if self._stopping:
                    break
                try:
                    if job.recipients.all:
                        self._completed(await asyncio.to_thread(self._expand, job))
                    else:
                        self._completed(await asyncio.to_thread(self._expand_small, [job]))
                except Exception as exc:
                    await self._expand_failed(job, exc)
                finally:
                    self._expanding.discard(job.notification_id)
        finally:
            self._expanding -= ids

    async def _expand_failed(self, job: ExpansionJob, exc: Exception) -> None:
        """One notification's expansion raised. A database that is away is tried again once the
        lease runs out (no longer renewed); anything else is the notification's own fault: it
        fails alone, with the reason recorded (e.g. a value the database refuses)."""
        reason = describe_error(exc)
        if is_transient(exc):
            event(log, logging.ERROR, "notification.expand_deferred", id=job.notification_id, app=job.app,
                  error=reason, hint="the database failed; tried again when the lease runs out")  # fmt: skip
            return
        event(log, logging.ERROR, "notification.expand_failed", id=job.notification_id, app=job.app,
              error=reason)  # fmt: skip
        if self.metrics is not None:
            self.metrics.expansions_failed.labels(job.app).inc()
        try:
            self._completed(
                await asyncio.to_thread(self.outbox.fail_expansion, job.notification_id, self.id, reason)
            )
        except Exception as again:  # not renewed: claimed again within one lease
            event(log, logging.ERROR, "notification.fail_expansion_failed", id=job.notification_id,
                  error=describe_error(again))  # fmt: skip

    def _expand(self, job: ExpansionJob) -> list[str]:
        exp = self.audience.expand(job, chunk=self.settings.expand_chunk)
        total, before = 0, job.cursor
        for devices, cursor in exp.chunks:
            schedule = self._schedule(job, devices)
            rest = devices
            while True:
                # as much as our loops have room for, leased; when they have room for some but not
                # all of the chunk, that much first and the rest once they have room again. The
                # cursor moves with the last part only: a crash in between reads the chunk again
                # (what is already there is skipped)
                handoff = self._handoff(len(rest))
                part = rest
                if handoff is not None and min(len(rest), self.settings.chunk) <= handoff.room < len(rest):
                    part = rest[: handoff.room]
                last = len(part) == len(rest)
                n = self.outbox.add_deliveries(
                    job.notification_id,
                    part,
                    cursor=cursor if last else before,
                    worker_id=self.id,
                    lease=self.settings.lease,
                    schedule=schedule,
                    handoff=handoff,
                )
                if n < 0:  # cancelled, or our lease went to another worker
                    return []
                total += n
                self._hand_over(handoff)
                self.wake()
                if last:
                    break
                rest = rest[len(part) :]
            before = cursor
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
        return done

    def _expand_small(self, jobs: list[ExpansionJob]) -> list[str]:
        """Explicit recipient lists are bounded by the request size: resolve them in memory and
        commit many notifications in one transaction."""
        batch = []
        schedules: dict[str, dict[str, datetime]] = {}
        for job, exp in zip(
            jobs, self.audience.expand_many(jobs, chunk=self.settings.expand_chunk), strict=True
        ):
            devices = [d for chunk, _ in exp.chunks for d in chunk]
            batch.append((job.notification_id, devices, exp.warnings, exp.errors))
            schedule = self._schedule(job, devices)
            if schedule:
                schedules[job.notification_id] = schedule
        handoff = self._handoff(sum(len(devices) for _nid, devices, _w, _e in batch))
        done = self.outbox.expand_many(self.id, batch, schedules or None, handoff=handoff)
        self._hand_over(handoff)
        self.wake()
        event(log, logging.DEBUG, "notifications.expanded", count=len(batch))
        return done

    def _handoff(self, wanted: int) -> Handoff | None:
        """How many of the ``wanted`` deliveries the expansion (in its thread) inserts leased to us,
        handed straight to the delivery loops: that saves a claim, a second row version of each.

        At most the loops' free capacity (``concurrency x chunk`` less what they hold or have been
        handed), so that what a worker holds is never more than with claims: no delivery waits
        here behind a busy loop, out of other workers' reach. The rest is inserted ``pending``, for
        any worker to claim. While no other worker is alive, the expansion first waits (a while at
        most) for room for a chunk: inserting ahead of our own sending would only make rows that we
        claim later. With other workers it does not wait: what it cannot hand over is their share."""
        if wanted <= 0:
            return None
        need = min(wanted, self.settings.chunk)

        def enough() -> bool:
            return self._room() >= need or self._stopping

        # a while at most: a stuck provider must not hold up the expansion for good; and asking
        # again every half second whether we are alone, so that a worker started meanwhile gets
        # its share at once
        deadline = time.monotonic() + self.settings.lease / 10
        while (
            self._delivering and not enough() and (left := deadline - time.monotonic()) > 0 and self._alone()
        ):
            with self._handed_cond:
                self._handed_cond.wait_for(enough, min(left, 0.5))
        if self._stopping:
            return None
        return Handoff(max(0, self._room()), self.settings.lease)

    def _room(self) -> int:
        """Deliveries the loops could take now (read from the expansion's thread: a glance)."""
        return self.settings.concurrency * self.settings.chunk - len(self._held) - self._handed_rows

    def _alone(self) -> bool:
        """No other worker has beaten its heart within a lease (so none would claim our rows)."""
        try:
            return self.outbox.live_workers(self.settings.lease) <= 1
        except Exception as exc:  # the insert that follows will say more: do not wait
            event(log, logging.DEBUG, "worker.live_workers_failed", error=repr(exc))
            return False

    def _hand_over(self, handoff: Handoff | None) -> None:
        """Queue what the expansion inserted leased to us, in chunks, for the delivery loops."""
        if handoff is None or not handoff.taken:
            return
        size = self.settings.chunk
        with self._handed_cond:
            for i in range(0, len(handoff.taken), size):
                self._handed.append(handoff.taken[i : i + size])
            self._handed_rows += len(handoff.taken)

    def _next_handed(self) -> list[ClaimedDelivery]:
        """A chunk the expansion leased to us, or ``[]``: it goes before any claim."""
        with self._handed_cond:
            if not self._handed:
                return []
            chunk = self._handed.popleft()
            self._handed_rows -= len(chunk)
            return chunk

    def _room_freed(self) -> None:
        """A loop is done with its chunk: an expansion waiting for room may go on."""
        with self._handed_cond:
            self._handed_cond.notify_all()

    def _schedule(self, job: ExpansionJob, devices: list[DeviceRef]) -> dict[str, datetime] | None:
        """``{token: when}`` for the devices that must wait for their local time: the job's
        ``deliver_at_local``, then the app's quiet hours unless the notification is urgent."""
        local = parse_local_time(job.deliver_at_local, "deliver_at_local") if job.deliver_at_local else None
        quiet = None if job.urgent else self.audience.quiet_hours(job.app)
        if (local is None and quiet is None) or not devices:
            return None
        zones = self.audience.time_zones(job.app, [token for _p, token, _e, _m in devices])
        now = utcnow()
        out: dict[str, datetime] = {}
        for _platform, token, _env, _email in devices:
            when = scheduled_for(now, zones.get(token), deliver_at_local=local, quiet_hours=quiet)
            if when is not None:
                out[token] = when
        return out

    def _completed(self, ids: list[str]) -> None:
        """Notifications just completed: their webhook events were written with the completion."""
        if not ids:
            return
        event(log, logging.DEBUG, "notifications.completed", count=len(ids))
        if self.webhooks is not None:
            self.webhooks.wake()

    async def _sweep_loop(self) -> None:
        while not self._stopping:
            try:
                self._completed(await asyncio.to_thread(self.outbox.sweep))
                await self._complete_stragglers()
                await self._remind_paused()
                self.attempts.flush()
                await self._report_overdue()
            except Exception as exc:
                event(log, logging.ERROR, "worker.sweep_failed", worker=self.id, error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), self.settings.sweep_every)

    async def _complete_stragglers(self) -> None:
        """The safety net of the completion race: should a notification be left ``sending`` with
        every delivery final, complete it now, and say so (it means a bug)."""
        swept = await asyncio.to_thread(self.outbox.complete_stragglers)
        if swept:
            event(
                log, logging.WARNING, "notifications.completed_by_sweeper", count=len(swept), first=swept[0]
            )
            if self.metrics is not None:
                self.metrics.completions_swept.inc(len(swept))
            self._completed(swept)

    async def _report_overdue(self) -> None:
        """Deliveries due for a while that no worker has claimed: workers missing, stuck, or not
        keeping up. Said once per report window, per app."""
        now = time.monotonic()
        if now - self._overdue_said < self.settings.report_window:
            return
        self._overdue_said = now
        for late in await asyncio.to_thread(self.outbox.overdue, self.settings.overdue_after):
            event(log, logging.WARNING, "deliveries.overdue", app=late.app, count=late.count,
                  oldest_due=late.oldest_due.isoformat(timespec="seconds") + "Z",
                  hint="due but not claimed: are workers running and keeping up? "
                  "see pushrelay_queue_depth")  # fmt: skip

    async def _remind_paused(self) -> None:
        """A paused app is an outage the operator must act on: say so again every few minutes
        (the start of the service and the pause itself have said it already)."""
        now = time.monotonic()
        for pause in await asyncio.to_thread(self.outbox.paused_apps):
            said = self._reminded.setdefault(pause.app, now)
            if now - said >= self.settings.paused_reminder:
                self._reminded[pause.app] = now
                event(log, logging.ERROR, "app.still_paused", app=pause.app, reason=pause.reason,
                      since=pause.paused_at.isoformat(timespec="seconds") + "Z",
                      hint=f"fix the configuration, then run: pushrelay apps resume {pause.app}")  # fmt: skip

    # -- delivery ------------------------------------------------------------------------------
    async def _deliver_loop(self, index: int) -> None:
        while True:
            rung = self._rung
            # what the expansion leased to us first; at shutdown too: it is ours already
            claimed = self._next_handed()
            if self._stopping and not claimed:
                break
            if not claimed:
                try:
                    claimed = await asyncio.to_thread(
                        self.outbox.claim, self.id, limit=self.settings.chunk, lease=self.settings.lease
                    )
                except Exception as exc:
                    event(log, logging.ERROR, "worker.claim_failed", worker=self.id, error=repr(exc))
                    await asyncio.sleep(1.0)
                    continue
            if not claimed:
                await self._idle(rung)
                continue
            if len(claimed) == self.settings.chunk or self._handed:
                self._ring()  # more is waiting: let an idle sibling loop claim too
            try:
                await self._deliver(claimed, datetime.now(UTC))
            except Exception as exc:  # the database failed us mid-chunk: the leases, no longer
                # renewed, run out, and another claim (ours or another worker's) sends what was
                # not recorded
                event(log, logging.ERROR, "worker.deliver_failed", worker=self.id, error=repr(exc))
                await asyncio.sleep(1.0)

    async def _deliver(self, claimed: list[ClaimedDelivery], sent_at: datetime) -> None:
        """Send and record a claimed chunk; its leases are renewed while this runs, not after."""
        ids = {c.id for c in claimed}
        self._held |= ids
        try:
            await self._deliver_chunk(claimed, sent_at)
        finally:
            self._held -= ids
            self._room_freed()

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
                except Exception as exc:  # a payload no release of ours would write: poison, alone
                    self._payloads[nid] = NotificationError(f"unreadable payload: {describe_error(exc)}")
            if len(self._payloads) > 10_000:
                for k in list(self._payloads)[:5_000]:
                    del self._payloads[k]
        return {i: self._payloads[i] for i in ids if i in self._payloads}

    async def _deliver_chunk(self, claimed: list[ClaimedDelivery], sent_at: datetime) -> None:
        notes = await self._notifications({c.notification_id for c in claimed})
        groups: dict[tuple[str, str, str | None], list[ClaimedDelivery]] = {}
        ready: Results = []
        for c in claimed:
            n = notes.get(c.notification_id)
            if isinstance(n, Notification):
                groups.setdefault((c.app, c.platform, c.environment), []).append(c)
            else:
                reason = f"invalid notification: {n}" if n is not None else "notification row is missing"
                ready.append((c, DeliveryResult(c.token, Outcome.PAYLOAD_REJECTED, 0, reason)))
        if ready:
            await self._record(ready, sent_at)
        for app in {app for app, _platform, _env in groups} & self._refused:
            # claimed again, so resumed: the clients that were refused would refuse again
            self._refused.discard(app)
            await self.pool.discard(app)
        await asyncio.gather(*(self._send_group(key, items, notes, sent_at) for key, items in groups.items()))

    async def _send_group(
        self,
        key: tuple[str, str, str | None],
        group: list[ClaimedDelivery],
        notes: dict[str, Notification | NotificationError],
        sent_at: datetime,
    ) -> None:
        app, platform, environment = key
        group = await self._postpone_deferred(app, platform, group)
        if not group:
            return
        by_id = {c.id: c for c in group}
        try:
            client = await self.pool.get(app, platform, environment)
        except UnknownTarget as exc:
            await self._record(
                [(c, DeliveryResult(c.token, Outcome.FAILED, 0, str(exc))) for c in group], sent_at
            )
            return
        except ConfigurationError as exc:  # a key file gone or unreadable: fixing it is the operator's job
            event(log, logging.ERROR, "provider.open_failed", app=app, platform=platform, error=str(exc))
            await self._record(self._credentials_failed(group, exc), sent_at)
            return
        except Exception as exc:  # connection refused at open...
            event(log, logging.ERROR, "provider.open_failed", app=app, platform=platform, error=repr(exc))
            unavailable = [
                (c, DeliveryResult(c.token, Outcome.RETRY, 0, f"provider unavailable: {exc}")) for c in group
            ]
            await self._record(unavailable, sent_at)
            return
        started: dict[int, float] = {}
        buffer: Results = []
        languages = await self._languages(app, group, notes)
        latency = self.metrics.send_latency.labels(app, platform) if self.metrics is not None else None
        clock = time.monotonic

        async def items() -> AsyncIterator[Item]:
            for c in group:
                note = notes[c.notification_id]
                assert isinstance(note, Notification)
                try:
                    lang = languages.get(c.token)
                    mine = for_device(note, app=app, platform=platform, token=c.token, language=lang)
                except Exception as exc:  # this device's rendering is poison: it fails alone, now
                    by_id.pop(c.id, None)
                    reason = f"cannot be rendered: {describe_error(exc)}"
                    buffer.append((c, DeliveryResult(c.token, Outcome.PAYLOAD_REJECTED, 0, reason)))
                    continue
                started[c.id] = clock()
                yield (mine, c.token, c.id, c.apns_id)

        try:
            async for res in client.send_many(items()):
                c = by_id.pop(res.tag, None) if isinstance(res.tag, int) else None
                if c is None:
                    continue
                if latency is not None and (t0 := started.get(c.id)) is not None:
                    latency.observe(clock() - t0)
                buffer.append((c, res))
                if len(buffer) >= self.settings.record_every:
                    await self._record(buffer, sent_at)
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
                await asyncio.shield(self._record(buffer, sent_at))

    async def _languages(
        self, app: str, group: list[ClaimedDelivery], notes: dict[str, Notification | NotificationError]
    ) -> Mapping[str, str]:
        """The devices' languages, read (one query per chunk) only for localised notifications."""
        tokens = [
            c.token
            for c in group
            if isinstance(n := notes.get(c.notification_id), Notification) and n.localizations
        ]
        if not tokens:
            return {}
        try:
            return await asyncio.to_thread(self.audience.languages, app, tokens)
        except Exception as exc:  # the registry unreachable: the notification's own text, not no push
            event(log, logging.WARNING, "worker.languages_failed", app=app, error=repr(exc))
            return {}

    def _credentials_failed(self, group: list[ClaimedDelivery], exc: ConfigurationError) -> Results:
        """What the deliveries of a provider that cannot be opened become: the app is paused."""
        return [(c, DeliveryResult(c.token, Outcome.CONFIG_BROKEN, 0, f"credentials: {exc}")) for c in group]

    async def _postpone_deferred(
        self, app: str, platform: str, group: list[ClaimedDelivery]
    ) -> list[ClaimedDelivery]:
        """Put back, uncounted, the deliveries whose target a provider asked to leave alone until
        later (told to this or another process); returns the others."""
        if self.deferrals is None:
            return group
        try:
            found = await asyncio.to_thread(self.deferrals.active, app, platform, [c.token for c in group])
        except Exception as exc:  # the shared state is an optimisation of politeness: send anyway
            event(log, logging.WARNING, "deferrals.read_failed", app=app, error=repr(exc))
            return group
        if not found:
            return group
        later = [(c, found[c.token].until) for c in group if c.token in found]
        await asyncio.to_thread(self.outbox.postpone, self.id, later)
        return [c for c in group if c.token not in found]

    async def _record(self, results: Results, sent_at: datetime) -> None:
        broken = [(c, res) for c, res in results if res.outcome is Outcome.CONFIG_BROKEN]
        if broken:
            await self._pause(broken)
        if self.deferrals is not None:
            deferred = [(c, d) for c, res in results if (d := deferral_for(res)) is not None]
            for c, (until, status, reason) in deferred:
                try:
                    await asyncio.to_thread(
                        self.deferrals.defer, c.app, c.platform, c.token, until, status=status, reason=reason
                    )
                except Exception as exc:
                    event(log, logging.WARNING, "deferrals.write_failed", app=c.app, error=repr(exc))
        recorded = await asyncio.to_thread(self._store, results)
        self.recorded += len(results) - recorded.lost
        if recorded.lost:
            self._lease_lost(results, recorded.lost)
        dead: dict[str, list[tuple[ClaimedDelivery, DeliveryResult]]] = {}
        # counted per label set, then added once each: a labels() lookup per result was most of
        # the metrics' cost per delivery (the counters end with the same values)
        tally: dict[tuple[str, str, Outcome, str], int] = {}
        result = self.attempts.result
        for c, res in results:
            result(c.app, c.platform, res)
            outcome = res.outcome
            reason = res.reason or (str(res.status) if outcome is Outcome.RETRY else "")
            key = (c.app, c.platform, outcome, reason)
            tally[key] = tally.get(key, 0) + 1
            if outcome is Outcome.TOKEN_DEAD:
                dead.setdefault(c.app, []).append((c, res))
        if self.metrics is not None:
            for (app, platform, outcome, reason), n in tally.items():
                if outcome is Outcome.RETRY:
                    self.metrics.retries.labels(app, platform, reason).inc(n)
                else:
                    self.metrics.deliveries.labels(app, platform, outcome.value, reason).inc(n)
        for app, items in dead.items():
            await self._retire(app, items, sent_at)
        self._completed(recorded.completed)

    def _store(self, results: Results) -> Recorded:
        """``Outbox.record`` for a batch; if the batch raises, one by one, so that one answer the
        database refuses (a provider's reason with a NUL byte, on PostgreSQL) does not leave the
        whole chunk unrecorded, to be sent again and again. That answer is stored without the
        text at fault. A database that is away raises (the leases run out, the chunk is resent)."""
        try:
            return self.outbox.record(self.id, results, park_broken=self.park_broken)
        except Exception as exc:
            if is_transient(exc):
                raise
            event(log, logging.WARNING, "worker.record_batch_failed", worker=self.id, results=len(results),
                  error=describe_error(exc), hint="recording them one by one to isolate the cause")  # fmt: skip
        completed: list[str] = []
        lost = 0
        for c, res in results:
            try:
                one = self.outbox.record(self.id, [(c, res)], park_broken=self.park_broken)
            except Exception as exc:
                if is_transient(exc):
                    raise
                why = describe_error(exc)
                event(log, logging.ERROR, "delivery.record_failed", app=c.app, platform=c.platform,
                      delivery=c.id, outcome=res.outcome.value, error=why)  # fmt: skip
                safe = DeliveryResult(
                    c.token, res.outcome, res.status, f"answer not recordable as given: {why}"
                )
                one = self.outbox.record(self.id, [(c, safe)], park_broken=self.park_broken)
            completed += one.completed
            lost += one.lost
        return Recorded(completed, lost)

    def _lease_lost(self, results: Results, lost: int) -> None:
        """Results that arrived after our lease went to another worker: that worker sends and
        records them again (the device may get this one twice). Never silent."""
        apps = sorted({c.app for c, _ in results})
        event(log, logging.WARNING, "worker.lease_lost", worker=self.id, results=lost, apps=",".join(apps),
              hint="a chunk outlived its lease (worker_lease); another worker took it over")  # fmt: skip
        if self.metrics is not None:
            self.metrics.lease_lost.inc(lost)

    async def _pause(self, broken: Results) -> None:
        """Pause each app a provider refused (before its deliveries are parked by ``record``)."""
        first: dict[str, tuple[ClaimedDelivery, DeliveryResult]] = {}
        for c, res in broken:
            first.setdefault(c.app, (c, res))
        for app, (c, res) in first.items():
            self._refused.add(app)
            reason = f"{res.status} {res.reason}" if res.status else str(res.reason or "config_broken")
            created = await asyncio.to_thread(
                self.outbox.pause,
                app,
                reason,
                platform=c.platform,
                by=self.id,
                fingerprint=self.fingerprint(app),
            )
            if not created:
                continue
            self._reminded[app] = time.monotonic()
            event(log, logging.ERROR, "app.paused", app=app, platform=c.platform, reason=reason,
                  hint=f"deliveries are kept; fix the configuration, then run: pushrelay apps resume {app}")  # fmt: skip
            if self.webhooks is not None:
                data = {"platform": c.platform, "reason": reason}
                await asyncio.to_thread(self.webhooks.emit, app, "app.paused", data)

    async def _retire(self, app: str, items: Results, sent_at: datetime) -> set[str]:
        """Retire the devices a provider called dead, log and count it, and tell the app's
        webhook (``token.retired``). Returns the tokens retired."""
        try:
            retired = set(
                await asyncio.to_thread(
                    self.audience.retire, app, [res for _c, res in items], sent_at=sent_at
                )
            )
        except Exception as exc:
            event(log, logging.ERROR, "device.retire_failed", app=app, devices=len(items), error=repr(exc))
            return set()
        events = []
        for c, res in items:
            if res.token not in retired:
                continue
            reason = res.reason or "token_dead"
            event(
                log,
                logging.INFO,
                "device.retired",
                app=app,
                platform=c.platform,
                token=c.token,
                reason=reason,
            )
            if self.metrics is not None:
                self.metrics.tokens_retired.labels(app, reason).inc()
            events.append(
                {
                    "platform": c.platform,
                    "token": c.token,
                    "reason": reason,
                    "notification_id": c.notification_id,
                }
            )
        if events and self.webhooks is not None:
            await asyncio.to_thread(self.webhooks.emit_many, app, "token.retired", events)
        return retired
