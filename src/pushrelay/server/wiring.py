"""Build a :class:`~pushrelay.server.service.Service` from the configuration file.

The provider table (platform → provider factory) is :class:`~pushrelay.providers.build.Platforms`:
the clients are built by :class:`~pushrelay.providers.build.ProviderBuilder`, the one place that
turns configuration into provider clients, and share its provider state (APNs provider token, FCM
access token, Retry-After deadlines) with every other process on the database. The FCM and Web
Push tables are typed when the service is built, so a mistake stops ``pushrelay serve`` with the
key named instead of failing deliveries later.
"""

from __future__ import annotations

import logging

from .._exceptions import ConfigurationError
from ..config import Config
from ..db import Database
from ..logs import event, get_logger
from ..providers.build import Platforms, ProviderBuilder
from ..registry.devices import DeviceRegistry
from ..webhooks.dispatcher import WebhookTarget
from .service import Service, ServiceSettings

__all__ = ["Platforms", "build_service", "provider_table"]

log = get_logger("service")


def provider_table(config: Config, database: Database) -> Platforms:
    """Type the providers' settings (raises ConfigurationError naming the key) and build the table."""
    builder = ProviderBuilder(database.engine, source=config.source)
    return Platforms(config.apps, builder, DeviceRegistry(database).subscription_keys)


def build_service(
    config: Config, *, settings: ServiceSettings | None = None, with_worker: bool = True
) -> Service:
    database = Database(config.database.url)
    try:
        platforms = provider_table(config, database)
    except Exception:
        database.dispose()
        raise
    hooks = {
        name: WebhookTarget(app.webhook_url, app.webhook_secret or "")
        for name, app in config.apps.items()
        if app.webhook_url
    }
    for name, app in config.apps.items():
        problem = app.webhook_problem()  # a Config built in code skips the loader's check
        if problem is not None:
            database.dispose()
            raise ConfigurationError(problem)
        if app.webhook_url and not app.webhook_secret:
            event(log, logging.WARNING, "webhook.unsigned", app=name, hint="webhook_unsigned = true")
    service = Service(
        database,
        providers=platforms.table,
        apps={n: a.registered_tokens_only for n, a in config.apps.items()},
        webhook_targets=hooks,
        settings=settings or ServiceSettings.from_env(),
        with_worker=with_worker,
    )
    service.credentials_loaded = platforms.configured
    service.metrics.watch_providers(platforms.metrics)
    return service
