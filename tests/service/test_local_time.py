"""Local-time delivery and quiet hours through a real service and the APNs sandbox, with the
outbox's clock moved by hand (``PUSHRELAY_CLOCK_OFFSET_FILE``) across three time zones: Paris
(UTC+1 in January), Mexico City (UTC-6) and Tokyo (UTC+9)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest

from pushrelay import NotificationError
from pushrelay.config import load_config
from pushrelay.push import PushNotification
from pushrelay.registry import DeviceRegistry

from .conftest import BUNDLE, Stack, wait_until

PARIS, MEXICO, TOKYO, NOZONE = "a1" * 32, "b1" * 32, "c1" * 32, "d1" * 32
ZONES = {PARIS: "Europe/Paris", MEXICO: "America/Mexico_City", TOKYO: "Asia/Tokyo", NOZONE: None}
NOTE = {"title": "Good morning", "body": "Your daily summary"}


class Clock:
    """The service's outbox clock: real time plus an offset the test sets."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.offset = 0.0

    def set(self, when: datetime) -> None:
        self.offset = (when - datetime.now(UTC)).total_seconds()
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(repr(self.offset), encoding="ascii")
        os.replace(tmp, self.file)  # the service never reads a half-written file


def setup(stack: Stack, quiet: bool = False) -> Clock:
    clock = Clock(stack.tmp / "clock")
    clock.set(datetime.now(UTC))
    stack.service.env["PUSHRELAY_CLOCK_OFFSET_FILE"] = str(clock.file)
    if quiet:
        text = stack.config.read_text()
        head = f'[apps.myapp]\nbundle_id = "{BUNDLE}"\n'
        stack.config.write_text(text.replace(head, head + 'quiet_hours = {start = "22:00", end = "08:00"}\n'))
    stack.service.start()
    with stack.client(stack.registrar) as reg:
        for tok, zone in ZONES.items():
            body = {
                "app": "myapp",
                "token": tok,
                "email": "test@4d.com",
                **({"time_zone": zone} if zone else {}),
            }
            r = reg.post("/v1/devices", json=body)
            assert r.status_code == 201, r.text
    return clock


def deliveries(snd: httpx.Client, nid: str) -> dict[str, dict[str, object]]:
    return {d["token"]: d for d in snd.get(f"/v1/notifications/{nid}/deliveries").json()["items"]}


def received(stack: Stack) -> dict[str, int]:
    return {tok: len(stack.sandbox.received(tok)) for tok in ZONES}


def test_nine_in_the_morning_in_three_time_zones(stack: Stack) -> None:
    clock = setup(stack)
    t0 = datetime(2027, 1, 15, 6, 0, tzinfo=UTC)  # 07:00 in Paris, 00:00 in Mexico City, 15:00 in Tokyo
    clock.set(t0)
    expected = {
        PARIS: "2027-01-15T08:00:00Z",  # 09:00 in Paris
        NOZONE: "2027-01-15T09:00:00Z",  # no zone: UTC
        MEXICO: "2027-01-15T15:00:00Z",  # 09:00 in Mexico City
        TOKYO: "2027-01-16T00:00:00Z",  # 09:00 tomorrow in Tokyo: today's is past
    }
    with stack.client(stack.sender) as snd:
        body = {
            "app": "myapp",
            "notification": NOTE,
            "recipients": "test@4d.com",
            "deliver_at_local": "09:00",
        }
        r = snd.post("/v1/notifications", json=body)
        assert r.status_code == 202, r.text
        nid = r.json()["id"]
        cancelled = snd.post("/v1/notifications", json=body).json()["id"]
        wait_until(
            lambda: len(deliveries(snd, nid)) == 4 and len(deliveries(snd, cancelled)) == 4, 30, "expansion"
        )
        got = deliveries(snd, nid)
        assert {tok: d["scheduled_for"] for tok, d in got.items()} == expected
        assert all(d["state"] == "pending" and d["outcome"] is None for d in got.values())
        status = snd.get(f"/v1/notifications/{nid}").json()
        assert status["deliver_at_local"] == "09:00" and status["state"] == "sending"
        # cancellable while it waits
        assert snd.delete(f"/v1/notifications/{cancelled}").json()["state"] == "cancelled"
        assert {d["state"] for d in deliveries(snd, cancelled).values()} == {"cancelled"}
        assert received(stack) == dict.fromkeys(ZONES, 0)

        # durable: a restart keeps the schedule (it is the outbox's)
        assert stack.service.stop() == 0
        stack.service.start()

        order = [PARIS, NOZONE, MEXICO, TOKYO]
        for i, tok in enumerate(order):
            when = datetime.fromisoformat(expected[tok].replace("Z", "+00:00"))
            clock.set(when - timedelta(minutes=1))
            assert received(stack) == {t: (1 if t in order[:i] else 0) for t in ZONES}
            clock.set(when + timedelta(seconds=1))
            wait_until(lambda tok=tok: received(stack)[tok] == 1, 30, f"delivery at 09:00 for {ZONES[tok]}")  # type: ignore[misc]
        wait_until(
            lambda: snd.get(f"/v1/notifications/{nid}").json()["state"] == "completed", 30, "completion"
        )
        assert received(stack) == dict.fromkeys(ZONES, 1)  # the cancelled one never went out
        final = deliveries(snd, nid)
        assert {d["outcome"] for d in final.values()} == {"delivered"}
        assert {tok: d["scheduled_for"] for tok, d in final.items()} == expected

        # a local time past the expiry: that device's delivery expires, saying why
        clock.set(t0)
        late = {**body, "expires_at": "2027-01-15T12:00:00Z"}
        nid2 = snd.post("/v1/notifications", json=late).json()["id"]
        wait_until(lambda: len(deliveries(snd, nid2)) == 4, 30, "expansion")
        clock.set(datetime(2027, 1, 15, 12, 0, 1, tzinfo=UTC))
        wait_until(lambda: snd.get(f"/v1/notifications/{nid2}").json()["state"] == "completed", 30, "expiry")
        final = deliveries(snd, nid2)
        assert final[MEXICO]["outcome"] == final[TOKYO]["outcome"] == "expired"
        assert "after the notification's expiry" in str(final[TOKYO]["reason"])

        bad = snd.post("/v1/notifications", json={**body, "deliver_at_local": "9h"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "deliver_at_local"


def test_quiet_hours(stack: Stack) -> None:
    clock = setup(stack, quiet=True)
    t1 = datetime(2027, 1, 15, 22, 0, tzinfo=UTC)  # 23:00 in Paris, 16:00 in Mexico City, 07:00 in Tokyo
    clock.set(t1)
    with stack.client(stack.sender) as snd:
        body = {"app": "myapp", "notification": NOTE, "recipients": "test@4d.com"}
        nid = snd.post("/v1/notifications", json=body).json()["id"]
        # awake devices get it at once; the others at 08:00 in their zone
        wait_until(lambda: received(stack)[MEXICO] == 1, 30, "Mexico City, 16:00")
        got = deliveries(snd, nid)
        assert got[PARIS]["scheduled_for"] == "2027-01-16T07:00:00Z"  # 08:00 in Paris
        assert got[TOKYO]["scheduled_for"] == "2027-01-15T23:00:00Z"  # 08:00 in Tokyo
        assert got[MEXICO]["scheduled_for"] is None and got[NOZONE]["scheduled_for"] == "2027-01-16T08:00:00Z"

        # urgent ones are not held: explicitly, or as a time-sensitive interruption
        for urgent in ({"urgent": True}, {"notification": {**NOTE, "interruption_level": "time-sensitive"}}):
            r = snd.post("/v1/notifications", params={"wait": 20}, json={**body, **urgent})
            assert r.status_code == 200 and r.json()["counts"]["delivered"] == 4, r.text
        assert received(stack) == {PARIS: 2, MEXICO: 3, TOKYO: 2, NOZONE: 2}

        clock.set(datetime(2027, 1, 15, 23, 0, 1, tzinfo=UTC))
        wait_until(lambda: received(stack)[TOKYO] == 3, 30, "08:00 in Tokyo")
        assert received(stack)[PARIS] == 2
        clock.set(datetime(2027, 1, 16, 7, 0, 1, tzinfo=UTC))
        wait_until(lambda: received(stack)[PARIS] == 3, 30, "08:00 in Paris")
        assert received(stack)[NOZONE] == 2
        clock.set(datetime(2027, 1, 16, 8, 0, 1, tzinfo=UTC))
        wait_until(
            lambda: snd.get(f"/v1/notifications/{nid}").json()["state"] == "completed", 30, "completion"
        )
        assert received(stack) == dict.fromkeys(ZONES, 3)


def test_the_library_enqueues_for_09_00_local(stack: Stack) -> None:
    """``PushNotification.enqueue(..., deliver_at_local=...)``: the same schedule, by the service's
    workers; cancelled through the library."""
    clock = setup(stack)
    clock.set(datetime(2027, 1, 15, 6, 0, tzinfo=UTC))
    config = load_config(stack.config)
    with DeviceRegistry(stack.db_url) as registry:
        push = PushNotification("myapp", config=config, registry=registry)
        # the test process keeps the real clock: the expiry is given on the service's calendar
        until = datetime(2027, 1, 20, tzinfo=UTC)
        nid = push.enqueue(NOTE, "test@4d.com", deliver_at_local=time(9, 0), expires_at=until)
        with stack.client(stack.sender) as snd:
            wait_until(lambda: len(deliveries(snd, nid)) == 4, 30, "expansion")
            got = {tok: d["scheduled_for"] for tok, d in deliveries(snd, nid).items()}
        assert got == {
            PARIS: "2027-01-15T08:00:00Z",
            NOZONE: "2027-01-15T09:00:00Z",
            MEXICO: "2027-01-15T15:00:00Z",
            TOKYO: "2027-01-16T00:00:00Z",
        }
        status = push.status(nid)
        assert status is not None and status.deliver_at_local == "09:00" and not status.urgent
        cancelled = push.cancel(nid)
        assert cancelled is not None and cancelled.state == "cancelled"
        with pytest.raises(NotificationError) as exc:
            push.enqueue(NOTE, "test@4d.com", deliver_at_local="9am", expires_at=until)
        assert exc.value.field == "deliver_at_local"
    clock.set(datetime(2027, 1, 16, 0, 0, 1, tzinfo=UTC))
    with stack.client(stack.sender) as snd:
        assert {d["state"] for d in deliveries(snd, nid).values()} == {"cancelled"}
    assert received(stack) == dict.fromkeys(ZONES, 0)
