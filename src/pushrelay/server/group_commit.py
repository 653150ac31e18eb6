"""Group commit: the notifications accepted at the same moment share one transaction.

Every ``POST /v1/notifications`` must be committed before it is answered. One transaction per
request makes the commit the bottleneck (SQLite has one writer; PostgreSQL pays a WAL flush per
commit): under load, requests queue for the database one by one. Here a request joins the group
that waits while the previous commit runs, and the whole group is committed at once. Alone, a
request is committed immediately, so this adds no latency when the service is quiet.

Each request still gets its own answer: an idempotency conflict in a group (the only error that
belongs to one request) makes the group's requests be committed one by one instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from ..queue.interface import EnqueueResult, IdempotencyConflict, NotificationRequest

__all__ = ["GroupCommit"]


class GroupCommit:
    def __init__(
        self,
        enqueue_many: Callable[[Sequence[NotificationRequest]], list[EnqueueResult]],
        *,
        max_group: int = 500,
    ) -> None:
        self._enqueue_many = enqueue_many
        self.max_group = max_group
        self._waiting: list[tuple[NotificationRequest, asyncio.Future[EnqueueResult]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def enqueue(self, request: NotificationRequest) -> EnqueueResult:
        """Commit ``request`` (with whatever else is waiting) and return its result."""
        future: asyncio.Future[EnqueueResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_waiting(), name="group-commit")
        return await future

    async def _commit_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[: self.max_group], self._waiting[self.max_group :]
            try:
                results = await asyncio.to_thread(self._enqueue_many, [r for r, _ in group])
            except IdempotencyConflict:
                await self._one_by_one(group)
                continue
            except BaseException as exc:  # the database is down...: every request of the group learns it
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():  # the client may have gone; the notification is committed anyway
                    future.set_result(result)

    async def _one_by_one(
        self, group: list[tuple[NotificationRequest, asyncio.Future[EnqueueResult]]]
    ) -> None:
        for request, future in group:
            try:
                (result,) = await asyncio.to_thread(self._enqueue_many, [request])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        if self._committer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._committer
