"""A thin synchronous wrapper: the async client on a private event loop in a background thread."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from ..notification import Notification
from ..outcome import DeliveryResult
from .client import ApnsClient, Item

__all__ = ["SyncApnsClient"]

_END = object()


class SyncApnsClient:
    """``with SyncApnsClient(auth, topic=...) as c: c.send(n, token)``; same arguments as ApnsClient."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pushrelay-apns", daemon=True)
        self._thread.start()
        try:
            self._client: ApnsClient = self._call(self._make(args, kwargs))
        except BaseException:
            self._stop()
            raise

    @staticmethod
    async def _make(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ApnsClient:
        client: ApnsClient = ApnsClient(*args, **kwargs)
        await client.__aenter__()
        return client

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def send(self, notification: Notification, token: str, *, apns_id: str | None = None) -> DeliveryResult:
        result: DeliveryResult = self._call(self._client.send(notification, token, apns_id=apns_id))
        return result

    def send_many(
        self, items: Iterable[Item], *, max_in_flight: int | None = None
    ) -> Iterator[DeliveryResult]:
        """Yields results as they arrive (bounded buffer: a slow consumer slows the sending)."""
        out: queue.Queue[object] = queue.Queue(maxsize=10_000)

        async def pump() -> None:
            try:
                async for result in self._client.send_many(items, max_in_flight=max_in_flight):
                    while True:
                        try:
                            out.put_nowait(result)
                            break
                        except queue.Full:
                            await asyncio.sleep(0.005)
            finally:
                out.put(_END)

        fut = asyncio.run_coroutine_threadsafe(pump(), self._loop)
        while True:
            item = out.get()
            if item is _END:
                break
            yield item  # type: ignore[misc]
        fut.result()  # re-raise NotificationError etc.

    def close(self) -> None:
        if self._loop.is_running():
            self._call(self._client.aclose())
        self._stop()

    def _stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncApnsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
