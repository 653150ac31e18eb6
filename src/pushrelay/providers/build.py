"""THE place where provider clients are built from the configuration.

:class:`ProviderBuilder` turns an app's ``[apps.NAME.apns]``, ``[apps.NAME.fcm]`` and
``[apps.NAME.webpush]`` tables into :class:`~pushrelay.apns.ApnsClient`,
:class:`~pushrelay.fcm.FcmClient`, :class:`~pushrelay.webpush.WebPushClient` and
:class:`~pushrelay.simulator.SimulatorClient`. The worker of ``pushrelay serve``, ``PushNotification``
and ``pushrelay send`` all build through it, so they share:

- credentials loaded once per process (a changed key file, new modification time, is read again);
- with a database, the provider state of :mod:`.state`: the APNs provider token per (team, key)
  and the FCM access token per service account, reused by every process on that database; and the
  per-target Retry-After deadlines (:attr:`ProviderBuilder.deferrals`).

Per-app endpoints (``apns.endpoint``, ``fcm.endpoint``...) and extra CA files (a sandbox, a proxy)
come from the same tables and are applied here.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Literal

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine

from ..apns import ApnsClient, CertificateAuth, TokenAuth
from ..config.model import ApnsSettings, AppConfig
from ..fcm import FcmClient, FcmSettings, ServiceAccount
from ..fcm.target import registration_token_problem
from ..simulator import SimulatorClient
from ..webpush import DEFAULT_ALLOWED_HOSTS, EndpointAllowList, WebPushClient, WebPushSettings
from .base import (
    IosProvider,
    Keys,
    Provider,
    ProviderFactory,
    ProviderUnavailable,
    TokenProvider,
    UnknownTarget,
    WebSubscriptionProvider,
)
from .state import Deferrals, SqlAccessTokenStore, SqlTokenStore

__all__ = ["AppKeyLookup", "Platforms", "ProviderBuilder", "builder_for"]

AppKeyLookup = Callable[[str, list[str]], Mapping[str, Keys]]
"""``(app, endpoints) -> {endpoint: (p256dh, auth)}`` for registered subscriptions; blocking."""


def _mtime(path: Path | str | None) -> float:
    try:
        return Path(path).stat().st_mtime if path is not None else 0.0
    except OSError:
        return 0.0


def _apns_key(settings: ApnsSettings) -> tuple[object, ...]:
    return (
        str(settings.key_file),
        _mtime(settings.key_file),
        settings.team_id,
        settings.key_id,
        str(settings.cert_file),
        _mtime(settings.cert_file),
        str(settings.cert_key_file),
        _mtime(settings.cert_key_file),
        settings.cert_passphrase,
    )


def _table_key(app: AppConfig, table: Mapping[str, Any]) -> tuple[object, ...]:
    files = [v for k, v in table.items() if k.endswith("_file") and isinstance(v, str)]
    return (
        app.name,
        str(app.base_dir),
        repr(sorted(table.items())),
        tuple(_mtime(app.base_dir / f) for f in files),
    )


class ProviderBuilder:
    """Builds provider clients for apps; one per process and database (see :func:`builder_for`).

    ``engine``: the database whose provider state is shared (None: state stays in this process).
    ``source``: the configuration file, named in the errors of mistyped tables.
    """

    def __init__(self, engine: Engine | None = None, *, source: str | Path | None = None) -> None:
        self.engine = engine
        self.source = source
        self.deferrals = Deferrals(engine) if engine is not None else None
        self._lock = threading.Lock()
        self._apns_auth: dict[tuple[object, ...], TokenAuth | CertificateAuth] = {}
        self._apns_by_app: dict[str, TokenAuth | CertificateAuth] = {}
        self._fcm: dict[tuple[object, ...], FcmSettings] = {}
        self._fcm_accounts: dict[tuple[object, ...], ServiceAccount] = {}
        self._fcm_by_app: dict[str, ServiceAccount] = {}
        self._webpush: dict[tuple[object, ...], WebPushSettings] = {}
        self._webpush_by_app: dict[str, WebPushSettings] = {}
        # the APNs clients built, for their in-flight limit gauge; a closed, dropped client goes
        self._apns_clients: list[tuple[str, str, weakref.ref[ApnsClient]]] = []

    # -- APNs -----------------------------------------------------------------------------------
    def apns_auth(self, app: AppConfig) -> TokenAuth | CertificateAuth:
        """The app's APNs credentials, loaded once and shared (with the database's provider token)."""
        settings = self._apns_settings(app)
        key = _apns_key(settings)
        with self._lock:
            auth = self._apns_auth.get(key)
            if auth is None:
                auth = settings.load_auth(app=app.name)
                if isinstance(auth, TokenAuth) and self.engine is not None:
                    auth = auth.shared(SqlTokenStore(self.engine))
                self._apns_auth[key] = auth
            self._apns_by_app[app.name] = auth
            return auth

    def apns_client(
        self, app: AppConfig, environment: str | None = None, *, connections: int = 2
    ) -> ApnsClient:
        """An APNs client for the app in ``environment`` (default: the app's)."""
        settings = self._apns_settings(app)
        env = environment or settings.environment
        chosen: Literal["development", "production"] = "development" if env == "development" else "production"
        client = ApnsClient(
            self.apns_auth(app),
            topic=app.bundle_id,
            environment=chosen,
            endpoint=settings.endpoint_for(chosen),
            ca_file=settings.ca_file,
            connections=connections,
            max_in_flight=settings.max_in_flight,
        )
        with self._lock:
            self._apns_clients.append((app.name, chosen, weakref.ref(client)))
        return client

    @staticmethod
    def has_apns(app: AppConfig) -> bool:
        return app.apns is not None and app.apns.has_credentials

    def _apns_settings(self, app: AppConfig) -> ApnsSettings:
        if app.apns is None or not app.apns.has_credentials:
            raise ProviderUnavailable(
                f"no ios provider configured: app {app.name!r} has no APNs credentials "
                f"([apps.{app.name}.apns] key_file or cert_file)",
                field=f"apps.{app.name}.apns",
            )
        return app.apns

    # -- iOS simulators -------------------------------------------------------------------------
    @staticmethod
    def simulator_client(app: AppConfig) -> SimulatorClient:
        return SimulatorClient(app.bundle_id)

    # -- FCM ------------------------------------------------------------------------------------
    def fcm_settings(self, app: AppConfig) -> FcmSettings:
        """The app's typed ``[apps.NAME.fcm]`` (raises ConfigurationError naming the key)."""
        return self._fcm_settings(app)[1]

    def fcm_account(self, app: AppConfig) -> ServiceAccount:
        """The app's service account, loaded once; its access token shared through the database."""
        key, settings = self._fcm_settings(app)
        with self._lock:
            account = self._fcm_accounts.get(key)
            if account is None:
                account = settings.service_account()
                if self.engine is not None:
                    account = account.shared(SqlAccessTokenStore(self.engine))
                self._fcm_accounts[key] = account
            self._fcm_by_app[app.name] = account
            return account

    def fcm_client(self, app: AppConfig) -> FcmClient:
        return self.fcm_settings(app).client(credentials=self.fcm_account(app))

    def _fcm_settings(self, app: AppConfig) -> tuple[tuple[object, ...], FcmSettings]:
        if app.fcm is None:
            raise ProviderUnavailable(
                f"no android provider configured: app {app.name!r} has no [apps.{app.name}.fcm] settings",
                field=f"apps.{app.name}.fcm",
            )
        key = _table_key(app, app.fcm)
        with self._lock:
            settings = self._fcm.get(key)
            if settings is None:
                settings = self._fcm[key] = FcmSettings.from_mapping(
                    app.fcm, file=self.source, table=f"apps.{app.name}.fcm", base_dir=app.base_dir
                )
            return key, settings

    # -- Web Push -------------------------------------------------------------------------------
    def webpush_settings(self, app: AppConfig) -> WebPushSettings:
        """The app's typed ``[apps.NAME.webpush]``, loaded once (its VAPID key signs for every push
        service, and caches what it signed)."""
        if app.webpush is None:
            raise ProviderUnavailable(
                f"no web provider configured: app {app.name!r} has no [apps.{app.name}.webpush] settings",
                field=f"apps.{app.name}.webpush",
            )
        key = _table_key(app, app.webpush)
        with self._lock:
            settings = self._webpush.get(key)
            if settings is None:
                settings = self._webpush[key] = WebPushSettings.from_mapping(
                    app.webpush, file=self.source, table=f"apps.{app.name}.webpush", base_dir=app.base_dir
                )
            self._webpush_by_app[app.name] = settings
            return settings

    def webpush_client(self, app: AppConfig) -> WebPushClient:
        return self.webpush_settings(app).client()

    # -- metrics --------------------------------------------------------------------------------
    def _apns_in_flight(self) -> Iterable[Metric]:
        limit = GaugeMetricFamily(
            "pushrelay_apns_in_flight_limit",
            "Deliveries an APNs client keeps in flight now (adaptive to APNs' latency, or the fixed cap)",
            labels=["app", "environment"],
        )
        in_flight = GaugeMetricFamily(
            "pushrelay_apns_in_flight", "Requests on APNs streams now", labels=["app", "environment"]
        )
        with self._lock:
            self._apns_clients = [entry for entry in self._apns_clients if entry[2]() is not None]
            live = [(app, env, ref()) for app, env, ref in self._apns_clients]
        # several clients of one app and environment (one per worker process slot): summed
        limits: dict[tuple[str, str], int] = {}
        flights: dict[tuple[str, str], int] = {}
        for app, env, client in live:
            if client is None or not client.is_open:
                continue
            key = (app, env)
            limits[key] = limits.get(key, 0) + client.in_flight_limit
            flights[key] = flights.get(key, 0) + client.in_flight
        for key in sorted(limits):
            limit.add_metric(list(key), limits[key])
            in_flight.add_metric(list(key), flights[key])
        yield limit
        yield in_flight

    def metrics(self) -> Iterable[Metric]:
        jwt = GaugeMetricFamily(
            "pushrelay_apns_jwt_mints", "Provider JWTs minted (refreshes)", labels=["app"]
        )
        cert = GaugeMetricFamily(
            "pushrelay_apns_certificate_expiry_timestamp_seconds",
            "Client certificate notAfter",
            labels=["app"],
        )
        for app, auth in sorted(self._apns_by_app.items()):
            if isinstance(auth, TokenAuth):
                jwt.add_metric([app], auth.mints)
            else:
                expiry: Any = getattr(auth, "not_after", None)
                if expiry is not None:
                    cert.add_metric([app], expiry.timestamp())
        yield jwt
        yield cert
        yield from self._apns_in_flight()
        minted = GaugeMetricFamily(
            "pushrelay_fcm_access_token_mints", "OAuth2 access tokens minted for FCM", labels=["app"]
        )
        for app, account in sorted(self._fcm_by_app.items()):
            minted.add_metric([app], account.refresh_count)
        yield minted
        signed = GaugeMetricFamily(
            "pushrelay_webpush_vapid_signatures",
            "VAPID JWTs signed (one per push service and period)",
            labels=["app"],
        )
        for app, settings in sorted(self._webpush_by_app.items()):
            signed.add_metric([app], settings.vapid.signed)
        yield signed


# -- the platform table (worker-shaped providers, see pushrelay.providers.base) -------------------
def _app_or_unknown(apps: Mapping[str, AppConfig], app: str) -> AppConfig:
    found = apps.get(app)
    if found is None:
        raise UnknownTarget(f"app {app!r} is not configured in this pushrelay")
    return found


class _ApnsFactory:
    """One iOS provider per (app, environment): APNs with the app's shared credentials, plus
    simulator delivery (4D registers simulators as iOS devices)."""

    def __init__(self, apps: Mapping[str, AppConfig], builder: ProviderBuilder, connections: int = 2) -> None:
        self.apps = apps
        self.builder = builder
        self.connections = connections

    def __call__(self, app: str, environment: str | None) -> Provider:
        cfg = _app_or_unknown(self.apps, app)
        simulator = self.builder.simulator_client(cfg)
        if not self.builder.has_apns(cfg):
            return IosProvider(
                None,
                simulator,
                no_apns=f"no ios provider configured: app {app!r} has no APNs credentials "
                f"([apps.{app}.apns] key_file or cert_file)",
            )
        return IosProvider(
            self.builder.apns_client(cfg, environment, connections=self.connections), simulator
        )


class _FcmFactory:
    """One FCM client per app; the service account (and its access token) is shared."""

    def __init__(self, apps: Mapping[str, AppConfig], builder: ProviderBuilder) -> None:
        self.apps = apps
        self.builder = builder
        for cfg in apps.values():
            if cfg.fcm is not None:
                builder.fcm_settings(cfg)  # typed now: a mistake stops the service, naming the key

    def __call__(self, app: str, environment: str | None) -> Provider:
        cfg = _app_or_unknown(self.apps, app)
        if cfg.fcm is None:
            raise UnknownTarget(
                f"no android provider configured: app {app!r} has no [apps.{app}.fcm] settings"
            )
        return TokenProvider(self.builder.fcm_client(cfg))

    def refuse_token(self, app: str, token: str) -> str | None:
        return registration_token_problem(token)


class _WebPushFactory:
    """One Web Push client per app (its VAPID key signs for every push service); the keys of each
    subscription come from the registry, one query per batch of deliveries."""

    def __init__(self, apps: Mapping[str, AppConfig], builder: ProviderBuilder, keys: AppKeyLookup) -> None:
        self.apps = apps
        self.builder = builder
        self.keys = keys
        self.allow_lists = {
            name: builder.webpush_settings(cfg).allow_list()
            for name, cfg in apps.items()
            if cfg.webpush is not None
        }
        self.default_allow_list = EndpointAllowList(DEFAULT_ALLOWED_HOSTS)

    def __call__(self, app: str, environment: str | None) -> Provider:
        cfg = _app_or_unknown(self.apps, app)
        if cfg.webpush is None:
            raise UnknownTarget(
                f"no web provider configured: app {app!r} has no [apps.{app}.webpush] settings"
            )
        return WebSubscriptionProvider(self.builder.webpush_client(cfg), partial(self.keys, app))

    def refuse_token(self, app: str, token: str) -> str | None:
        # Subscriptions come from browsers: an endpoint outside the allow-list is refused before it
        # is stored, so that pushrelay never becomes a request forwarder (see webpush.allowlist).
        if app in self.allow_lists:
            return self.allow_lists[app].reason_refused(token, where=f"[apps.{app}.webpush] allowed_hosts")
        return self.default_allow_list.reason_refused(token, where="the default Web Push allow-list")


class Platforms:
    """The platform → provider factory table for some apps, and the provider-level metrics.

    ``keys(app, endpoints)`` reads registered Web Push subscriptions' keys (the registry's).
    The service builds one for every configured app; ``PushNotification`` one for its app."""

    def __init__(
        self,
        apps: Mapping[str, AppConfig],
        builder: ProviderBuilder,
        keys: AppKeyLookup,
        *,
        apns_connections: int = 2,
    ) -> None:
        self.apps = apps
        self.builder = builder
        self.ios = _ApnsFactory(apps, builder, apns_connections)
        self.android = _FcmFactory(apps, builder)
        self.web = _WebPushFactory(apps, builder, keys)

    @property
    def table(self) -> dict[str, ProviderFactory]:
        return {"ios": self.ios, "android": self.android, "web": self.web}

    @property
    def configured(self) -> bool:
        """Some app has credentials for some platform."""
        return any(
            ProviderBuilder.has_apns(a) or a.fcm is not None or a.webpush is not None
            for a in self.apps.values()
        )

    def metrics(self) -> Iterable[Metric]:
        return self.builder.metrics()


_builders: weakref.WeakKeyDictionary[Engine, ProviderBuilder] = weakref.WeakKeyDictionary()
_no_engine = ProviderBuilder()
_builders_lock = threading.Lock()


def builder_for(engine: Engine | None) -> ProviderBuilder:
    """The process's builder for ``engine``'s database: credentials are loaded once per process,
    even when a 4D-style backend creates a PushNotification per send."""
    if engine is None:
        return _no_engine
    with _builders_lock:
        builder = _builders.get(engine)
        if builder is None:
            builder = _builders[engine] = ProviderBuilder(engine)
        return builder
