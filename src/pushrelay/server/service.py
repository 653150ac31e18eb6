"""Everything one pushrelay service process holds: database, outbox, keys, registry, metrics,
webhooks and (unless API-only) a worker. Built once at start-up (see :mod:`.wiring`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .._exceptions import ConfigurationError
from ..db import Database
from ..queue.policy import RetryPolicy
from ..queue.sql import SqlOutbox
from ..registry.devices import DeviceRegistry
from ..webhooks.dispatcher import WebhookDispatcher, WebhookTarget
from ..worker.providers import ProviderFactory, ProviderPool
from ..worker.registry_audience import RegistryAudience
from ..worker.runner import Worker, WorkerSettings
from .apikeys import ApiKeyStore
from .metrics import Metrics
from .ratelimit import RateLimiter

__all__ = ["Service", "ServiceSettings"]


def _env_number(name: str, default: float, *, integer: bool = False) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}", field=name) from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be greater than 0, got {raw!r}", field=name)
    return value


@dataclass(frozen=True)
class ServiceSettings:
    max_body: int = 1_048_576  # bytes; 10,000 e-mail addresses fit comfortably
    rate: float = 50.0  # requests per second per API key (token bucket refill)
    burst: int = 200  # bucket size
    wait_max: float = 60.0  # upper bound of ?wait=
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    @classmethod
    def from_env(cls) -> ServiceSettings:
        """Defaults, overridden by ``PUSHRELAY_*`` environment variables (see docs/operations.md)."""
        return cls(
            max_body=int(_env_number("PUSHRELAY_MAX_BODY", 1_048_576, integer=True)),
            rate=_env_number("PUSHRELAY_RATE_LIMIT", 50.0),
            burst=int(_env_number("PUSHRELAY_RATE_BURST", 200, integer=True)),
            retry=RetryPolicy(
                base=_env_number("PUSHRELAY_RETRY_BASE", 1.0), cap=_env_number("PUSHRELAY_RETRY_CAP", 300.0)
            ),
            worker=WorkerSettings(
                chunk=int(_env_number("PUSHRELAY_WORKER_CHUNK", 500, integer=True)),
                lease=_env_number("PUSHRELAY_WORKER_LEASE", 120.0),
                concurrency=int(_env_number("PUSHRELAY_WORKER_CONCURRENCY", 4, integer=True)),
                poll=_env_number("PUSHRELAY_WORKER_POLL", 0.25),
                sweep_every=_env_number("PUSHRELAY_SWEEP_EVERY", 5.0),
            ),
        )


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
        app name (used by tests without configuration)."""
        self.settings = settings or ServiceSettings()
        self.db = database
        self.outbox = SqlOutbox(database.engine, retry=self.settings.retry)
        self.keys = ApiKeyStore(database.engine)
        self.registry = DeviceRegistry(database)
        self.apps = dict(apps) if apps is not None else None
        self.metrics = Metrics()
        self.metrics.watch_queue(self.outbox.queue_depth)
        self.limiter = RateLimiter(self.settings.rate, self.settings.burst)
        self.webhooks = WebhookDispatcher(
            webhook_targets or {}, on_result=lambda app, r: self.metrics.webhooks.labels(app, r).inc()
        )
        self.pool = ProviderPool(
            dict(providers), on_open=lambda app, p, d: self.metrics.connections.labels(app, p).inc(d)
        )
        self.worker: Worker | None = None
        if with_worker:
            registered_only = self.apps or {}
            audience = RegistryAudience(
                self.registry, registered_only=lambda app: registered_only.get(app, False)
            )
            self.worker = Worker(
                self.outbox,
                self.pool,
                audience,
                settings=self.settings.worker,
                metrics=self.metrics,
                webhooks=self.webhooks,
            )
        self.credentials_loaded = bool(providers)

    def knows_app(self, app: str) -> bool:
        return self.apps is None or app in self.apps

    def close(self) -> None:
        self.db.dispose()
