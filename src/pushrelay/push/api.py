"""``PushNotification`` and ``AsyncPushNotification``: 4D's push API, in Python.

    from pushrelay import PushNotification
    push = PushNotification("myapp")
    result = push.send({"title": "This is title", "body": "..."}, "test@4d.com")
    result.success, result.warnings, result.errors, result.deliveries

Each call commits the notification and its deliveries to the outbox (the record ``GET
/v1/notifications`` and ``pushrelay notifications list`` show, surface ``library``), then delivers
them in this process through the worker's own code (:class:`~pushrelay.worker.inline.InlineWorker`:
the registry's recipient rules, the providers of :mod:`pushrelay.providers` with the provider state
shared by every process, the outbox's retry policy), and returns a :class:`PushResult` once every
device has a final outcome or ``timeout`` has passed. ``AsyncPushNotification`` is the same with
``await``; used as ``async with``, it also keeps its provider connections open between calls.

The sync class runs each call on a private event loop (in a worker thread when the calling thread
already runs one, e.g. inside an async web handler or a notebook).

``enqueue()`` / ``enqueue_all()`` are the durable mode: they commit the notification to the
service's outbox and return its id; ``wait(id)`` returns the same :class:`PushResult` once the
workers are done (see :mod:`.outbox`).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from datetime import time as wall_time
from typing import Any, TypeVar

from .._exceptions import NotificationError
from ..config.loader import load_config
from ..config.model import AppConfig, Config
from ..fourd.recipients import Recipients, parse_recipients
from ..notification import Notification
from ..providers.base import ProviderFactory, ProviderPool
from ..providers.build import Platforms, builder_for
from ..providers.payload_check import check_payloads
from ..queue.interface import NotificationStatus
from ..queue.sql import SqlOutbox
from ..registry.devices import DeviceRegistry
from ..webhooks.dispatcher import WebhookDispatcher, WebhookTarget
from ..webhooks.store import WebhookEventStore
from ..worker.inline import InlineWorker, open_count
from ..worker.registry_audience import RegistryAudience
from .apps import resolve_app
from .deeplink import MISSING, deep_link_user_info
from .outbox import TERMINAL, build_request, inline_request, result_from, shared_outbox
from .result import PushResult, messages

__all__ = ["AsyncPushNotification", "Progress", "PushNotification"]

T = TypeVar("T")

Progress = Callable[[int, int], None]
"""Called after each delivery with ``(done, total)``."""

NotificationLike = Notification | Mapping[str, Any]

DEFAULT_TIMEOUT = 30.0
"""Seconds a send waits for final outcomes (retries included) before it returns."""


# -- registries shared per database URL ----------------------------------------------------------
_registries: dict[str, DeviceRegistry] = {}
_registries_lock = threading.Lock()


def _shared_registry(url: str) -> DeviceRegistry:
    """One registry (engine, connection pool, migration check) per database URL and process, so that
    creating a PushNotification per send, as 4D code does, stays cheap."""
    with _registries_lock:
        registry = _registries.get(url)
        if registry is None:
            registry = _registries[url] = DeviceRegistry(url)
        return registry


@atexit.register
def _close_shared_registries() -> None:
    with _registries_lock:
        for registry in _registries.values():
            registry.close()
        _registries.clear()


def _as_notification(notification: NotificationLike) -> Notification:
    if isinstance(notification, Notification):
        return notification
    return Notification.from_dict(notification)


class AsyncPushNotification:
    """Send notifications to an app's users; see the module docstring.

    ``app``: app name, bundle id, ``TEAMID.bundle.id``, 4D short name, ``"ios"``/``"android"``
    (the only app, that platform), a 4D auth object, or an :class:`AppConfig`; ``None`` for the only
    configured app. ``targets``: ``"ios"``, ``"android"``, ``"web"`` or a list (default: all).
    ``config``: a loaded :class:`Config` (default: :func:`load_config`). ``registry`` or
    ``database_url``: where devices are (default: the configuration's database).
    ``providers``: replaces the platform → provider factory table of
    :class:`~pushrelay.providers.build.Platforms` (tests, custom providers). ``surface``: how the
    sends are recorded (``library``; ``pushrelay send`` says ``cli``).
    """

    def __init__(
        self,
        app: str | Mapping[str, Any] | AppConfig | None = None,
        targets: str | Sequence[str] | None = None,
        *,
        config: Config | None = None,
        registry: DeviceRegistry | None = None,
        database_url: str | None = None,
        providers: Mapping[str, ProviderFactory] | None = None,
        surface: str = "library",
    ) -> None:
        self.config = config if config is not None else load_config()
        self.app, self.targets = resolve_app(app, targets, self.config)
        self._registry = registry
        self._database_url = database_url or self.config.database.url
        self._providers = providers
        self.surface = surface
        self._worker: InlineWorker | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app={self.app.name!r}, targets={list(self.targets)})"

    @property
    def registry(self) -> DeviceRegistry:
        if self._registry is None:
            self._registry = _shared_registry(self._database_url)
        return self._registry

    # -- lifecycle: optional, keeps connections between calls -----------------------------------
    async def __aenter__(self) -> AsyncPushNotification:
        self._worker = self._inline_worker()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.pool.close()

    def _inline_worker(self) -> InlineWorker:
        registry = self.registry
        table = self._providers
        if table is None:
            builder = builder_for(registry.db.engine)
            # one connection per environment: a call's batch, not a service's stream
            table = Platforms(
                {self.app.name: self.app}, builder, registry.subscription_keys, apns_connections=1
            ).table
        app = self.app
        hooks = None
        outbox = self._outbox()
        if app.webhook_url:  # token.retired and notification.completed, as the service writes them
            target = WebhookTarget(app.webhook_url, app.webhook_secret or "")
            hooks = WebhookDispatcher({app.name: target}, WebhookEventStore(registry.db.engine))
            outbox.event_apps = frozenset(outbox.event_apps) | {app.name}
        return InlineWorker(
            outbox,
            ProviderPool(dict(table)),
            RegistryAudience(registry, lambda _name: app),
            deferrals=builder_for(registry.db.engine).deferrals,
            webhooks=hooks,
        )

    # -- the 4D API -----------------------------------------------------------------------------
    async def send(
        self,
        notification: NotificationLike,
        recipients: Any = None,
        *,
        progress: Progress | None = None,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the 4D-style call waits for outcomes
    ) -> PushResult:
        """Send to e-mail addresses and/or device tokens (see :mod:`pushrelay.fourd.recipients`)."""
        n = self._checked(notification)
        if recipients is None:
            return PushResult(errors=[messages.NO_RECIPIENT_GIVEN])
        parsed = parse_recipients(recipients)
        if parsed.empty:
            return PushResult(errors=[messages.BOTH_EMPTY])
        return await self._send(n, parsed, progress, timeout)

    async def send_all(
        self,
        notification: NotificationLike,
        *,
        progress: Progress | None = None,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    ) -> PushResult:
        """Send to every active device of the app (on the targets), streamed from the registry."""
        return await self._send(self._checked(notification), None, progress, timeout)

    async def open(
        self,
        target: Any,
        notification: NotificationLike,
        recipients: Any = None,
        *,
        primary_key: Any = MISSING,
        progress: Progress | None = None,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    ) -> PushResult:
        """Send a notification that opens ``target`` in the app: a dataClass name, a
        ``(dataClass, primaryKey)`` pair, or ``{"dataClass", "entity": {"primaryKey"}}``."""
        n = _as_notification(notification)
        info = deep_link_user_info(target, n.user_info, primary_key)
        if isinstance(info, str):
            return PushResult(errors=[info])
        return await self.send(n.replace(user_info=info), recipients, progress=progress, timeout=timeout)

    sendAll = send_all

    # -- the durable mode: the service's workers deliver (see pushrelay.push.outbox) ----------------
    async def enqueue(
        self,
        notification: NotificationLike,
        recipients: Any = None,
        *,
        send_at: datetime | None = None,
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
        deliver_at_local: str | wall_time | None = None,
        urgent: bool | None = None,
    ) -> str:
        """Commit the notification to the outbox and return its id; the workers of ``pushrelay
        serve`` (or ``pushrelay worker``) deliver it. Recipients as for :meth:`send`.
        ``deliver_at_local="09:00"``: each device at 09:00 in its own time zone; ``urgent``: not
        held by the app's quiet hours (default: for time-sensitive and critical interruptions)."""
        if recipients is None:
            raise NotificationError(messages.NO_RECIPIENT_GIVEN, field="recipients")
        parsed = parse_recipients(recipients)
        return await self._enqueue(
            notification, parsed, send_at, expires_at, idempotency_key, deliver_at_local, urgent
        )

    async def enqueue_all(
        self,
        notification: NotificationLike,
        *,
        send_at: datetime | None = None,
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
        deliver_at_local: str | wall_time | None = None,
        urgent: bool | None = None,
    ) -> str:
        """:meth:`enqueue` to every active device of the app (on the targets)."""
        return await self._enqueue(
            notification, None, send_at, expires_at, idempotency_key, deliver_at_local, urgent
        )

    async def _enqueue(
        self,
        notification: NotificationLike,
        recipients: Recipients | None,
        send_at: datetime | None,
        expires_at: datetime | None,
        idempotency_key: str | None,
        deliver_at_local: str | wall_time | None = None,
        urgent: bool | None = None,
    ) -> str:
        request = build_request(
            self.app,
            self.config,
            self._checked(notification),
            recipients,
            targets=self.targets,
            send_at=send_at,
            expires_at=expires_at,
            idempotency_key=idempotency_key,
            deliver_at_local=deliver_at_local,
            urgent=urgent,
        )
        return (await asyncio.to_thread(self._outbox().enqueue, request)).id

    async def status(self, notification_id: str) -> NotificationStatus | None:
        """Where an enqueued notification stands (state, counts per outcome, warnings, errors)."""
        return await asyncio.to_thread(self._outbox().status, notification_id)

    async def cancel(self, notification_id: str) -> NotificationStatus | None:
        """Cancel what is not delivered yet of an enqueued notification."""
        return await asyncio.to_thread(self._outbox().cancel, notification_id)

    async def wait(self, notification_id: str, timeout: float = 30.0) -> PushResult:  # noqa: ASYNC109 - the blocking twin's signature
        """Wait until an enqueued notification is completed (or cancelled) and return its result,
        as :meth:`send` would have. Raises :class:`TimeoutError` if it is not done in time (it
        goes on in the service), :class:`LookupError` for an unknown id."""
        outbox = self._outbox()
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            status = await asyncio.to_thread(outbox.status, notification_id)
            if status is None:
                raise LookupError(f"no notification with id {notification_id} in {self.config.database}")
            if status.state in TERMINAL:
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"notification {notification_id} is still {status.state} after {timeout} s "
                    f"({status.counts}); is a worker (pushrelay serve / pushrelay worker) running?"
                )
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)
        deliveries: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await asyncio.to_thread(outbox.deliveries, notification_id, limit=1000, after=after)
            deliveries += page
            if page.next_cursor is None:
                return result_from(status, deliveries)
            after = page.next_cursor

    def _outbox(self) -> SqlOutbox:
        return shared_outbox(self.registry)

    # -- internals ------------------------------------------------------------------------------
    def _checked(self, notification: NotificationLike) -> Notification:
        """The notification, checked up front so that a bad one raises before anything is sent."""
        n = _as_notification(notification)
        # the same check as the HTTP API's: every reachable platform, every language variant
        check_payloads(n, self.app, self.targets)
        return n

    async def _send(
        self,
        notification: Notification,
        recipients: Recipients | None,
        progress: Progress | None,
        timeout: float,  # noqa: ASYNC109
    ) -> PushResult:
        """Commit, deliver inline through the worker's code, and read the record back."""
        request = inline_request(
            self.app, notification, recipients, targets=self.targets, surface=self.surface
        )
        outbox = self._outbox()
        nid = (await asyncio.to_thread(outbox.enqueue, request)).id
        worker = self._worker or self._inline_worker()
        worker.errors.clear()
        worker.retired.clear()

        def report(status: NotificationStatus) -> None:
            if progress is not None:
                total = status.counts.get("total", 0)
                progress(total - open_count(status), total)

        try:
            status = await worker.deliver(nid, timeout=timeout, progress=report)
        finally:
            if worker is not self._worker:
                await worker.pool.close()
        assert status is not None  # committed above; notifications are not deleted
        report(status)
        result = await self._result(status)
        result.errors.extend(_describe(e, self.app) for e in worker.errors)
        if worker.retired:
            result.deliveries = [
                dataclasses.replace(d, retired=True) if d.token in worker.retired else d
                for d in result.deliveries
            ]
        return result

    async def _result(self, status: NotificationStatus) -> PushResult:
        outbox = self._outbox()
        deliveries: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await asyncio.to_thread(outbox.deliveries, status.id, limit=1000, after=after)
            deliveries += page
            if page.next_cursor is None:
                break
            after = page.next_cursor
        raw = [d["token"] for d in deliveries if d.get("email") is None]
        known = set(await asyncio.to_thread(self.registry.find_tokens, self.app.name, raw)) if raw else set()
        result = result_from(status, deliveries, unregistered=set(raw) - known)
        result.notification_id = status.id
        return result


def _describe(error: str, app: AppConfig) -> str:
    return f"app {app.name}: {error}"


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # This thread already runs an event loop (async web handler, notebook): blocking it with
    # asyncio.run is impossible, so the call gets its own loop in a worker thread.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pushrelay-send") as pool:
        return pool.submit(asyncio.run, coro).result()


class PushNotification:
    """The blocking twin of :class:`AsyncPushNotification` (same arguments, same results)."""

    def __init__(
        self,
        app: str | Mapping[str, Any] | AppConfig | None = None,
        targets: str | Sequence[str] | None = None,
        *,
        config: Config | None = None,
        registry: DeviceRegistry | None = None,
        database_url: str | None = None,
        providers: Mapping[str, ProviderFactory] | None = None,
        surface: str = "library",
    ) -> None:
        self._async = AsyncPushNotification(
            app,
            targets,
            config=config,
            registry=registry,
            database_url=database_url,
            providers=providers,
            surface=surface,
        )

    def __repr__(self) -> str:
        return f"PushNotification(app={self.app.name!r}, targets={list(self.targets)})"

    @property
    def app(self) -> AppConfig:
        return self._async.app

    @property
    def targets(self) -> tuple[str, ...]:
        return self._async.targets

    @property
    def registry(self) -> DeviceRegistry:
        return self._async.registry

    def send(
        self,
        notification: NotificationLike,
        recipients: Any = None,
        *,
        progress: Progress | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> PushResult:
        return _run(self._async.send(notification, recipients, progress=progress, timeout=timeout))

    def send_all(
        self,
        notification: NotificationLike,
        *,
        progress: Progress | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> PushResult:
        return _run(self._async.send_all(notification, progress=progress, timeout=timeout))

    def open(
        self,
        target: Any,
        notification: NotificationLike,
        recipients: Any = None,
        *,
        primary_key: Any = MISSING,
        progress: Progress | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> PushResult:
        return _run(
            self._async.open(
                target, notification, recipients, primary_key=primary_key, progress=progress, timeout=timeout
            )
        )

    def enqueue(
        self,
        notification: NotificationLike,
        recipients: Any = None,
        *,
        send_at: datetime | None = None,
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
        deliver_at_local: str | wall_time | None = None,
        urgent: bool | None = None,
    ) -> str:
        return _run(
            self._async.enqueue(
                notification,
                recipients,
                send_at=send_at,
                expires_at=expires_at,
                idempotency_key=idempotency_key,
                deliver_at_local=deliver_at_local,
                urgent=urgent,
            )
        )

    def enqueue_all(
        self,
        notification: NotificationLike,
        *,
        send_at: datetime | None = None,
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
        deliver_at_local: str | wall_time | None = None,
        urgent: bool | None = None,
    ) -> str:
        return _run(
            self._async.enqueue_all(
                notification,
                send_at=send_at,
                expires_at=expires_at,
                idempotency_key=idempotency_key,
                deliver_at_local=deliver_at_local,
                urgent=urgent,
            )
        )

    def status(self, notification_id: str) -> NotificationStatus | None:
        return _run(self._async.status(notification_id))

    def cancel(self, notification_id: str) -> NotificationStatus | None:
        return _run(self._async.cancel(notification_id))

    def wait(self, notification_id: str, timeout: float = 30.0) -> PushResult:
        return _run(self._async.wait(notification_id, timeout))

    # 4D spelling
    sendAll = send_all
