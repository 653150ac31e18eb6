"""Provider adapters: one per platform, a small table to plug new ones in.

A provider delivers one :class:`~pushrelay.push.targets.Channel` of an app (one platform, one APNs
environment): opened once, it streams ``(notification, target)`` pairs through its client and yields
``(target, DeliveryResult)`` pairs, reusing its connections across the whole batch.

:data:`PROVIDERS` maps a platform to a factory ``(app, channel) -> Provider``. A factory raises
:class:`ProviderUnavailable` (a :class:`~pushrelay.ConfigurationError`) when the app is not set up
for that platform; the dispatcher then fails that channel's devices with the reason and goes on.
A platform missing from the table fails its devices with "no <platform> provider configured".
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

from .._batching import PairProvider
from .._exceptions import ConfigurationError
from ..apns import ApnsClient, CertificateAuth, TokenAuth
from ..config.model import ApnsSettings, AppConfig, Environment
from ..notification import Notification
from ..outcome import DeliveryResult
from ..simulator import SimulatorClient
from .targets import Channel, Target

__all__ = [
    "PROVIDERS",
    "ApnsProvider",
    "Provider",
    "ProviderFactory",
    "ProviderUnavailable",
    "SimulatorProvider",
    "load_apns_auth",
]

Pair = tuple[Notification, Target]


class ProviderUnavailable(ConfigurationError):
    """The app cannot deliver to this platform (not configured, or no tooling for it)."""


class Provider(Protocol):
    async def __aenter__(self) -> Provider: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def deliver(self, items: AsyncIterator[Pair]) -> AsyncIterator[tuple[Target, DeliveryResult]]: ...


ProviderFactory = Callable[[AppConfig, Channel], Provider]


# -- APNs ---------------------------------------------------------------------------------------
_auth_cache: dict[tuple[object, ...], TokenAuth | CertificateAuth] = {}
_auth_lock = threading.Lock()


def _file_key(path: Path | None) -> tuple[str, float] | None:
    if path is None:
        return None
    try:
        return (str(path), path.stat().st_mtime)
    except OSError:
        return (str(path), 0.0)


def load_apns_auth(settings: ApnsSettings, *, app: str) -> TokenAuth | CertificateAuth:
    """The app's APNs credentials, loaded once per process and shared.

    Sharing matters: APNs wants one provider token per key refreshed at most every 20 minutes, and a
    4D-style backend creates a new PushNotification for every send. A changed key file (new
    modification time) is loaded again.
    """
    key = (
        _file_key(settings.key_file),
        settings.team_id,
        settings.key_id,
        _file_key(settings.cert_file),
        _file_key(settings.cert_key_file),
        settings.cert_passphrase,
    )
    with _auth_lock:
        auth = _auth_cache.get(key)
        if auth is None:
            auth = _auth_cache[key] = settings.load_auth(app=app)
        return auth


class ApnsProvider:
    """APNs over HTTP/2 through :class:`pushrelay.apns.ApnsClient`."""

    def __init__(self, app: AppConfig, channel: Channel) -> None:
        if app.apns is None:
            raise ProviderUnavailable(
                f"no ios provider configured: app {app.name!r} has no [apps.{app.name}.apns] settings",
                field=f"apps.{app.name}.apns",
            )
        settings = app.apns
        environment: Environment = "development" if channel.environment == "development" else "production"
        self._client = ApnsClient(
            load_apns_auth(settings, app=app.name),
            topic=app.bundle_id,
            environment=environment,
            endpoint=settings.endpoint,
            ca_file=settings.ca_file,
        )

    async def __aenter__(self) -> ApnsProvider:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def deliver(self, items: AsyncIterator[Pair]) -> AsyncIterator[tuple[Target, DeliveryResult]]:
        async def as_items() -> AsyncIterator[tuple[Notification, str, Target]]:
            async for notification, target in items:
                yield notification, target.token, target

        results = self._client.send_many(as_items())
        try:
            async for result in results:
                target = result.tag
                assert isinstance(target, Target)
                yield target, result
        finally:
            # send_many is an async generator: close it here, in this task, if we stop early
            await results.aclose()  # type: ignore[attr-defined]


# -- iOS simulators -----------------------------------------------------------------------------
class SimulatorProvider(PairProvider[Target]):
    """iOS simulators, through Xcode's ``xcrun simctl push <udid> <bundle id> <payload file>`` as 4D
    does (:class:`~pushrelay.simulator.SimulatorClient`); without Xcode each delivery fails with the
    reason."""

    target_type = Target

    def __init__(self, app: AppConfig, channel: Channel) -> None:
        self._client = SimulatorClient(app.bundle_id)

    def prepare(self, pair: tuple[Notification, Target]) -> tuple[Notification, str, Target]:
        notification, target = pair
        return notification, target.token, target


# -- the table ----------------------------------------------------------------------------------
def _ios(app: AppConfig, channel: Channel) -> Provider:
    return SimulatorProvider(app, channel) if channel.simulator else ApnsProvider(app, channel)


def _lazy(module: str, name: str) -> ProviderFactory:
    """A factory that imports its provider class on first use: the FCM and Web Push modules import
    this one (so a plain import would be circular), and a send without Android devices or browsers
    never needs their libraries."""

    def factory(app: AppConfig, channel: Channel) -> Provider:
        provider_class: ProviderFactory = getattr(importlib.import_module(module), name)
        return provider_class(app, channel)

    return factory


PROVIDERS: dict[str, ProviderFactory] = {
    "ios": _ios,
    "android": _lazy("pushrelay.push.fcm_provider", "FcmProvider"),
    "web": _lazy("pushrelay.push.webpush_provider", "WebPushProvider"),
}
