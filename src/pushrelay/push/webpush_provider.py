"""The Web Push provider of :mod:`pushrelay.push`: browsers of an app, through :class:`WebPushClient`.

Plugs into the platform table: ``PROVIDERS["web"] = WebPushProvider``. A web device's token is its
subscription endpoint; the registry keeps ``web_p256dh`` and ``web_auth`` beside it. The VAPID key
(and its cache of signed headers) is loaded once per process and shared by every send.
"""

from __future__ import annotations

import contextlib
import threading

from .._batching import PairProvider
from ..config.model import AppConfig
from ..notification import Notification
from ..outcome import DeliveryResult, Outcome
from ..webpush.settings import WebPushSettings
from ..webpush.subscription import SubscriptionError, WebSubscription
from .providers import ProviderUnavailable
from .targets import Channel, Target

__all__ = ["WebPushProvider", "subscription_of"]

_settings: dict[tuple[object, ...], WebPushSettings] = {}
_lock = threading.Lock()


def _shared_settings(app: AppConfig) -> WebPushSettings:
    assert app.webpush is not None
    key_file = app.webpush.get("vapid_private_key_file")
    mtime = 0.0
    if isinstance(key_file, str):
        with contextlib.suppress(OSError):
            mtime = (app.base_dir / key_file).stat().st_mtime
    key = (app.name, str(app.base_dir), repr(sorted(app.webpush.items())), mtime)
    with _lock:
        settings = _settings.get(key)
        if settings is None:
            settings = _settings[key] = WebPushSettings.from_mapping(
                app.webpush, table=f"apps.{app.name}.webpush", base_dir=app.base_dir
            )
        return settings


def subscription_of(target: Target) -> WebSubscription:
    """The subscription a registered web device stands for (raises SubscriptionError)."""
    if not target.web_p256dh or not target.web_auth:
        raise SubscriptionError("the web device has no p256dh/auth keys", field="keys")
    return WebSubscription(target.token, target.web_p256dh, target.web_auth)


class WebPushProvider(PairProvider[Target]):
    """Delivers one app's web devices (``[apps.NAME.webpush]``)."""

    target_type = Target

    def __init__(self, app: AppConfig, channel: Channel) -> None:
        if app.webpush is None:
            raise ProviderUnavailable(
                f"no web provider configured: app {app.name!r} has no [apps.{app.name}.webpush] settings",
                field=f"apps.{app.name}.webpush",
            )
        self._client = _shared_settings(app).client()

    def prepare(
        self, pair: tuple[Notification, Target]
    ) -> tuple[Notification, WebSubscription, Target] | DeliveryResult:
        notification, target = pair
        try:
            return notification, subscription_of(target), target
        except SubscriptionError as exc:
            # Stored without usable keys: it can never be delivered, retire it.
            return DeliveryResult(target.token, Outcome.TOKEN_DEAD, reason=str(exc), tag=target)
