"""Delivery in the calling process, through the worker's own code: ``PushNotification.send()`` and
``pushrelay send``.

The notification is committed to the outbox first, with its surface (``library`` or ``cli``), so
that it leaves the same record as one sent through the API. Then :class:`InlineWorker` does what a
worker of ``pushrelay serve`` does, for that notification only: it expands the recipients with the
registry (the same rules), claims the deliveries under a lease, sends them through the same
providers (:mod:`pushrelay.providers`) and records every outcome with ``Outbox.record``. A process
that dies midway leaves leased deliveries that a service worker picks up when the lease runs out.

What differs from the service is what a one-shot call can do about problems:

- retries follow the outbox's policy (backoff, the provider's Retry-After as a floor), waited for
  only while the call's ``timeout`` allows; a target under a Retry-After (told to this process or
  another one, see :mod:`pushrelay.providers.state`) is not contacted before it. What is still
  open when the call ends is recorded ``expired`` with the reason and the time it was due, and
  reported so (:meth:`InlineWorker.deferred`);
- a provider that refuses the app's credentials fails those deliveries (``config_broken``) and
  the call reports the error; the app is not paused for the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from .._exceptions import ConfigurationError
from ..outcome import DeliveryResult, Outcome
from ..queue.interface import ClaimedDelivery, NotificationStatus
from .attempt_log import AttemptLog
from .runner import Results, Worker, log

__all__ = ["TERMINAL", "InlineWorker", "open_count"]

TERMINAL = ("completed", "cancelled")
_OPEN = ("pending", "in_flight", "paused")


def open_count(status: NotificationStatus) -> int:
    """Deliveries of ``status`` without a final outcome yet."""
    return sum(status.counts.get(state, 0) for state in _OPEN)


class InlineWorker(Worker):
    """A :class:`Worker` that serves one notification at a time, in the caller's event loop."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault(
            "worker_id", f"inline-{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.park_broken = False
        self.errors: list[str] = []  # configuration problems met, for the caller's result
        self.retired: set[str] = set()  # tokens whose device this call retired
        # the call's result names every failed delivery: its attempts log at debug level only
        self.attempts = AttemptLog(log, window=self.settings.report_window, quiet=True)
        self.webhook_wait = 5.0  # seconds a call may spend posting the webhook events it wrote

    async def deliver(
        self,
        notification_id: str,
        *,
        timeout: float,  # noqa: ASYNC109 - a budget for the retries of one call, not a cancel scope
        progress: Callable[[NotificationStatus], None] | None = None,
    ) -> NotificationStatus | None:
        """Deliver ``notification_id`` until every delivery is final or ``timeout`` seconds have
        passed; then end what is still open (see the module docstring). Returns the last status
        (None for an unknown id)."""
        deadline = time.monotonic() + timeout
        # the service's heartbeat: a send longer than one lease keeps it while this process lives
        beat = asyncio.create_task(self._heartbeat_loop(), name="inline-heartbeat")
        try:
            return await self._deliver_one(notification_id, deadline, progress)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beat
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.outbox.forget_worker, self.id)
            if self.webhooks is not None:  # the token.retired events this call wrote
                with contextlib.suppress(Exception):
                    await self.webhooks.send_pending(self.webhook_wait)

    async def _deliver_one(
        self,
        notification_id: str,
        deadline: float,
        progress: Callable[[NotificationStatus], None] | None,
    ) -> NotificationStatus | None:
        lease = self.settings.lease
        while True:
            jobs = await asyncio.to_thread(
                self.outbox.claim_expansions, self.id, limit=1, lease=lease, notification_id=notification_id
            )
            if jobs:
                await self._expand_jobs(jobs)
            # what the expansion inserted leased to us first (see Worker._handoff), then a claim
            claimed = self._next_handed() or await asyncio.to_thread(
                self.outbox.claim,
                self.id,
                limit=self.settings.chunk,
                lease=lease,
                notification_id=notification_id,
            )
            if claimed:
                await self._deliver(claimed, datetime.now(UTC))
            status = await asyncio.to_thread(self.outbox.status, notification_id)
            if status is None or status.state in TERMINAL:
                return status
            if progress is not None:
                progress(status)
            if claimed or jobs:
                continue
            if status.counts.get("paused", 0) == open_count(status):
                # parked: the service paused the app (its credentials were refused); resuming it
                # is an operator's decision, waiting here would change nothing
                text = f"the app is paused: its deliveries wait for 'pushrelay apps resume {status.app}'"
                if text not in self.errors:
                    self.errors.append(text)
                return status
            # nothing due now: wait for the next retry, or for a service worker that holds a lease
            due = await asyncio.to_thread(self.outbox.next_due, notification_id)
            wait = 0.05 if due is None else max(0.0, (due - datetime.now(UTC)).total_seconds())
            if wait >= deadline - time.monotonic():
                return await self._give_up(notification_id, status)
            await asyncio.sleep(max(wait, 0.01))

    async def _give_up(self, notification_id: str, status: NotificationStatus) -> NotificationStatus | None:
        if status.counts.get("pending", 0) == 0:
            return status  # in flight with a service worker: it records them
        reason = "not sent before the call's timeout"
        done = await asyncio.to_thread(self.outbox.abandon, notification_id, reason)
        self._completed(done)
        return await asyncio.to_thread(self.outbox.status, notification_id)

    # -- what a one-shot call does differently --------------------------------------------------
    def _credentials_failed(self, group: list[ClaimedDelivery], exc: ConfigurationError) -> Results:
        if str(exc) not in self.errors:
            self.errors.append(str(exc))
        return [(c, DeliveryResult(c.token, Outcome.FAILED, 0, str(exc))) for c in group]

    async def _pause(self, broken: Results) -> None:
        """The call reports the refusal; pausing the app is the service's decision."""
        for _c, res in broken:
            text = f"the provider refused the credentials: {res.status} {res.reason}"
            if text not in self.errors:
                self.errors.append(text)

    async def _retire(self, app: str, items: Results, sent_at: datetime) -> set[str]:
        """The service's code (log, metric, ``token.retired`` webhook); the call reports them too."""
        retired = await super()._retire(app, items, sent_at)
        self.retired.update(retired)
        return retired
