"""The first two arguments of ``PushNotification``: which app, which platforms.

As in 4D, the app is given by name, bundle id, ``TEAMID.bundle.id`` app id or 4D's short name,
resolved against the configuration (the pushrelay counterpart of the ``MobileApps`` folder); with
none, the only configured app is used. ``"ios"`` / ``"android"`` / ``"web"`` as first argument
means "the only app, these targets". Or an auth object as 4D takes it::

    {"bundleId": "com.sample.myappname", "teamId": "TEAM123456",
     "authKey": "/path/AuthKey_ABC123DEFG.p8", "isDevelopment": False}

pushrelay adds ``keyId``, ``endpoint`` and ``caFile`` to that object. The app's devices are those
of the configured app with the same bundle id (else those registered under the bundle id itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._exceptions import ConfigurationError
from ..config.model import ApnsSettings, AppConfig, Config
from ..registry.tokens import PLATFORMS

__all__ = ["normalize_targets", "resolve_app"]

_AUTH_KEYS = (
    "bundleId",
    "teamId",
    "authKey",
    "keyId",
    "isDevelopment",
    "endpoint",
    "caFile",
    "serverKey",
    "project",
)


def normalize_targets(targets: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"ios"``, ``["ios", "android"]``... as a tuple; ``None`` means every platform."""
    if targets is None:
        return tuple(PLATFORMS)
    items = [targets] if isinstance(targets, str) else list(targets)
    out: list[str] = []
    for item in items:
        name = item.strip().lower() if isinstance(item, str) else item
        if name not in PLATFORMS:
            raise ConfigurationError(
                f"targets must be among {', '.join(PLATFORMS)}, got {item!r}", field="targets"
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigurationError("targets must name at least one platform", field="targets")
    return tuple(out)


def resolve_app(
    app: str | Mapping[str, Any] | AppConfig | None,
    targets: str | Sequence[str] | None,
    config: Config,
) -> tuple[AppConfig, tuple[str, ...]]:
    if isinstance(app, str) and app.strip().lower() in PLATFORMS and targets is None:
        return config.app(None), normalize_targets(app)
    platforms = normalize_targets(targets)
    if isinstance(app, AppConfig):
        return app, platforms
    if isinstance(app, Mapping):
        return app_from_auth(app, config), platforms
    if app is None or isinstance(app, str):
        return config.app(app), platforms
    raise ConfigurationError(
        f"the app must be a name, a bundle id, an app id or an auth object, got {type(app).__name__}",
        field="app",
    )


def _text(auth: Mapping[str, Any], key: str) -> str | None:
    value = auth.get(key)
    if value is None:
        return None
    if isinstance(value, Path):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"auth.{key} must be a non-empty text", field=key)
    return value.strip()


def app_from_auth(auth: Mapping[str, Any], config: Config) -> AppConfig:
    """An app from a 4D auth object (see the module docstring)."""
    unknown = [k for k in auth if k not in _AUTH_KEYS]
    if unknown:
        raise ConfigurationError(
            f"unknown auth key {unknown[0]!r}; expected: {', '.join(_AUTH_KEYS)}", field=str(unknown[0])
        )
    if "serverKey" in auth:
        raise ConfigurationError(
            "auth.serverKey: the legacy FCM server-key API was shut down by Google in 2024; configure "
            "the app's [apps.NAME.fcm] section with a Firebase service-account key file instead",
            field="serverKey",
        )
    if "project" in auth:
        raise ConfigurationError(
            "auth.project: Android credentials come from the app's [apps.NAME.fcm] section "
            "(service_account_file, project_id), not from the auth object",
            field="project",
        )
    bundle_id = _text(auth, "bundleId")
    if bundle_id is None:
        raise ConfigurationError("auth.bundleId is required", field="bundleId")
    development = auth.get("isDevelopment")
    if development is not None and not isinstance(development, bool):
        raise ConfigurationError("auth.isDevelopment must be true or false", field="isDevelopment")
    endpoint = _text(auth, "endpoint")
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigurationError(
                f"auth.endpoint must be an https:// URL, got {endpoint!r}", field="endpoint"
            )
    ca_file = _text(auth, "caFile")

    matches = [a for a in config.apps.values() if a.bundle_id == bundle_id]
    base = matches[0] if len(matches) == 1 else None
    team_id = _text(auth, "teamId") or (base.team_id if base else None)
    key_file = _text(auth, "authKey")

    overrides: dict[str, Any] = {}
    if development is not None:
        overrides["environment"] = "development" if development else "production"
    if endpoint is not None:
        overrides["endpoint"] = endpoint
    if ca_file is not None:
        overrides["ca_file"] = Path(ca_file).expanduser().resolve()
    if key_file is not None:
        if team_id is None:
            raise ConfigurationError("auth.teamId is required with auth.authKey", field="teamId")
        base_apns = base.apns if base and base.apns else None
        apns = ApnsSettings(
            team_id=team_id,
            key_file=Path(key_file).expanduser().resolve(),
            key_id=_text(auth, "keyId"),
            environment="development" if development else "production",
            endpoint=endpoint or (base_apns.endpoint if base_apns else None),
            ca_file=overrides.get("ca_file") or (base_apns.ca_file if base_apns else None),
        )
    elif base is not None and base.apns is not None:
        apns = base.apns.replace(**overrides)
    else:
        raise ConfigurationError(
            f"auth.authKey (the path of AuthKey_<KEYID>.p8) is required: no configured app has bundle id "
            f"{bundle_id!r} in {config.where}",
            field="authKey",
        )
    if base is not None:
        return base.replace(apns=apns)
    return AppConfig(name=bundle_id, bundle_id=bundle_id, apns=apns)
