"""4D live sync end to end: a real ``pushrelay serve`` watching a 4D app folder, the APNs sandbox,
SQLite and PostgreSQL. Waits are generous; nothing here asserts a duration (see bench/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from pushrelay.registry import DeviceRegistry

from .conftest import BUNDLE, TEAM, Stack, wait_until

OLD, NEW, PEND, LATE, LAST = ("a1" * 32, "b2" * 32, "c3" * 32, "d4" * 32, "e5" * 32)


def ios_app_folder(root: Path) -> Path:
    folder = root / f"{TEAM}.{BUNDLE}"
    folder.mkdir(parents=True)
    manifest = {"application": {"id": BUNDLE, "name": "My App"}, "team": {"id": TEAM}}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def session(email: str, token: str, *, status: str = "accepted") -> dict[str, Any]:
    """A session file as the 4D server writes it (SPEC §2)."""
    return {
        "application": {"id": BUNDLE, "name": "My App", "version": "2.1"},
        "team": {"id": TEAM},
        "language": {"id": "fr_FR", "code": "fr", "region": "FR"},
        "email": email,
        "device": {"description": "iPhone 15", "version": "17.4", "id": "D", "os": "iOS", "token": token},
        "session": {"id": "S1", "ip": "192.0.2.1"},
        "status": status,
        "token": "eyJhbGciOi.auth-token-not-a-push-token",
    }


def write_session(folder: Path, name: str, data: dict[str, Any] | str) -> None:
    # written aside then renamed, as a careful writer does: the watcher never sees half a file
    tmp = folder / f".{name}.tmp"
    tmp.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    tmp.replace(folder / name)


def _live_config(stack: Stack, folder: Path) -> None:
    sb = stack.sandbox
    stack.config.write_text(
        f'[database]\nurl = "{stack.db_url}"\n\n'
        f'[apps.myapp]\nfourd_folder = "{folder}"\n'
        f'[apps.myapp.apns]\nendpoint = "{sb.url}"\nca_file = "{sb.ca_file}"\n'
    )


def _state(registry: DeviceRegistry, token: str) -> tuple[bool, str | None] | None:
    d = registry.get("myapp", token)
    return None if d is None else (d.active, d.retired_reason)


def _skip_reports(stack: Stack, name: str) -> int:
    lines = stack.service.log.read_text().splitlines()
    return sum(1 for line in lines if "fourd.session_skipped" in line and name in line)


def test_a_running_service_follows_the_4d_folder(stack: Stack, tmp_path: Path) -> None:
    folder = ios_app_folder(tmp_path / "MobileApps")
    stack.sandbox.create_key(TEAM, "ABC123DEFG", folder)
    write_session(folder, "S-OLD", session("old@4d.com", OLD))  # there before the service starts
    _live_config(stack, folder)
    registry = DeviceRegistry(stack.db_url)
    try:
        stack.service.start()
        wait_until(lambda: _state(registry, OLD) == (True, None), 20, "the initial pass")

        # a user signs in while the service runs: reachable within seconds, by e-mail
        write_session(folder, "S-NEW", session("new@4d.com", NEW))
        wait_until(lambda: _state(registry, NEW) == (True, None), 20, "the new session")
        with stack.client(stack.sender) as snd:
            r = snd.post(
                "/v1/notifications",
                params={"wait": 10},
                json={
                    "app": "myapp",
                    "notification": {"title": "Hi"},
                    "recipients": {"emails": ["new@4d.com"]},
                },
            )
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True and [d["token"] for d in r.json()["deliveries"]] == [NEW]
        assert len(stack.sandbox.received(NEW)) == 1

        # a pending session is not used; a broken file is reported once and skipped
        write_session(folder, "S-PEND", session("pend@4d.com", PEND, status="pending"))
        write_session(folder, "S-BROKEN", '{"email": "b@4d.com", "device": {')
        wait_until(lambda: _skip_reports(stack, "S-BROKEN") == 1, 20, "the broken file's report")
        assert _state(registry, PEND) is None
        write_session(folder, "S-PEND", session("pend@4d.com", PEND, status="accepted"))
        wait_until(lambda: _state(registry, PEND) == (True, None), 20, "the accepted session")

        # the session is dropped: its device is deactivated
        (folder / "S-OLD").unlink()
        wait_until(lambda: _state(registry, OLD) == (False, "4D session removed"), 20, "the removal")

        # the broken file rewritten as is: not reported again (a later change proves it was seen)
        write_session(folder, "S-BROKEN", '{"email": "b@4d.com", "device": {')
        write_session(folder, "S-LAST", session("last@4d.com", LAST))
        wait_until(lambda: _state(registry, LAST) == (True, None), 20, "the last session")
        assert _skip_reports(stack, "S-BROKEN") == 1
        metrics = httpx.get(f"{stack.service.url}/metrics").text
        assert 'pushrelay_fourd_session_files_total{app="myapp",result="broken"} 1.0' in metrics
        assert 'pushrelay_fourd_session_files_total{app="myapp",result="removed"} 1.0' in metrics
        assert stack.service.stop() == 0

        # while pushrelay is down, a session goes and one comes: a restart catches up
        (folder / "S-NEW").unlink()
        write_session(folder, "S-LATE", session("late@4d.com", LATE))
        stack.service.start()
        wait_until(lambda: _state(registry, LATE) == (True, None), 20, "the session written while down")
        wait_until(lambda: _state(registry, NEW) == (False, "4D session removed"), 20, "the catch-up removal")
        assert _state(registry, PEND) == (True, None) and _state(registry, LAST) == (True, None)
        assert _skip_reports(stack, "S-BROKEN") == 1  # already reported, by the first process
        listed = stack.cli("devices", "list", "--app", "myapp", "--json")
        assert listed.exit_code == 0, listed.output
        active = {d["email"] for d in json.loads(listed.stdout) if d["active"]}
        assert active == {"pend@4d.com", "last@4d.com", "late@4d.com"}
    finally:
        registry.close()
