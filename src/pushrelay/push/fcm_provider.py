"""The FCM provider of :mod:`pushrelay.push`: Android devices of an app, through :class:`FcmClient`.

Plugs into the platform table: ``PROVIDERS["android"] = FcmProvider``. The service account (and so
its access token) is loaded once per process and shared by every send, like the APNs credentials:
a 4D-style backend creates a new PushNotification per send, and minting a token each time would
be slow and hit Google's token endpoint needlessly.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .._batching import PairProvider
from ..config.model import AppConfig
from ..fcm.credentials import ServiceAccount
from ..fcm.settings import FcmSettings
from ..notification import Notification
from .providers import ProviderUnavailable
from .targets import Channel, Target

__all__ = ["FcmProvider", "shared_service_account"]

_accounts: dict[tuple[object, ...], ServiceAccount] = {}
_lock = threading.Lock()


def _mtime(path: Path | None) -> float:
    try:
        return path.stat().st_mtime if path is not None else 0.0
    except OSError:
        return 0.0


def shared_service_account(settings: FcmSettings) -> ServiceAccount:
    """The process-wide :class:`ServiceAccount` for these settings (reloaded when the file changes)."""
    path = settings.service_account_file
    key = (str(path), _mtime(path), settings.token_uri, str(settings.ca_file))
    with _lock:
        account = _accounts.get(key)
        if account is None:
            account = _accounts[key] = settings.service_account()
        return account


class FcmProvider(PairProvider[Target]):
    """Delivers one app's Android devices (``[apps.NAME.fcm]``)."""

    target_type = Target

    def __init__(self, app: AppConfig, channel: Channel) -> None:
        if app.fcm is None:
            raise ProviderUnavailable(
                f"no android provider configured: app {app.name!r} has no [apps.{app.name}.fcm] settings",
                field=f"apps.{app.name}.fcm",
            )
        settings = FcmSettings.from_mapping(app.fcm, table=f"apps.{app.name}.fcm", base_dir=app.base_dir)
        self._client = settings.client(credentials=shared_service_account(settings))

    def prepare(self, pair: tuple[Notification, Target]) -> tuple[Notification, str, Target]:
        notification, target = pair
        return notification, target.token, target
