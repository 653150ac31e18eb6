"""Build a :class:`~pushrelay.server.service.Service` from the configuration file.

Provider dispatch is a table keyed by platform; iOS is APNs here. FCM and Web Push plug in by
adding ``"android"`` / ``"web"`` entries to :func:`provider_table`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine

from ..apns import ApnsClient, CertificateAuth, TokenAuth
from ..config import Config
from ..db import Database
from ..logs import event, get_logger
from ..webhooks.dispatcher import WebhookTarget
from ..worker.providers import Provider, ProviderFactory, UnknownTarget
from ..worker.shared_token import SharedTokenAuth
from .service import Service, ServiceSettings

__all__ = ["build_service", "provider_table"]

log = get_logger("service")


class _ApnsFactory:
    """Makes one ApnsClient per (app, environment); the credentials are loaded once per app and shared
    (APNs wants one JWT per team and key, whatever the number of connections)."""

    def __init__(self, config: Config, engine: Engine, connections: int = 2) -> None:
        self.config = config
        self.engine = engine
        self.connections = connections
        self.auths: dict[str, TokenAuth | CertificateAuth] = {}

    def __call__(self, app: str, environment: str | None) -> Provider:
        cfg = self.config.apps.get(app)
        if cfg is None or cfg.apns is None or not cfg.apns.has_credentials:
            raise UnknownTarget(f"app {app!r} has no APNs credentials in the configuration")
        auth = self.auths.get(app)
        if auth is None:
            auth = cfg.apns.load_auth(app=app)
            if isinstance(auth, TokenAuth):
                auth = SharedTokenAuth(auth, self.engine)
            self.auths[app] = auth
        env = environment or cfg.apns.environment
        client = ApnsClient(
            auth,
            topic=cfg.bundle_id,
            environment=env if env == "development" else "production",  # type: ignore[arg-type]
            endpoint=cfg.apns.endpoint,
            ca_file=cfg.apns.ca_file,
            connections=self.connections,
        )
        return client

    def metrics(self) -> Iterable[Metric]:
        jwt = GaugeMetricFamily(
            "pushrelay_apns_jwt_mints", "Provider JWTs minted (refreshes)", labels=["app"]
        )
        cert = GaugeMetricFamily(
            "pushrelay_apns_certificate_expiry_timestamp_seconds",
            "Client certificate notAfter",
            labels=["app"],
        )
        for app, auth in self.auths.items():
            if isinstance(auth, TokenAuth):
                jwt.add_metric([app], auth.mints)
            else:
                expiry: Any = getattr(auth, "not_after", None)
                if expiry is not None:
                    cert.add_metric([app], expiry.timestamp())
        yield jwt
        yield cert


def provider_table(config: Config, engine: Engine) -> tuple[dict[str, ProviderFactory], _ApnsFactory]:
    apns = _ApnsFactory(config, engine)
    return {"ios": apns}, apns


def build_service(
    config: Config, *, settings: ServiceSettings | None = None, with_worker: bool = True
) -> Service:
    database = Database(config.database.url)
    table, apns = provider_table(config, database.engine)
    hooks = {
        name: WebhookTarget(app.webhook_url, app.webhook_secret or "")
        for name, app in config.apps.items()
        if app.webhook_url
    }
    for name, app in config.apps.items():
        if app.webhook_url and not app.webhook_secret:
            event(
                log,
                logging.WARNING,
                "webhook.unsigned",
                app=name,
                hint=f"set apps.{name}.webhook_secret so that receivers can verify events",
            )
    service = Service(
        database,
        providers=table,
        apps={n: a.registered_tokens_only for n, a in config.apps.items()},
        webhook_targets=hooks,
        settings=settings or ServiceSettings.from_env(),
        with_worker=with_worker,
    )
    service.credentials_loaded = any(
        a.apns is not None and a.apns.has_credentials for a in config.apps.values()
    )
    service.metrics.watch_providers(apns.metrics)
    return service
