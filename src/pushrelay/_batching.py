"""Streams of delivery results: fan-out of one send coroutine, local answers, merging.

- :func:`send_many`: bounded, order-free fan-out of one send coroutine over many
  (notification, token, tag) items, for the FCM, Web Push and simulator clients' ``send_many``.
  Memory stays flat for any number of items: at most ``limit`` sends are in flight *or* waiting to
  be read by the caller (the slot is given back only when the caller has taken the result), and a
  finished send keeps no task object alive.
- :func:`send_or_answer`: items that can be answered without the provider (a web device without
  its keys, say) get their result locally; the others go through a client's ``send_many``.
- :func:`merge`: several result streams as one, in completion order (APNs and simulators).
- :class:`BatchClient`: the common shape of those clients (``async with``, ``send_many``), and
  :class:`PairProvider`, such a client as a provider of :mod:`pushrelay.push`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from ._exceptions import NotificationError
from .notification import Notification
from .outcome import DeliveryResult, Outcome

__all__ = ["BatchClient", "Item", "aclose", "by_tag", "merge", "send_many", "send_or_answer"]

T = TypeVar("T")
In = TypeVar("In")
Out = TypeVar("Out")
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


async def aclose(stream: AsyncIterator[Any]) -> None:
    """Close an async generator in the calling task (a no-op for other iterators)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


async def send_or_answer(
    items: AsyncIterable[In],
    prepare: Callable[[In], Out | DeliveryResult],
    send_many: Callable[[AsyncIterable[Out]], AsyncIterator[DeliveryResult]],
) -> AsyncIterator[DeliveryResult]:
    """Yield a result for every item: ``prepare(item)`` gives either the client's item or, when
    the provider need not be asked, the (tagged) result itself.

    Local answers are yielded among the client's results as soon as one comes, and all of them
    before the stream ends, so a caller counting results per item never misses one.
    """
    answered: deque[DeliveryResult] = deque()

    async def outgoing() -> AsyncIterator[Out]:
        async for item in items:
            prepared = prepare(item)
            if isinstance(prepared, DeliveryResult):
                answered.append(prepared)
            else:
                yield prepared

    results = send_many(outgoing())
    try:
        async for result in results:
            while answered:
                yield answered.popleft()
            yield result
        while answered:
            yield answered.popleft()
    finally:
        # the client's stream is an async generator: close it here, in this task, if we stop early
        await aclose(results)


async def by_tag(
    stream: AsyncIterator[DeliveryResult], kind: type[T]
) -> AsyncIterator[tuple[T, DeliveryResult]]:
    """``(result.tag, result)`` for every result; every tag must be a ``kind``."""
    try:
        async for result in stream:
            tag = result.tag
            if not isinstance(tag, kind):
                raise TypeError(f"a result came back tagged {type(tag).__name__}, not {kind.__name__}")
            yield tag, result
    finally:
        await aclose(stream)


class _Done:
    """One merged stream is exhausted (or failed with ``error``)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def merge(streams: Sequence[AsyncIterator[DeliveryResult]]) -> AsyncIterator[DeliveryResult]:
    """The results of every stream as they come; an exception in one stream is re-raised."""
    if len(streams) == 1:  # the common case: no task, no queue
        try:
            async for result in streams[0]:
                yield result
        finally:
            await aclose(streams[0])
        return
    queue: asyncio.Queue[DeliveryResult | _Done] = asyncio.Queue()

    async def pump(stream: AsyncIterator[DeliveryResult]) -> None:
        try:
            async for result in stream:
                queue.put_nowait(result)
        except Exception as exc:
            queue.put_nowait(_Done(exc))
        else:
            queue.put_nowait(_Done())
        finally:
            await aclose(stream)

    tasks = [asyncio.create_task(pump(stream)) for stream in streams]
    try:
        remaining = len(tasks)
        while remaining:
            got = await queue.get()
            if isinstance(got, _Done):
                if got.error is not None:
                    raise got.error
                remaining -= 1
                continue
            yield got
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class BatchClient(Generic[T]):
    """A client that sends one notification to one recipient of type ``T`` with :meth:`send`, and
    many with :meth:`send_many` (at most :attr:`concurrency` in flight)."""

    concurrency: int = 100

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release connections (nothing to release by default)."""

    async def send(self, notification: Notification, token: T) -> DeliveryResult:
        raise NotImplementedError

    def _token_text(self, token: T) -> str:
        """How a recipient is named in a ``payload_rejected`` result."""
        return str(token)

    def send_many(
        self,
        items: Iterable[tuple[Notification, T, object]] | AsyncIterable[tuple[Notification, T, object]],
        *,
        concurrency: int | None = None,
    ) -> AsyncIterator[DeliveryResult]:
        """Send every ``(notification, recipient, tag)``; results (with ``.tag``) in completion order."""
        return send_many(items, self.send, limit=concurrency or self.concurrency, token_text=self._token_text)
