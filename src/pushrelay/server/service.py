"""Everything one pushrelay service process holds: database, outbox, keys, registry, metrics,
webhooks and (unless API-only) a worker. Built once at start-up (see :mod:`.wiring`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from .._exceptions import ConfigurationError
from ..config.loader import service_env_overrides
from ..config.model import AppConfig, Config, ServiceConfig
from ..db import Database
from ..metrics import Metrics
from ..providers.base import AppProviderPool, ProviderFactory, ProviderPool
from ..providers.state import Deferrals
from ..queue.policy import RetryPolicy
from ..queue.sql import SqlOutbox
from ..queue.wakeup import WorkListener
from ..registry.devices import DeviceRegistry
from ..webhooks.dispatcher import WebhookDispatcher, WebhookSettings, WebhookTarget
from ..webhooks.store import WebhookEventStore
from ..worker.registry_audience import RegistryAudience
from ..worker.runner import Worker, WorkerSettings
from .apikeys import ApiKeyStore
from .pausing import credentials_fingerprint
from .ratelimit import RateLimiter

__all__ = ["Service", "ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    """The service's settings. Sources, first wins: ``PUSHRELAY_<KEY>`` environment variables,
    the ``[service]`` table of ``pushrelay.toml``, these defaults (see docs/configuration.md)."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body: int = 1_048_576  # bytes; 10,000 e-mail addresses fit comfortably
    rate: float = 50.0  # requests per second per API key (token bucket refill)
    burst: int = 200  # bucket size
    # A register-only key is embedded in every copy of the app: one bucket for it would throttle a
    # launch wave of the whole fleet. Such keys are limited per client address instead (a carrier
    # NAT puts hundreds of phones behind one), and each device (app + token) on its own.
    register_rate: float = 20.0  # per client address, requests per second
    register_burst: int = 600  # a NAT's worth of phones opening the app at once
    device_rate: float = 1 / 60  # per device: one registration a minute on average
    device_burst: int = 10  # a few retries and token refreshes in a row
    wait_max: float = 60.0  # upper bound of ?wait=
    # ``pushrelay serve`` delivers from this many child processes, so that delivery never shares a
    # GIL or an event loop with the API (see :mod:`.worker_processes`); 0: in the API's process
    worker_processes: int = 1
    # their scheduling priority below the API's: where the cores are short, the kernel runs the
    # API's requests first and delivery takes what is left (it catches up: nothing is lost)
    worker_nice: int = 10
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    @classmethod
    def from_config(cls, service: ServiceConfig | None = None) -> ServiceSettings:
        """The defaults, overridden by what ``service`` (``config.service``) sets."""
        base, given = cls(), (service or ServiceConfig()).given()
        w, wh = base.worker, base.webhooks

        def pick(key: str, default: float) -> float:
            return float(given.get(key, default))

        for low, high, defaults in (
            ("retry_base", "retry_cap", base.retry),
            ("webhook_retry_base", "webhook_retry_cap", base.webhooks.retry),
        ):
            lo, hi = pick(low, defaults.base), pick(high, defaults.cap)
            if lo > hi:  # one of them is the default, else the loader would have said it
                if high in given:
                    key, text = (
                        high,
                        f"service.{high} = {hi} is smaller than service.{low} = {lo} (its default)",
                    )
                else:
                    key, text = (
                        low,
                        f"service.{low} = {lo} is larger than service.{high} = {hi} (its default)",
                    )
                raise ConfigurationError(f"{text}; set both", field=f"service.{key}")

        return cls(
            host=str(given.get("host", base.host)),
            port=int(given.get("port", base.port)),
            max_body=int(given.get("max_body", base.max_body)),
            rate=pick("rate_limit", base.rate),
            burst=int(given.get("rate_burst", base.burst)),
            register_rate=pick("register_rate_limit", base.register_rate),
            register_burst=int(given.get("register_rate_burst", base.register_burst)),
            device_rate=pick("device_rate_limit", base.device_rate),
            device_burst=int(given.get("device_rate_burst", base.device_burst)),
            wait_max=pick("wait_max", base.wait_max),
            worker_processes=int(given.get("worker_processes", base.worker_processes)),
            worker_nice=int(given.get("worker_nice", base.worker_nice)),
            retry=RetryPolicy(
                base=pick("retry_base", base.retry.base), cap=pick("retry_cap", base.retry.cap)
            ),
            worker=WorkerSettings(
                chunk=int(given.get("worker_chunk", w.chunk)),
                lease=pick("worker_lease", w.lease),
                concurrency=int(given.get("worker_concurrency", w.concurrency)),
                poll=pick("worker_poll", w.poll),
                idle_max=pick("worker_idle_max", w.idle_max),
                listen=bool(given.get("worker_listen", w.listen)),
                sweep_every=pick("sweep_every", w.sweep_every),
            ),
            webhooks=WebhookSettings(
                retry=RetryPolicy(
                    base=pick("webhook_retry_base", wh.retry.base),
                    cap=pick("webhook_retry_cap", wh.retry.cap),
                ),
                retention=timedelta(days=pick("webhook_retention_days", wh.retention.days)),
            ),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceSettings:
        """The defaults overridden by ``PUSHRELAY_<KEY>`` variables only (no configuration file)."""
        return cls.from_config(service_env_overrides(ServiceConfig(), os.environ if env is None else env))


class Service:
    def __init__(
        self,
        database: Database,
        *,
        providers: Mapping[str, ProviderFactory],
        apps: Mapping[str, bool] | None = None,
        webhook_targets: Mapping[str, WebhookTarget] | None = None,
        settings: ServiceSettings | None = None,
        with_worker: bool = True,
        provider_metrics: Callable[[ProviderPool], object] | None = None,
    ) -> None:
        """``apps`` maps every configured app to its ``registered_tokens_only`` flag; None accepts any
        app name (used by tests without configuration). :meth:`use_config` adds the rest of each
        app's settings."""
        self.settings = settings or ServiceSettings()
        self.db = database
        self.outbox = SqlOutbox(database.engine, retry=self.settings.retry)
        self.keys = ApiKeyStore(database.engine)
        self.registry = DeviceRegistry(database)
        self.apps = dict(apps) if apps is not None else None
        self.app_configs: dict[str, AppConfig] = {}
        self.fingerprints: dict[str, str] = {}
        self.metrics = Metrics()
        self.metrics.watch_queue(self.outbox.queue_depth)
        self.metrics.watch_pauses(self.outbox.paused_apps, lambda: sorted(self.apps or ()))
        self.limiter = RateLimiter(self.settings.rate, self.settings.burst)
        self.client_limiter = RateLimiter(self.settings.register_rate, self.settings.register_burst)
        self.device_limiter = RateLimiter(self.settings.device_rate, self.settings.device_burst)
        self.webhook_store = WebhookEventStore(database.engine)
        self.metrics.watch_webhooks(self.webhook_store.pending)
        self.webhooks = WebhookDispatcher(
            webhook_targets or {},
            self.webhook_store,
            settings=self.settings.webhooks,
            on_result=lambda app, r: self.metrics.webhooks.labels(app, r).inc(),
            on_dropped=lambda app, n: self.metrics.webhooks_dropped.labels(app).inc(n),
        )
        self.outbox.event_apps = self.webhooks.apps
        self.pool = AppProviderPool(
            dict(providers), on_open=lambda app, p, d: self.metrics.connections.labels(app, p).inc(d)
        )
        self.worker: Worker | None = None
        if with_worker:
            self.worker = Worker(
                self.outbox,
                self.pool,
                RegistryAudience(self.registry, self.app_config),
                settings=self.settings.worker,
                metrics=self.metrics,
                webhooks=self.webhooks,
                fingerprint=self.fingerprints.get,
                deferrals=Deferrals(database.engine),
            )
            if self.settings.worker.listen:  # PostgreSQL only: None on SQLite
                self.worker.listener = WorkListener.for_engine(database.engine, name=self.worker.id)
        self.credentials_loaded = bool(providers)
        # set by ``pushrelay serve`` when its workers run in child processes (see .worker_processes)
        self.worker_wakers: list[Callable[[], None]] = []
        self.worker_metrics: list[Path] = []

    def wake_workers(self) -> None:
        """New work was committed: wake this process's worker and the child workers at once."""
        if self.worker is not None:
            self.worker.wake()
        for wake in self.worker_wakers:
            wake()

    def use_config(self, config: Config) -> None:
        """Take each app's full settings from ``config``: its APNs environment for raw tokens, and a
        fingerprint of its credentials kept with a pause (see :mod:`.pausing`)."""
        self.app_configs = dict(config.apps)
        self.fingerprints.clear()
        self.fingerprints.update({name: credentials_fingerprint(app) for name, app in config.apps.items()})

    def app_config(self, name: str) -> AppConfig:
        """The app's settings; without :meth:`use_config`, only what the constructor was told."""
        found = self.app_configs.get(name)
        if found is not None:
            return found
        return AppConfig(name=name, bundle_id=name, registered_tokens_only=(self.apps or {}).get(name, False))

    def knows_app(self, app: str) -> bool:
        return self.apps is None or app in self.apps

    def close(self) -> None:
        self.db.dispose()
