"""The bounded fan-out behind every client's send_many (pushrelay._batching)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pushrelay import Notification, NotificationError, Outcome
from pushrelay._batching import send_many
from pushrelay.outcome import DeliveryResult

N = Notification(title="x")


class Recorder:
    """A send coroutine that counts how many calls run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.release = asyncio.Event()

    async def send(self, notification: Notification, token: str) -> DeliveryResult:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0)
            if token == "bad":
                raise NotificationError("title too long", field="title")
            return DeliveryResult(token, Outcome.DELIVERED)
        finally:
            self.running -= 1


async def test_bounded_and_complete() -> None:
    rec = Recorder()
    items = ((N, f"t{i}", i) for i in range(200))
    tags = [r.tag async for r in send_many(items, rec.send, limit=7)]
    assert sorted(tags) == list(range(200))  # type: ignore[type-var]
    assert 1 <= rec.peak <= 7


async def test_results_not_yet_read_hold_their_slot() -> None:
    rec = Recorder()
    results = send_many(((N, f"t{i}", i) for i in range(50)), rec.send, limit=3)
    first = await anext(results)  # type: ignore[arg-type]
    await asyncio.sleep(0.01)  # the caller is slow: nothing beyond the limit may start meanwhile
    assert first.ok and rec.peak <= 3
    await results.aclose()  # type: ignore[attr-defined]


async def test_invalid_notification_becomes_a_result() -> None:
    rec = Recorder()
    got = [r async for r in send_many([(N, "bad", "b"), (N, "ok", "o")], rec.send, limit=2)]
    by_tag = {r.tag: r for r in got}
    assert by_tag["b"].outcome is Outcome.PAYLOAD_REJECTED and "field: title" in (by_tag["b"].reason or "")
    assert by_tag["o"].ok


async def test_errors_reading_the_items_reach_the_caller() -> None:
    async def items() -> AsyncIterator[tuple[Notification, str, object]]:
        yield N, "a", 1
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"):
        _ = [r async for r in send_many(items(), Recorder().send, limit=2)]


async def test_malformed_items_are_named() -> None:
    with pytest.raises(TypeError, match=r"\(notification, token, tag\) tuples"):
        _ = [r async for r in send_many([(N, "a")], Recorder().send, limit=2)]  # type: ignore[list-item]


async def test_stopping_early_cancels_the_rest() -> None:
    started: list[str] = []

    async def slow(notification: Notification, token: str) -> DeliveryResult:
        started.append(token)
        if token != "t0":
            await asyncio.sleep(3600)
        return DeliveryResult(token, Outcome.DELIVERED)

    results = send_many(((N, f"t{i}", i) for i in range(10)), slow, limit=4)
    async for r in results:  # type: ignore[attr-defined]
        assert r.tag == 0
        break
    await results.aclose()  # type: ignore[attr-defined]
    assert len(started) <= 5
