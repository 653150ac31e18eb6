"""Bounded, order-free fan-out of one send coroutine over many (notification, token, tag) items.

Shared by the FCM, Web Push and simulator clients for their ``send_many``. Memory stays flat for
any number of items: at most ``limit`` sends are in flight *or* waiting to be read by the caller
(the slot is given back only when the caller has taken the result), and a finished send keeps no
task object alive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ._exceptions import NotificationError
from .notification import Notification
from .outcome import DeliveryResult, Outcome

__all__ = ["Item", "send_many"]

T = TypeVar("T")
#: One unit of a batch: the notification, the provider's token value, and the caller's tag.
Item = tuple[Notification, T, object]


class _End:
    """The items are exhausted: ``count`` sends were launched in all."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


class _Failure:
    """Reading the items or a send raised something that is not an outcome: re-raised to the caller."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def send_many(
    items: Iterable[tuple[Notification, T, object]] | AsyncIterable[tuple[Notification, T, object]],
    send: Callable[[Notification, T], Awaitable[DeliveryResult]],
    *,
    limit: int,
    token_text: Callable[[T], str] = str,
) -> AsyncIterator[DeliveryResult]:
    """Yield ``send(n, token)`` for every item, tagged, in completion order.

    An invalid notification does not abort the batch: its items come back as ``payload_rejected``
    results naming the field, so a caller never loses track of a tag.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    results: asyncio.Queue[DeliveryResult | _End | _Failure] = asyncio.Queue()
    slots = asyncio.Semaphore(limit)
    running: set[asyncio.Task[None]] = set()

    async def one(notification: Notification, token: T, tag: object) -> None:
        try:
            result = await send(notification, token)
        except NotificationError as exc:
            result = DeliveryResult(
                token=token_text(token),
                outcome=Outcome.PAYLOAD_REJECTED,
                reason=f"{exc} (field: {exc.field})" if exc.field else str(exc),
            )
        except Exception as exc:  # a bug, not an outcome: surface it instead of losing the item
            results.put_nowait(_Failure(exc))
            return
        result.tag = tag
        results.put_nowait(result)

    launched = 0

    def launch(item: Any) -> None:
        nonlocal launched
        try:
            notification, token, tag = item
        except (TypeError, ValueError):
            raise TypeError(
                f"send_many items are (notification, token, tag) tuples, got {item!r:.80}"
            ) from None
        launched += 1
        task = asyncio.create_task(one(notification, token, tag))
        running.add(task)
        task.add_done_callback(running.discard)

    async def produce() -> None:
        try:
            if isinstance(items, AsyncIterable):
                async for item in items:
                    await slots.acquire()
                    launch(item)
            else:
                for item in items:
                    await slots.acquire()
                    launch(item)
        except Exception as exc:
            results.put_nowait(_Failure(exc))
        else:
            results.put_nowait(_End(launched))

    producer = asyncio.create_task(produce())
    total: int | None = None
    yielded = 0
    try:
        while total is None or yielded < total:
            got = await results.get()
            if isinstance(got, _Failure):
                raise got.error
            if isinstance(got, _End):
                total = got.count
                continue
            slots.release()
            yielded += 1
            yield got
    finally:
        producer.cancel()
        for task in list(running):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        if running:
            await asyncio.gather(*running, return_exceptions=True)
