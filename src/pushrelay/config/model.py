"""The typed, immutable configuration: what :func:`pushrelay.config.load_config` returns.

Small frozen dataclasses, no behaviour beyond resolving an app reference and loading APNs
credentials on demand (so that ``pushrelay devices list`` works even while a key file is missing;
the send that needs the key reports it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from .._exceptions import ConfigurationError, CredentialsError
from ..local_time import QuietHours

if TYPE_CHECKING:
    from ..apns import CertificateAuth, TokenAuth

__all__ = ["ApnsSettings", "AppConfig", "Config", "DatabaseSettings", "Environment", "ServiceConfig"]

Environment = Literal["production", "development"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = "sqlite:///pushrelay.db"

    def __repr__(self) -> str:
        from ..db import normalize_url

        try:
            shown = normalize_url(self.url).render_as_string(hide_password=True)
        except ConfigurationError:
            shown = "<invalid>"
        return f"DatabaseSettings(url={shown!r})"


@dataclass(frozen=True, slots=True)
class ApnsSettings:
    """``[apps.NAME.apns]``: how to reach APNs for one app.

    Token authentication (``key_file`` + ``team_id``, key id from the file name unless
    ``key_id`` is set) or certificate authentication (``cert_file``: a ``.p12`` with
    ``cert_passphrase``, or a PEM certificate with its key in the same file or ``cert_key_file``).
    """

    team_id: str | None = None
    key_file: Path | None = None
    key_id: str | None = None
    cert_file: Path | None = None
    cert_key_file: Path | None = None
    cert_passphrase: str | None = field(default=None, repr=False)
    environment: Environment = "production"
    endpoint: str | None = None
    ca_file: Path | None = None
    # Per-environment endpoints (a local sandbox serving each environment on its own port); they win
    # over ``endpoint`` for the devices of that environment.
    development_endpoint: str | None = None
    production_endpoint: str | None = None
    # A fixed cap on deliveries in flight per send; None: the client's adaptive limit (docs/apns.md)
    max_in_flight: int | None = None

    def endpoint_for(self, environment: str) -> str | None:
        """The endpoint for devices of ``environment``: its own key, else ``endpoint``."""
        specific = self.development_endpoint if environment == "development" else self.production_endpoint
        return specific or self.endpoint

    @property
    def has_credentials(self) -> bool:
        return self.key_file is not None or self.cert_file is not None

    def load_auth(self, *, app: str = "?") -> TokenAuth | CertificateAuth:
        """Load the credentials (reads the key or certificate file). Raises
        :class:`CredentialsError` naming the setting and the file."""
        from ..apns import CertificateAuth, TokenAuth

        if self.key_file is not None:
            if not self.team_id:
                raise CredentialsError(
                    f"apps.{app}.apns.team_id is required with key_file", field=f"apps.{app}.apns.team_id"
                )
            return TokenAuth.from_file(self.key_file, team_id=self.team_id, key_id=self.key_id)
        if self.cert_file is not None:
            if self.cert_file.suffix.lower() in (".p12", ".pfx"):
                return CertificateAuth.from_p12(self.cert_file, self.cert_passphrase)
            return CertificateAuth.from_pem(self.cert_file, self.cert_key_file, self.cert_passphrase)
        raise CredentialsError(
            f"app {app!r} has no APNs credentials: set apps.{app}.apns.key_file (an AuthKey_<KEYID>.p8, "
            f"with team_id) or apps.{app}.apns.cert_file",
            field=f"apps.{app}.apns.key_file",
        )

    def replace(self, **changes: Any) -> ApnsSettings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class AppConfig:
    """``[apps.NAME]``: one app, all its platforms."""

    name: str
    bundle_id: str
    apns: ApnsSettings | None = None
    fcm: Mapping[str, Any] | None = None
    """``[apps.NAME.fcm]`` passed through untouched (typed by the FCM provider)."""
    webpush: Mapping[str, Any] | None = None
    """``[apps.NAME.webpush]`` passed through untouched (typed by the Web Push provider)."""
    registered_tokens_only: bool = False
    """Refuse raw device tokens that are not in the registry (4D's behaviour)."""
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_unsigned: bool = False
    """``webhook_unsigned = true``: send events without a signature on purpose (a receiver on a
    private network); without it a ``webhook_url`` needs a ``webhook_secret``."""
    fourd_folder: Path | None = None
    quiet_hours: QuietHours | None = None
    """``quiet_hours = {start = "22:00", end = "08:00"}``: non-urgent notifications accepted by the
    service wait, per device, until they end in the device's zone."""
    base_dir: Path = field(default_factory=Path.cwd)
    """Folder that relative paths in this app's settings are resolved against."""

    @property
    def team_id(self) -> str | None:
        return self.apns.team_id if self.apns else None

    @property
    def app_id(self) -> str | None:
        """``<teamId>.<bundleId>``, 4D's iOS app id, when the team is known."""
        return f"{self.team_id}.{self.bundle_id}" if self.team_id else None

    @property
    def short_name(self) -> str:
        """4D's "app name": the last component of the bundle id."""
        return self.bundle_id.rsplit(".", 1)[-1]

    def replace(self, **changes: Any) -> AppConfig:
        return dataclasses.replace(self, **changes)

    def webhook_problem(self) -> str | None:
        """Why this app's webhook cannot be used as configured (the key to set), or None."""
        if self.webhook_url and not self.webhook_secret and not self.webhook_unsigned:
            return (
                f"apps.{self.name}.webhook_secret is required with webhook_url: receivers verify each "
                "event's signature with it (or set webhook_unsigned = true to send unsigned events)"
            )
        return None

    def __repr__(self) -> str:
        # the [fcm] and [webpush] tables pass through untyped and may hold an inline VAPID private key
        shown = {
            f.name: _redacted(getattr(self, f.name))
            if f.name in ("fcm", "webpush")
            else getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.repr
        }
        return "AppConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


_SECRET_WORDS = ("private", "secret", "password", "passphrase", "credential", "token", "auth")


def _redacted(table: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A settings table for a repr: values of keys that may hold a secret are replaced (file paths
    are kept: a path is not the secret it names)."""
    if table is None:
        return None
    return {
        k: "<redacted>"
        if any(w in k.lower() for w in _SECRET_WORDS) and not k.lower().endswith("_file")
        else (_redacted(v) if isinstance(v, Mapping) else v)
        for k, v in table.items()
    }


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """``[service]``: settings of ``pushrelay serve`` / ``pushrelay worker``, as the file gives them.

    ``None`` means "not set": the ``PUSHRELAY_<KEY>`` environment variable, else the built-in
    default, applies (see :class:`pushrelay.server.service.ServiceSettings`, which owns the
    defaults). Keeping the file's values apart from the defaults lets an environment variable
    override the file without knowing what the default was.
    """

    host: str | None = None
    port: int | None = None
    max_body: int | None = None
    rate_limit: float | None = None
    rate_burst: int | None = None
    register_rate_limit: float | None = None
    register_rate_burst: int | None = None
    device_rate_limit: float | None = None
    device_rate_burst: int | None = None
    wait_max: float | None = None
    retry_base: float | None = None
    retry_cap: float | None = None
    worker_chunk: int | None = None
    worker_lease: float | None = None
    worker_concurrency: int | None = None
    worker_poll: float | None = None
    worker_idle_max: float | None = None
    worker_listen: bool | None = None
    worker_processes: int | None = None
    worker_nice: int | None = None
    sweep_every: float | None = None
    webhook_retry_base: float | None = None
    webhook_retry_cap: float | None = None
    webhook_retention_days: float | None = None

    def given(self) -> dict[str, Any]:
        """The settings the file sets, by key."""
        return {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True, slots=True)
class Config:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    apps: Mapping[str, AppConfig] = field(default_factory=lambda: _EMPTY)
    source: Path | None = None
    """The file the settings came from (``None``: built-in defaults)."""
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _EMPTY)
    """Other top-level tables registered in :data:`pushrelay.config.loader.EXTRA_SECTIONS`, untouched."""
    service: ServiceConfig = field(default_factory=ServiceConfig)
    """``[service]``: the HTTP API and workers (host, port, limits, retries, worker sizing)."""

    @property
    def where(self) -> str:
        return str(self.source) if self.source else "the built-in defaults (no pushrelay.toml found)"

    def app(self, ref: str | None = None) -> AppConfig:
        """The app ``ref`` designates, resolved as 4D resolves the ``MobileApps`` folder:
        the app's name, its bundle id, its ``<teamId>.<bundleId>`` app id, or 4D's short name
        (last bundle id component); with no ``ref``, the only configured app."""
        apps = list(self.apps.values())
        if ref is None:
            if len(apps) == 1:
                return apps[0]
            if not apps:
                raise ConfigurationError(
                    f"no app is configured in {self.where}: add an [apps.NAME] table, or run "
                    "`pushrelay import-4d PATH/MobileApps`",
                    field="apps",
                    file=str(self.source) if self.source else None,
                )
            raise ConfigurationError(
                f"several apps are configured ({', '.join(sorted(self.apps))}): name the one to use",
                field="app",
                file=str(self.source) if self.source else None,
            )
        if ref in self.apps:
            return self.apps[ref]
        # exact identifiers first; 4D's short name (ambiguous by nature) last
        tests: tuple[Callable[[AppConfig], bool], ...] = (
            lambda a: a.bundle_id == ref,
            lambda a: a.app_id == ref,
            lambda a: a.name.lower() == ref.lower(),
            lambda a: a.short_name == ref,
        )
        for test in tests:
            found = [a for a in apps if test(a)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ConfigurationError(
                    f"{ref!r} matches several apps ({', '.join(a.name for a in found)}): use the app name",
                    field="app",
                )
        known = ", ".join(sorted(self.apps)) or "none"
        raise ConfigurationError(
            f"no app {ref!r} in {self.where} (configured apps: {known}); give an app name, "
            "bundle id or TEAMID.bundle.id",
            field="app",
            file=str(self.source) if self.source else None,
        )
