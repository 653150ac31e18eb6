"""iOS simulator delivery through `xcrun simctl push`, with a fake xcrun put on PATH by the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushrelay import ConfigurationError, Notification, NotificationError, Outcome
from pushrelay.simulator import SimulatorClient, is_simulator_token

UDID = "8A2F3C1E-0B6D-4E5F-9A7B-1C2D3E4F5A6B"
BUNDLE = "com.sample.myappname"


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


N = Notification(title="Hello", body="simulator", badge=1, user_info={"dataClass": "Employee"})


async def test_delivers_with_simctl_push(fake_xcrun: Path) -> None:
    async with SimulatorClient(BUNDLE) as client:
        result = await client.send(N, UDID)
        booted = await client.send(N, "booted")
    assert result.ok and booted.ok
    first, second = calls(fake_xcrun)
    assert first["args"][:4] == ["simctl", "push", UDID, BUNDLE]  # type: ignore[index]
    payload = json.loads(str(first["payload"]))
    assert payload["aps"]["alert"] == {"title": "Hello", "body": "simulator"}
    assert payload["aps"]["badge"] == 1 and payload["dataClass"] == "Employee"
    assert second["args"][2] == "booted"  # type: ignore[index]
    assert not Path(str(first["args"][4])).exists()  # type: ignore[index]  # the payload file is removed


async def test_simctl_failure_is_reported(fake_xcrun: Path) -> None:
    async with SimulatorClient(BUNDLE) as client:
        result = await client.send(N, "00000000-0000-0000-0000-000000000000")
    assert result.outcome is Outcome.FAILED
    assert result.reason == (
        "xcrun simctl push failed (exit 148): Invalid device: 00000000-0000-0000-0000-000000000000"
    )


async def test_without_xcrun_the_delivery_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    async with SimulatorClient(BUNDLE) as client:
        result = await client.send(N, UDID)
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None and "xcrun is not on PATH" in result.reason


async def test_only_udids_reach_the_command_line(fake_xcrun: Path) -> None:
    async with SimulatorClient(BUNDLE) as client:
        result = await client.send(N, "--help")
    assert result.outcome is Outcome.FAILED and "not a simulator UDID" in (result.reason or "")
    assert not fake_xcrun.exists()


async def test_send_many(fake_xcrun: Path) -> None:
    udids = [f"8A2F3C1E-0B6D-4E5F-9A7B-1C2D3E4F5A{i:02d}" for i in range(6)]
    async with SimulatorClient(BUNDLE, concurrency=2) as client:
        results = {r.tag: r async for r in client.send_many([(N, u, u) for u in udids])}
    assert set(results) == set(udids) and all(r.ok for r in results.values())
    assert len(calls(fake_xcrun)) == 6


async def test_invalid_notification_raises(fake_xcrun: Path) -> None:
    async with SimulatorClient(BUNDLE) as client:
        with pytest.raises(NotificationError):
            await client.send(Notification(body="x", push_type="background", priority=10), UDID)


def test_simulator_tokens() -> None:
    assert is_simulator_token(UDID) and is_simulator_token(UDID.lower()) and is_simulator_token("booted")
    assert not is_simulator_token("a" * 64)
    assert not is_simulator_token("")


def test_bundle_id_is_checked() -> None:
    with pytest.raises(ConfigurationError) as info:
        SimulatorClient("not a bundle")
    assert info.value.field == "bundle_id"
