"""Fanning targets out to providers, one stream per channel, with bounded memory.

Targets arrive as an async iterator (a list for ``send``, a database stream for ``send_all``),
mixed platforms and environments. Each channel gets a provider, opened on first use and kept for
the batch, fed through a bounded queue: the producer waits when a provider is behind, so a
million-device ``send_all`` never holds more than ``queue_size`` pending targets per channel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping

from .._exceptions import ConfigurationError
from ..config.model import AppConfig
from ..notification import Notification
from ..outcome import DeliveryResult, Outcome
from .providers import PROVIDERS, Provider, ProviderFactory, ProviderUnavailable
from .targets import Channel, Target

__all__ = ["ProviderPool", "dispatch"]

OnResult = Callable[[Target, DeliveryResult], None]


class ProviderPool:
    """The providers of one app, opened lazily per channel and closed together."""

    def __init__(self, app: AppConfig, factories: Mapping[str, ProviderFactory] | None = None) -> None:
        self.app = app
        self._factories = PROVIDERS if factories is None else factories
        self._providers: dict[Channel, Provider | ConfigurationError] = {}
        self._stack = contextlib.AsyncExitStack()

    async def get(self, channel: Channel) -> Provider | ConfigurationError:
        """The open provider of ``channel``, or the configuration error that prevents one."""
        known = self._providers.get(channel)
        if known is not None:
            return known
        factory = self._factories.get(channel.platform)
        result: Provider | ConfigurationError
        try:
            if factory is None:
                raise ProviderUnavailable(f"no {channel.platform} provider configured")
            result = await self._stack.enter_async_context(factory(self.app, channel))
        except ConfigurationError as exc:
            # Missing credentials, a key file that cannot be read, no provider for the platform:
            # the devices of this channel fail with the reason, the others are still delivered.
            result = exc
        self._providers[channel] = result
        return result

    async def aclose(self) -> None:
        self._providers.clear()
        await self._stack.aclose()


async def _fail_all(
    queue: asyncio.Queue[tuple[Notification, Target] | None], reason: str, on_result: OnResult
) -> None:
    while (item := await queue.get()) is not None:
        target = item[1]
        on_result(target, DeliveryResult(target.token, Outcome.FAILED, reason=reason))


async def _consume(
    provider: Provider, queue: asyncio.Queue[tuple[Notification, Target] | None], on_result: OnResult
) -> None:
    async def items() -> AsyncIterator[tuple[Notification, Target]]:
        while (item := await queue.get()) is not None:
            yield item

    results = provider.deliver(items())
    try:
        async for target, result in results:
            on_result(target, result)
    finally:
        aclose = getattr(results, "aclose", None)
        if aclose is not None:
            await aclose()


async def dispatch(
    pool: ProviderPool,
    notification: Notification,
    targets: AsyncIterator[Target],
    on_result: OnResult,
    *,
    queue_size: int = 1000,
) -> list[ConfigurationError]:
    """Deliver ``notification`` to every target; ``on_result`` is called once per target.

    Returns the configuration errors that made whole channels fail (other than a platform that
    simply has no provider, which is reported per device).
    """
    queues: dict[Channel, asyncio.Queue[tuple[Notification, Target] | None]] = {}
    errors: list[ConfigurationError] = []
    async with asyncio.TaskGroup() as tasks:
        async for target in targets:
            channel = target.channel
            queue = queues.get(channel)
            if queue is None:
                queue = queues[channel] = asyncio.Queue(queue_size)
                provider = await pool.get(channel)
                if isinstance(provider, ConfigurationError):
                    if not isinstance(provider, ProviderUnavailable):
                        errors.append(provider)
                    tasks.create_task(_fail_all(queue, str(provider), on_result))
                else:
                    tasks.create_task(_consume(provider, queue, on_result))
            await queue.put((notification, target))
        for queue in queues.values():
            await queue.put(None)
    return errors
