"""Builds a 4D ``MobileApps`` folder in the documented format (SPEC §2), for tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TEAM = "TEAM123456"
BUNDLE = "com.sample.myappname"


def session(
    email: str | None,
    token: str | None,
    *,
    os_name: str | None = "iOS",
    simulator: bool = False,
    description: str = "iPhone 15",
    status: str = "accepted",
    bundle: str = BUNDLE,
) -> dict[str, Any]:
    device: dict[str, Any] = {
        "description": description,
        "version": "17.4",
        "id": "DEV-1",
        "simulator": simulator,
    }
    if os_name is not None:
        device["os"] = os_name
    if token is not None:
        device["token"] = token
    return {
        "application": {"id": bundle, "name": "My App", "version": "2.1"},
        "team": {"id": TEAM},
        "language": {"id": "fr_FR", "code": "fr", "region": "FR"},
        "email": email,
        "device": device,
        "session": {"id": "S1", "ip": "192.0.2.1"},
        "status": status,
        "token": "eyJhbGciOi.auth-token-not-a-push-token",
    }


def write_session(folder: Path, name: str, data: dict[str, Any] | str, *, mtime: float | None = None) -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def ios_app_folder(root: Path, *, with_key: bool = True) -> Path:
    folder = root / f"{TEAM}.{BUNDLE}"
    folder.mkdir(parents=True)
    manifest = {"application": {"id": BUNDLE, "name": "My App"}, "team": {"id": TEAM}, "info": {"v": 1}}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    if with_key:
        (folder / "AuthKey_ABC123DEFG.p8").write_text("-----BEGIN PRIVATE KEY-----\n...\n", encoding="utf-8")
    return folder


def android_app_folder(root: Path, bundle: str = BUNDLE) -> Path:
    folder = root / bundle
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(
        json.dumps({"application": {"id": bundle, "name": "My App"}, "team": {}}), encoding="utf-8"
    )
    (folder / "google-services.json").write_text("{}", encoding="utf-8")
    return folder
