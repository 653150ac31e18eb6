"""The Provider interface: one object per (app, platform, environment) takes notifications with
their targets and yields one outcome per target. The adapters that fit each platform's client to
that shape, and the pool that keeps them open per app, live here too; the clients themselves are
built in :mod:`pushrelay.providers.build` only.

Per-device rendering: :func:`for_device` is the one point where a notification may be adapted to
one device before its platform's client renders it (localization hooks in there).

The dispatch table is keyed by platform (``"ios"``, ``"android"``, ``"web"``): each entry is a
factory ``(app, environment) -> client``; a client is an async context manager with
``send_many(items)``. Items are ``(Notification, token, tag, apns_id)``: ``apns_id`` is the id fixed
when the delivery was created, so that a retry after a crash carries the same id.

A delivery row carries only the token. The adapters here add what a platform needs beyond it:

- :class:`IosProvider` sends simulator UDIDs (and ``booted``) through ``xcrun simctl push`` and
  every other token through APNs — 4D registers simulators as iOS devices;
- :class:`TokenProvider` fits a ``(notification, token, tag)`` client (FCM, simulators), for which
  the APNs id means nothing;
- :class:`WebSubscriptionProvider` looks the subscription keys up for a whole batch of endpoints at once
  (one registry query per chunk, not one per delivery) before handing subscriptions to the client.

A factory may also vet tokens at registration time (:class:`TokenCheck`): the API asks it before a
device is stored, so that what cannot be delivered is refused up front.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any, Protocol, Self, runtime_checkable

from .._batching import merge, send_or_answer
from .._exceptions import ConfigurationError
from ..localization import best_tag
from ..notification import Notification
from ..outcome import DeliveryResult, Outcome
from ..simulator import is_simulator_token
from ..webpush.subscription import SubscriptionError, WebSubscription

__all__ = [
    "AppProviderPool",
    "IosProvider",
    "Item",
    "KeyLookup",
    "Keys",
    "Provider",
    "ProviderFactory",
    "ProviderPool",
    "ProviderUnavailable",
    "TokenCheck",
    "TokenClient",
    "TokenProvider",
    "UnknownTarget",
    "WebSubscriptionProvider",
    "for_device",
    "is_simulator_id",
]

Item = tuple[Notification, str, Any, str | None]


class Provider(Protocol):
    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> Any: ...

    def send_many(self, items: AsyncIterable[Item]) -> AsyncIterator[DeliveryResult]: ...


ProviderFactory = Callable[[str, str | None], Provider]


class TokenClient(Protocol):
    """The library clients' shape (FcmClient, WebPushClient, SimulatorClient): items are
    ``(notification, recipient, tag)``."""

    def send_many(
        self, items: AsyncIterable[tuple[Notification, Any, object]]
    ) -> AsyncIterator[DeliveryResult]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TokenCheck(Protocol):
    """Implemented by factories that can tell, before a device is registered, that its token can
    never be delivered (a Web Push endpoint outside the allow-list, say)."""

    def refuse_token(self, app: str, token: str) -> str | None:
        """Why ``token`` cannot be registered for ``app``, or None when it can."""


class UnknownTarget(Exception):
    """No client can be made for (app, platform): the deliveries fail with this message."""


class ProviderUnavailable(ConfigurationError):
    """The app cannot deliver to this platform (not configured, or no tooling for it)."""


def is_simulator_id(token: str) -> bool:
    """True for an iOS simulator UDID or the word ``booted`` (the running simulator)."""
    return is_simulator_token(token.strip())


_VARIANTS: dict[tuple[int, str | None], tuple[Notification, Notification]] = {}


def for_device(
    notification: Notification, *, app: str, platform: str, token: str, language: str | None = None
) -> Notification:
    """The notification as ``token``'s device should get it. The one per-device rendering point of
    every surface (the worker, and so the library and the CLI): the texts of the device's
    ``language`` when the notification has ``localizations`` (see :mod:`pushrelay.localization`)."""
    if not notification.localizations:
        return notification
    tag = best_tag(notification.localizations, language)
    # the same object for every device of a language: the clients render a notification once
    key = (id(notification), tag)
    hit = _VARIANTS.get(key)
    if hit is not None and hit[0] is notification:
        return hit[1]
    variant = notification.localized(tag)
    if len(_VARIANTS) >= 1024:
        _VARIANTS.clear()
    _VARIANTS[key] = (notification, variant)
    return variant


async def _strip_apns_id(items: AsyncIterable[Item]) -> AsyncIterator[tuple[Notification, str, object]]:
    async for notification, token, tag, _apns_id in items:
        yield notification, token, tag


class TokenProvider:
    """A ``(notification, token, tag)`` client as a worker provider (FCM, iOS simulators)."""

    def __init__(self, client: TokenClient) -> None:
        self.client = client

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    def send_many(self, items: AsyncIterable[Item]) -> AsyncIterator[DeliveryResult]:
        return self.client.send_many(_strip_apns_id(items))


Keys = tuple[str | None, str | None]
"""A subscription's ``(p256dh, auth)`` as the registry stores them."""
KeyLookup = Callable[[list[str]], Mapping[str, Keys]]
"""``endpoints -> {endpoint: keys}`` for the registered ones; blocking (run in a thread)."""
_Keyed = tuple[Notification, str, object, Keys | None]


class WebSubscriptionProvider(TokenProvider):
    """Browsers of one app: endpoints from the delivery rows, keys from the registry, in batches."""

    def __init__(self, client: TokenClient, keys: KeyLookup, *, batch: int = 500) -> None:
        super().__init__(client)
        self.keys = keys
        self.batch = batch

    def send_many(self, items: AsyncIterable[Item]) -> AsyncIterator[DeliveryResult]:
        return send_or_answer(self._with_keys(items), _subscription, self.client.send_many)

    async def _with_keys(self, items: AsyncIterable[Item]) -> AsyncIterator[_Keyed]:
        batch: list[Item] = []

        async def resolved() -> list[_Keyed]:
            found = await asyncio.to_thread(self.keys, [token for _n, token, _t, _a in batch])
            return [(n, token, tag, found.get(token)) for n, token, tag, _a in batch]

        async for item in items:
            batch.append(item)
            if len(batch) >= self.batch:
                for ready in await resolved():
                    yield ready
                batch = []
        if batch:
            for ready in await resolved():
                yield ready


def _subscription(item: _Keyed) -> tuple[Notification, WebSubscription, object] | DeliveryResult:
    notification, endpoint, tag, keys = item
    if keys is None:
        # A raw endpoint sent "anyway" (not registered): without the browser's keys nothing can be
        # encrypted for it. Not token_dead: there is no device to retire.
        return DeliveryResult(
            endpoint,
            Outcome.FAILED,
            reason="this Web Push endpoint is not registered: register the subscription with "
            "web_p256dh and web_auth first",
            tag=tag,
        )
    try:
        return notification, WebSubscription(endpoint, keys[0] or "", keys[1] or ""), tag
    except SubscriptionError as exc:
        # Stored without usable keys: it can never be delivered, retire it.
        return DeliveryResult(endpoint, Outcome.TOKEN_DEAD, reason=f"invalid subscription: {exc}", tag=tag)


class IosProvider:
    """APNs for device tokens, ``xcrun simctl push`` for simulator UDIDs and ``booted``.

    ``apns`` is None when the app has no APNs credentials: its device tokens then fail with
    ``no_apns`` (simulators still work, as in 4D where they need no key).
    """

    def __init__(self, apns: Provider | None, simulator: TokenClient, *, no_apns: str = "") -> None:
        self.apns = apns
        self.simulator = simulator
        self.no_apns = no_apns

    async def __aenter__(self) -> IosProvider:
        if self.apns is not None:
            await self.apns.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.apns is not None:
                await self.apns.__aexit__(None, None, None)
        finally:
            await self.simulator.aclose()

    async def send_many(self, items: AsyncIterable[Item]) -> AsyncIterator[DeliveryResult]:
        # A worker's items are one claimed chunk: split it in memory, then run both at once.
        devices: list[Item] = []
        simulators: list[tuple[Notification, str, object]] = []
        async for item in items:
            if is_simulator_id(item[1]):
                simulators.append((item[0], item[1], item[2]))
            else:
                devices.append(item)
        streams: list[AsyncIterator[DeliveryResult]] = []
        if devices:
            streams.append(self._devices(devices))
        if simulators:
            streams.append(self.simulator.send_many(_aiter(simulators)))
        async for result in merge(streams):
            yield result

    def _devices(self, items: list[Item]) -> AsyncIterator[DeliveryResult]:
        if self.apns is None:
            return _aiter(
                [DeliveryResult(t, Outcome.FAILED, reason=self.no_apns, tag=g) for _n, t, g, _a in items]
            )
        return self.apns.send_many(_aiter(items))


async def _aiter(values: list[Any]) -> AsyncIterator[Any]:
    for value in values:
        yield value


class ProviderPool:
    """Opens one client per (app, platform, environment) on first use and keeps it until close."""

    def __init__(
        self, table: dict[str, ProviderFactory], on_open: Callable[[str, str, int], None] | None = None
    ):
        self.table = table
        self._clients: dict[tuple[str, str, str | None], Provider] = {}
        self._locks: dict[tuple[str, str, str | None], asyncio.Lock] = {}
        self._on_open = on_open or (lambda app, platform, delta: None)

    async def get(self, app: str, platform: str, environment: str | None) -> Provider:
        key = (app, platform, environment)
        client = self._clients.get(key)
        if client is not None:
            return client
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._clients:
                return self._clients[key]
            factory = self.table.get(platform)
            if factory is None:
                raise UnknownTarget(f"no {platform} provider configured")
            client = factory(app, environment)  # raises UnknownTarget for an unknown app
            await client.__aenter__()
            self._clients[key] = client
            self._on_open(app, platform, 1)
            return client

    async def close(self) -> None:
        for (app, platform, _env), client in list(self._clients.items()):
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            self._on_open(app, platform, -1)
        self._clients.clear()

    def clients(self) -> list[Provider]:
        return list(self._clients.values())

    async def discard(self, app: str) -> int:
        """Close and forget every client of ``app``; returns how many. A client that a provider
        refused (APNs ``InvalidProviderToken``...) refuses every later delivery on its own: when the
        operator resumes the app, the worker drops that app's clients and opens new ones."""
        keys = [key for key in self._clients if key[0] == app]
        for key in keys:
            client = self._clients.pop(key)
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            self._on_open(key[0], key[1], -1)
        return len(keys)

    def refuse_token(self, app: str, platform: str, token: str) -> str | None:
        """Why the provider of ``platform`` will never deliver to ``token`` (see :class:`TokenCheck`)."""
        factory = self.table.get(platform)
        return factory.refuse_token(app, token) if isinstance(factory, TokenCheck) else None


AppProviderPool = ProviderPool  # the worker's name for it
