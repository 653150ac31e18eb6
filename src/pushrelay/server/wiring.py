"""Build a :class:`~pushrelay.server.service.Service` from the configuration file.

Provider dispatch is a table keyed by platform (see :mod:`pushrelay.worker.providers`):

- ``ios``: APNs, and ``xcrun simctl push`` for simulator UDIDs (4D registers simulators as iOS);
- ``android``: FCM HTTP v1 (``[apps.X.fcm]``);
- ``web``: Web Push (``[apps.X.webpush]``), the subscription keys read from the registry.

The FCM and Web Push tables are typed when the service is built, so a mistake stops
``pushrelay serve`` with the key named instead of failing deliveries later. Credentials are loaded
once per app, on first use, and shared by every client of that app (APNs wants one JWT per key,
FCM one access token per service account, Web Push signs one VAPID JWT per push service).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine

from ..apns import ApnsClient, CertificateAuth, TokenAuth
from ..config import Config
from ..db import Database
from ..fcm import FcmSettings, ServiceAccount
from ..fcm.target import registration_token_problem
from ..logs import event, get_logger
from ..registry.devices import DeviceRegistry
from ..simulator import SimulatorClient
from ..webhooks.dispatcher import WebhookTarget
from ..webpush import DEFAULT_ALLOWED_HOSTS, EndpointAllowList, WebPushSettings
from ..worker.providers import (
    IosProvider,
    Keys,
    Provider,
    ProviderFactory,
    TokenProvider,
    UnknownTarget,
    WebSubscriptionProvider,
)
from ..worker.shared_token import SharedTokenAuth
from .service import Service, ServiceSettings

__all__ = ["Platforms", "build_service", "provider_table"]

log = get_logger("service")

T = TypeVar("T")


def _typed_tables(config: Config, section: str, read: Callable[..., T]) -> dict[str, T]:
    """Every app's ``[apps.NAME.<section>]`` typed by ``read`` (errors name the table and file)."""
    tables: dict[str, T] = {}
    for name, app in config.apps.items():
        table = getattr(app, section)
        if table is not None:
            tables[name] = read(
                table, file=config.source, table=f"apps.{name}.{section}", base_dir=app.base_dir
            )
    return tables


def _app_or_unknown(config: Config, app: str) -> None:
    if app not in config.apps:
        raise UnknownTarget(f"app {app!r} is not configured in this pushrelay")


class _ApnsFactory:
    """Makes one iOS provider per (app, environment): APNs with the app's credentials, loaded once
    per app and shared (APNs wants one JWT per team and key, whatever the number of connections),
    plus simulator delivery."""

    def __init__(self, config: Config, engine: Engine, connections: int = 2) -> None:
        self.config = config
        self.engine = engine
        self.connections = connections
        self.auths: dict[str, TokenAuth | CertificateAuth] = {}

    def __call__(self, app: str, environment: str | None) -> Provider:
        _app_or_unknown(self.config, app)
        cfg = self.config.apps[app]
        simulator = SimulatorClient(cfg.bundle_id)
        if cfg.apns is None or not cfg.apns.has_credentials:
            return IosProvider(
                None, simulator, no_apns=f"app {app!r} has no APNs credentials in the configuration"
            )
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
        return IosProvider(client, simulator)

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


class _FcmFactory:
    """One FCM client per app; the service account (and its access token) is shared."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = _typed_tables(config, "fcm", FcmSettings.from_mapping)
        self.accounts: dict[str, ServiceAccount] = {}

    def __call__(self, app: str, environment: str | None) -> Provider:
        _app_or_unknown(self.config, app)
        settings = self.settings.get(app)
        if settings is None:
            raise UnknownTarget(f"app {app!r} has no FCM settings ([apps.{app}.fcm]) in the configuration")
        account = self.accounts.get(app)
        if account is None:
            account = self.accounts[app] = settings.service_account()
        return TokenProvider(settings.client(credentials=account))

    def refuse_token(self, app: str, token: str) -> str | None:
        return registration_token_problem(token)

    def metrics(self) -> Iterable[Metric]:
        minted = GaugeMetricFamily(
            "pushrelay_fcm_access_token_mints", "OAuth2 access tokens minted for FCM", labels=["app"]
        )
        for app, account in self.accounts.items():
            minted.add_metric([app], account.refresh_count)
        yield minted


class _WebPushFactory:
    """One Web Push client per app (its VAPID key signs for every push service); the keys of each
    subscription come from the registry, one query per batch of deliveries."""

    def __init__(self, config: Config, registry: DeviceRegistry) -> None:
        self.config = config
        self.registry = registry
        self.settings = _typed_tables(config, "webpush", WebPushSettings.from_mapping)
        self.allow_lists = {name: s.allow_list() for name, s in self.settings.items()}
        self.default_allow_list = EndpointAllowList(DEFAULT_ALLOWED_HOSTS)

    def __call__(self, app: str, environment: str | None) -> Provider:
        _app_or_unknown(self.config, app)
        settings = self.settings.get(app)
        if settings is None:
            raise UnknownTarget(
                f"app {app!r} has no Web Push settings ([apps.{app}.webpush]) in the configuration"
            )
        return WebSubscriptionProvider(settings.client(), partial(self._keys, app))

    def _keys(self, app: str, endpoints: list[str]) -> Mapping[str, Keys]:
        found = self.registry.find_tokens(app, endpoints)
        return {endpoint: (d.web_p256dh, d.web_auth) for endpoint, d in found.items()}

    def refuse_token(self, app: str, token: str) -> str | None:
        # Subscriptions come from browsers: an endpoint outside the allow-list is refused before it
        # is stored, so that pushrelay never becomes a request forwarder (see webpush.allowlist).
        if app in self.allow_lists:
            return self.allow_lists[app].reason_refused(token, where=f"[apps.{app}.webpush] allowed_hosts")
        return self.default_allow_list.reason_refused(token, where="the default Web Push allow-list")

    def metrics(self) -> Iterable[Metric]:
        signed = GaugeMetricFamily(
            "pushrelay_webpush_vapid_signatures", "VAPID JWTs signed (one per push service and period)",
            labels=["app"],
        )  # fmt: skip
        for app, settings in self.settings.items():
            signed.add_metric([app], settings.vapid.signed)
        yield signed


class Platforms:
    """The provider table of one service, and the provider-level metrics to export."""

    def __init__(self, config: Config, database: Database, registry: DeviceRegistry | None = None) -> None:
        self.ios = _ApnsFactory(config, database.engine)
        self.android = _FcmFactory(config)
        self.web = _WebPushFactory(config, registry or DeviceRegistry(database))

    @property
    def table(self) -> dict[str, ProviderFactory]:
        return {"ios": self.ios, "android": self.android, "web": self.web}

    @property
    def configured(self) -> bool:
        """Some app has credentials for some platform."""
        apps = self.ios.config.apps.values()
        return bool(self.android.settings or self.web.settings) or any(
            a.apns is not None and a.apns.has_credentials for a in apps
        )

    def metrics(self) -> Iterable[Metric]:
        yield from self.ios.metrics()
        yield from self.android.metrics()
        yield from self.web.metrics()


def provider_table(config: Config, database: Database) -> Platforms:
    """Type the providers' settings (raises ConfigurationError naming the key) and build the table."""
    return Platforms(config, database)


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
        providers=platforms.table,
        apps={n: a.registered_tokens_only for n, a in config.apps.items()},
        webhook_targets=hooks,
        settings=settings or ServiceSettings.from_env(),
        with_worker=with_worker,
    )
    service.credentials_loaded = platforms.configured
    service.metrics.watch_providers(platforms.metrics)
    return service
