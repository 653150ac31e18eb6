"""Bulk registration (registry/bulk.py) on SQLite and PostgreSQL: statuses, idempotency, races."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from tokenshapes import fcm_token

from pushrelay.registry import DeviceInfo, DeviceRegistry, InvalidDeviceError


def tok(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def registry(database_url: str) -> Iterator[DeviceRegistry]:
    with DeviceRegistry(database_url) as reg:
        yield reg


def test_many_devices_in_chunks_then_again_is_idempotent(registry: DeviceRegistry) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    infos = [DeviceInfo("myapp", tok(i), email=f"u{i}@x.com", seen_at=at) for i in range(1300)]
    first = registry.register_many(infos, chunk_size=500)
    assert [r.status for r in first] == ["created"] * 1300
    assert len({r.device.id for r in first}) == 1300
    again = registry.register_many(infos, chunk_size=500)
    assert [r.status for r in again] == ["unchanged"] * 1300
    assert [r.device.id for r in again] == [r.device.id for r in first]
    later = [DeviceInfo("myapp", tok(i), email=f"v{i}@x.com", seen_at=at + timedelta(1)) for i in range(3)]
    assert [r.status for r in registry.register_many(later)] == ["updated"] * 3
    assert registry.count("myapp") == 1300
    d = registry.get("myapp", tok(0))
    assert d is not None and d.email == "v0@x.com" and d.last_seen_at == at + timedelta(1)
    assert d.created_at == at  # a refresh never moves the first registration


def test_an_older_registration_changes_nothing_and_a_retired_device_comes_back(
    registry: DeviceRegistry,
) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    registry.register_many([DeviceInfo("myapp", tok(i), email="a@x.com", seen_at=at) for i in range(3)])
    registry.retire("myapp", tok(1), "410 Unregistered", at=at + timedelta(hours=1))
    results = registry.register_many(
        [
            DeviceInfo("myapp", tok(0), email="old@x.com", seen_at=at - timedelta(1)),
            DeviceInfo("myapp", tok(1), email="a@x.com", seen_at=at + timedelta(hours=2)),
            DeviceInfo("myapp", tok(3), seen_at=at),
        ]
    )
    assert [(r.status, r.reactivated) for r in results] == [
        ("unchanged", False),
        ("updated", True),
        ("created", False),
    ]
    assert results[0].device.email == "a@x.com"
    assert results[1].device.active and results[1].device.retired_reason is None


def test_register_each_keeps_going_past_invalid_items(registry: DeviceRegistry) -> None:
    results = registry.register_each(
        [
            DeviceInfo("myapp", tok(1)),
            DeviceInfo("myapp", "not-hex"),
            DeviceInfo("myapp", tok(2), email="nope"),
            DeviceInfo("myapp", fcm_token("pixel"), platform="android"),
        ]
    )
    assert [type(r).__name__ for r in results] == [
        "Registration",
        "InvalidDeviceError",
        "InvalidDeviceError",
        "Registration",
    ]
    assert [r.field for r in results if isinstance(r, InvalidDeviceError)] == ["token", "email"]
    assert registry.count("myapp") == 2


def test_concurrent_batches_of_the_same_tokens_create_each_once(registry: DeviceRegistry) -> None:
    # Four writers register overlapping batches at once: the unique index decides who creates a
    # device, the losers find it on their retry and update it. No duplicate, no error, no deadlock.
    n = 600
    barrier = threading.Barrier(4)
    results: list[list[str]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        order = list(range(n)) if k % 2 == 0 else list(reversed(range(n)))
        barrier.wait()
        try:
            regs = registry.register_many(
                (DeviceInfo("myapp", tok(i), email=f"w{k}@x.com") for i in order), chunk_size=100
            )
            results[k] = [str(r.status) for r in regs]
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sum(s == "created" for r in results for s in r) == n
    assert registry.count("myapp") == n


def test_postgresql_statistics_exist_after_a_first_import(pg_url: str) -> None:
    # Without statistics the planner scans every device of the app per looked-up chunk.
    with DeviceRegistry(pg_url) as registry:
        registry.register_many(DeviceInfo("myapp", tok(i)) for i in range(600))
        with registry.db.session() as s:
            tuples = s.execute(sa.text("SELECT reltuples FROM pg_class WHERE relname = 'devices'")).scalar()
        assert tuples is not None and tuples >= 0
