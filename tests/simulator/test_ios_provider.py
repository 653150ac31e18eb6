"""The service's iOS provider: simulator UDIDs go through ``xcrun simctl push`` (a fake one on PATH),
device tokens through APNs — here an app without APNs credentials, whose devices fail with the reason
while its simulators are still delivered, as in 4D."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from pushrelay import Notification, Outcome
from pushrelay.providers.base import IosProvider, Item
from pushrelay.simulator import SimulatorClient

UDID = "8A2F3C1E-0B6D-4E5F-9A7B-1C2D3E4F5A6B"
BUNDLE = "com.sample.myappname"
N = Notification(title="Hello", body="simulator")


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_simulators_and_devices_are_split(fake_xcrun: Path) -> None:
    tokens = [UDID, "ab" * 32, "booted"]

    async def items() -> AsyncIterator[Item]:
        for i, token in enumerate(tokens):
            yield (N, token, i, None)

    provider = IosProvider(None, SimulatorClient(BUNDLE), no_apns="app 'x' has no APNs credentials")
    async with provider:
        results = {r.tag: r async for r in provider.send_many(items())}
    assert results[0].ok and results[2].ok
    assert results[1].outcome is Outcome.FAILED and results[1].reason == "app 'x' has no APNs credentials"
    pushed = sorted(call["args"][2] for call in calls(fake_xcrun))  # type: ignore[index]
    assert pushed == sorted([UDID, "booted"])
    assert json.loads(str(calls(fake_xcrun)[0]["payload"]))["aps"]["alert"]["title"] == "Hello"
