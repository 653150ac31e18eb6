"""Provider clients as the worker sees them, and the pool that keeps them open per app.

The dispatch table is keyed by platform (``"ios"``, ``"android"``, ``"web"``): each entry is a
factory ``(app, environment) -> client``; a client is an async context manager with
``send_many(items)``. Items are ``(Notification, token, tag, apns_id)``: ``apns_id`` is the id fixed
when the delivery was created, so that a retry after a crash carries the same id. Adding FCM or
Web Push is one entry in the table.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, Protocol

from ..notification import Notification
from ..outcome import DeliveryResult

__all__ = ["Item", "Provider", "ProviderFactory", "ProviderPool", "UnknownTarget"]

Item = tuple[Notification, str, Any, str | None]


class Provider(Protocol):
    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> Any: ...

    def send_many(self, items: AsyncIterable[Item]) -> AsyncIterator[DeliveryResult]: ...


ProviderFactory = Callable[[str, str | None], Provider]


class UnknownTarget(Exception):
    """No client can be made for (app, platform): the deliveries fail with this message."""


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
                raise UnknownTarget(f"no {platform} provider is configured in this pushrelay")
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
