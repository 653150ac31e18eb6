"""The 4D sync pass on SQLite and PostgreSQL: what each kind of change does to the registry, and
two processes (two registries, two real connections) on one folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushrelay.fourd.sync import FourDSync, WatchedFolder, recorded_folders
from pushrelay.registry import DeviceRegistry

from .mobileapps import BUNDLE, ios_app_folder, session, write_session

A, B, C = "a1" * 32, "b2" * 32, "c3" * 32


@pytest.fixture
def registry(database_url: str) -> Iterator[DeviceRegistry]:
    with DeviceRegistry(database_url) as reg:
        yield reg


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return ios_app_folder(tmp_path / "MobileApps")


def _sync(registry: DeviceRegistry, folder: Path) -> tuple[FourDSync, WatchedFolder]:
    wf = WatchedFolder("myapp", folder, BUNDLE)
    return FourDSync(registry, [wf]), wf


def _state(registry: DeviceRegistry, token: str) -> tuple[bool, str | None] | None:
    d = registry.get("myapp", token)
    return None if d is None else (d.active, d.retired_reason)


def test_each_change_reaches_the_registry(registry: DeviceRegistry, folder: Path) -> None:
    sync, wf = _sync(registry, folder)
    write_session(folder, "S1", session("a@4d.com", A), mtime=1_700_000_000)
    write_session(folder, "S2", session("b@4d.com", B, status="pending"), mtime=1_700_000_000)
    write_session(folder, "S3", session("c@4d.com", None), mtime=1_700_000_000)
    (folder / "notes.txt").write_text("not a session")
    first = sync.sync_folder(wf)
    assert (first.created, first.pending, first.without_token) == (1, 1, 1)
    assert _state(registry, A) == (True, None) and _state(registry, B) is None
    assert registry.get("myapp", A).language == "fr_FR"  # type: ignore[union-attr]

    again = sync.sync_folder(wf)  # nothing changed: nothing read, nothing written
    assert (again.created, again.updated, again.unchanged, again.pending) == (0, 0, 1, 1)

    # 4D accepts the pending session; the user of S1 gets a new token; S3 allows notifications
    write_session(folder, "S2", session("b@4d.com", B), mtime=1_700_000_100)
    write_session(folder, "S1", session("a@4d.com", C), mtime=1_700_000_100)
    write_session(folder, "S3", session("c@4d.com", A), mtime=1_700_000_100)
    done = sync.sync_folder(wf, ["S1", "S2", "S3"])
    assert _state(registry, B) == (True, None) and _state(registry, C) == (True, None)
    # A left S1 but S3 holds it now: still active
    assert _state(registry, A) == (True, None) and done.deactivated == 0

    (folder / "S3").unlink()
    done = sync.sync_folder(wf, ["S3"])
    assert (done.removed, done.deactivated) == (1, 1)
    assert _state(registry, A) == (False, "4D session removed")
    assert sync.counts[("myapp", "removed")] == 1


def test_a_device_registered_again_since_survives_its_session_file(
    registry: DeviceRegistry, folder: Path
) -> None:
    sync, wf = _sync(registry, folder)
    write_session(folder, "S1", session("a@4d.com", A), mtime=1_700_000_000)
    sync.sync_folder(wf)
    registry.register("myapp", A, email="a@4d.com")  # the app registered through the API, now
    (folder / "S1").unlink()
    assert sync.sync_folder(wf).removed == 1
    assert _state(registry, A) == (True, None)


def test_a_broken_file_is_reported_once_and_keeps_its_device(registry: DeviceRegistry, folder: Path) -> None:
    sync, wf = _sync(registry, folder)
    write_session(folder, "S1", session("a@4d.com", A), mtime=1_700_000_000)
    sync.sync_folder(wf)
    write_session(folder, "S1", '{"email": "a@4d.com", "device": {', mtime=1_700_000_100)
    write_session(folder, "S2", session("b@4d.com", B, os_name="Windows Phone"))
    done = sync.sync_folder(wf)
    assert sorted(n for n, _ in done.reported) == ["S1", "S2"]
    assert (
        "not valid JSON" in dict(done.reported)["S1"]
        and "iOS, iPadOS or Android" in dict(done.reported)["S2"]
    )
    assert _state(registry, A) == (True, None)  # half-written by 4D, maybe: the device stays
    os.utime(folder / "S1", (1_700_000_200, 1_700_000_200))  # touched, same bytes
    again = sync.sync_folder(wf)
    assert again.reported == [] and len(again.skipped) == 2
    # the broken session goes away: the device it had registered goes with it
    (folder / "S1").unlink()
    sync.sync_folder(wf)
    assert _state(registry, A) == (False, "4D session removed")


def test_two_processes_on_one_folder_do_each_change_once(database_url: str, folder: Path) -> None:
    with DeviceRegistry(database_url) as one, DeviceRegistry(database_url) as two:
        sync1, wf = _sync(one, folder)
        sync2, _ = _sync(two, folder)
        write_session(folder, "S1", session("a@4d.com", A))
        write_session(folder, "BAD", "{")
        # process 2 listed the folder before process 1 stored anything (a stale view of the rows)
        stale = sync2._rows
        sync2._rows = lambda app, prefix, names: {}  # type: ignore[method-assign]
        first = sync1.sync_folder(wf)
        second = sync2.sync_folder(wf)
        sync2._rows = stale  # type: ignore[method-assign]
        assert (first.created, len(first.reported)) == (1, 1)
        assert (second.created, second.reported) == (0, [])  # the same content: not reported again
        assert second.unchanged == 1
        (folder / "S1").unlink()
        removals = [sync1.sync_folder(wf).removed, sync2.sync_folder(wf).removed]
        assert sorted(removals) == [0, 1] and _state(one, A) == (False, "4D session removed")


def test_import_records_the_folder_and_skips_pending_sessions(
    registry: DeviceRegistry, folder: Path, tmp_path: Path
) -> None:
    from pushrelay.fourd.importer import import_mobile_apps

    write_session(folder, "S1", session("a@4d.com", A))
    write_session(folder, "S2", session("b@4d.com", B, status="pending"))
    report = import_mobile_apps(folder, registry)
    (app,) = report.apps
    assert (app.created, app.pending) == (1, 1) and _state(registry, B) is None
    assert recorded_folders(registry) == [(app.name, folder.resolve())]


def test_cli_import_watch_follows_the_folder(database_url: str, folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "pushrelay.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    write_session(folder, "S1", session("a@4d.com", A))
    log = tmp_path / "watch.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pushrelay", "import-4d", str(folder), "--watch", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            with DeviceRegistry(database_url) as registry:
                _wait(lambda: "fourd.watching" in log.read_text(), proc, log)
                assert registry.get("myappname", A) is not None
                write_session(folder, "S2", session("b@4d.com", B))
                _wait(lambda: registry.get("myappname", B) is not None, proc, log)
                (folder / "S1").unlink()
                _wait(lambda: not registry.get("myappname", A).active, proc, log)  # type: ignore[union-attr]
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(20) == 0, log.read_text()
    assert "myappname" in config.read_text()
    assert json.loads(json.dumps(log.read_text())).count("fourd.session_removed") == 1


def _wait(pred, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_the_migration_builds_the_sync_tables(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import pushrelay.models_index  # noqa: F401
    from pushrelay.db import Base, Database

    with Database(database_url) as db, db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    mine = [d for d in diffs if "fourd_" in repr(d) or "time_zone" in repr(d)]
    assert mine == []
