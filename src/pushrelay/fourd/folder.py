"""Reading a 4D ``MobileApps`` folder: which apps it holds and their credentials.

Layout (4D Mobile App Server, SPEC §2)::

    MobileApps/
      TEAM123456.com.sample.myappname/     an iOS app: <teamId>.<bundleId>
        manifest.json                      {"application": {"id", "name"}, "team": {"id"}, "info": {...}}
        AuthKey_ABC123DEFG.p8              the APNs signing key (key id in the file name)
        7C1A...E0                          one file without extension per session (see sessions.py)
      com.sample.myappname/                an Android app: <bundleId>
        manifest.json
        google-services.json

Only file names and manifest fields are read here; keys are loaded by :mod:`pushrelay.apns`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["FourDApp", "FourDFolderError", "find_app_folders", "read_app_folder"]

MANIFEST = "manifest.json"
_AUTH_KEY = re.compile(r"AuthKey_([A-Za-z0-9]+)\.p8")
_TEAM_ID = re.compile(r"[A-Z0-9]{10}")
_BUNDLE_ID = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


class FourDFolderError(ConfigurationError):
    """A 4D app folder or its manifest cannot be used; ``file`` names it."""


@dataclass(frozen=True, slots=True)
class FourDApp:
    """One app folder of ``MobileApps``."""

    folder: Path
    bundle_id: str
    team_id: str | None
    name: str | None
    """``application.name`` from the manifest (display name, may contain spaces)."""
    auth_key: Path | None
    """The ``AuthKey_<KEYID>.p8`` found in the folder (newest when there are several)."""
    google_services: Path | None

    @property
    def platform(self) -> str:
        """``"ios"`` for a ``<teamId>.<bundleId>`` folder or one holding a ``.p8``, else ``"android"``."""
        if self.team_id and self.folder.name == f"{self.team_id}.{self.bundle_id}":
            return "ios"
        if self.auth_key is not None:
            return "ios"
        return "android" if self.google_services is not None else "ios"

    @property
    def app_id(self) -> str | None:
        """``<teamId>.<bundleId>`` as 4D spells an iOS app, when the team is known."""
        return f"{self.team_id}.{self.bundle_id}" if self.team_id else None

    @property
    def short_name(self) -> str:
        """What 4D accepts as the "app name": the last component of the bundle id."""
        return self.bundle_id.rsplit(".", 1)[-1]


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FourDFolderError(
            f"{folder} has no {MANIFEST}: not a 4D app folder", field="manifest", file=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FourDFolderError(f"cannot read {path}: {exc}", field="manifest", file=str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FourDFolderError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}",
            field="manifest",
            file=str(path),
        ) from None
    if not isinstance(data, dict):
        raise FourDFolderError(f"{path} must hold a JSON object", field="manifest", file=str(path))
    return data


def _text_at(data: dict[str, Any], section: str, key: str, path: Path) -> str | None:
    part = data.get(section)
    if part is None:
        return None
    if not isinstance(part, dict):
        raise FourDFolderError(f"{path}: {section} must be an object", field=f"{section}", file=str(path))
    value = part.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FourDFolderError(
            f"{path}: {section}.{key} must be a text, got {type(value).__name__}",
            field=f"{section}.{key}",
            file=str(path),
        )
    return value.strip()


def read_app_folder(folder: str | Path) -> FourDApp:
    """Read one app folder. Raises :class:`FourDFolderError` naming the file at fault."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise FourDFolderError(f"{folder} is not a folder", field="fourd_folder", file=str(folder))
    manifest = _read_manifest(folder)
    path = folder / MANIFEST
    team_id = _text_at(manifest, "team", "id", path)
    bundle_id = _text_at(manifest, "application", "id", path)
    name = _text_at(manifest, "application", "name", path)
    if bundle_id is None:
        # older manifests: the folder name is the app id, <teamId>.<bundleId> or <bundleId>
        bundle_id = folder.name
        if team_id and bundle_id.startswith(team_id + "."):
            bundle_id = bundle_id[len(team_id) + 1 :]
    if team_id is not None and not _TEAM_ID.fullmatch(team_id):
        raise FourDFolderError(
            f"{path}: team.id {team_id!r} is not an Apple Team ID (10 upper-case letters and digits)",
            field="team.id",
            file=str(path),
        )
    if not _BUNDLE_ID.fullmatch(bundle_id):
        raise FourDFolderError(
            f"{path}: application.id {bundle_id!r} is not a bundle id (like com.sample.myappname)",
            field="application.id",
            file=str(path),
        )
    keys = sorted(
        (p for p in folder.iterdir() if p.is_file() and _AUTH_KEY.fullmatch(p.name)),
        key=lambda p: (p.stat().st_mtime, p.name),
    )
    google = folder / "google-services.json"
    return FourDApp(
        folder=folder,
        bundle_id=bundle_id,
        team_id=team_id,
        name=name,
        auth_key=keys[-1] if keys else None,
        google_services=google if google.is_file() else None,
    )


def find_app_folders(path: str | Path) -> list[Path]:
    """The app folders under ``path``: ``path`` itself when it holds a manifest (one app folder),
    else each sub-folder that does (a ``MobileApps`` folder), sorted by name."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise FourDFolderError(f"{root} is not a folder", field="path", file=str(root))
    if (root / MANIFEST).is_file():
        return [root]
    folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())
    if not folders:
        raise FourDFolderError(
            f"{root} holds no 4D app folder (a sub-folder with a {MANIFEST}); "
            "give the MobileApps folder next to the 4D data file, or one app folder inside it",
            field="path",
            file=str(root),
        )
    return folders
