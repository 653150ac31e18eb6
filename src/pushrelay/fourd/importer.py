"""Importing a 4D ``MobileApps`` folder: apps into the configuration, sessions into the registry.

For each app folder:

- the app is matched to a configured app with the same bundle id; otherwise a new app is
  proposed, named after 4D's short name (last bundle id component), declared with
  ``fourd_folder`` so that bundle id, team and ``.p8`` key keep coming from the 4D folder. The iOS
  and Android folders of one bundle id become one pushrelay app;
- every session file becomes a device of that app, seen at the file's modification time (through
  :class:`~.sync.FourDSync`, so a later ``pushrelay serve`` knows which files it has seen; a
  ``pending`` session is not used until 4D accepts it);
- the folder is recorded, so ``pushrelay serve`` / ``worker`` keep watching it.

A file that cannot be read is skipped and reported; the import goes on. Importing the same folder
twice changes nothing (the registry keeps newer registrations; see ``DeviceInfo.seen_at``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.model import Config
from ..config.writer import render_app_table
from ..registry.devices import DeviceRegistry
from ..registry.tokens import InvalidDeviceError
from .folder import FourDApp, FourDFolderError, find_app_folders, read_app_folder
from .sessions import SessionFileError, iter_session_files, read_session
from .sync import FourDSync, WatchedFolder, record_folder

__all__ = ["ImportReport", "ImportedApp", "import_mobile_apps"]

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class ImportedApp:
    name: str
    bundle_id: str
    folder: Path
    platform: str
    team_id: str | None = None
    auth_key: Path | None = None
    new: bool = False
    """True when the app is not in the configuration yet (see :attr:`config_table`)."""
    config_table: str | None = None
    """The ``[apps.NAME]`` TOML to add to the configuration, for a new app."""
    importable: int = 0
    """Session files that hold a usable device (imported, or would be in a dry run)."""
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    without_token: int = 0
    pending: int = 0
    """Sessions 4D has not accepted yet (imported once accepted, by ``serve`` or a new import)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(file name, reason)`` of each session file that was not imported."""
    notes: list[tuple[str, str]] = field(default_factory=list)
    """``(file name, note)``: imported, with a remark (e.g. e-mail field not an address)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bundle_id": self.bundle_id,
            "folder": str(self.folder),
            "platform": self.platform,
            "team_id": self.team_id,
            "auth_key": str(self.auth_key) if self.auth_key else None,
            "new": self.new,
            "importable": self.importable,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "without_token": self.without_token,
            "pending": self.pending,
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "notes": [{"file": f, "note": n} for f, n in self.notes],
        }


@dataclass
class ImportReport:
    apps: list[ImportedApp] = field(default_factory=list)
    failed_folders: list[tuple[str, str]] = field(default_factory=list)
    """``(folder, reason)`` of app folders that could not be read at all."""

    @property
    def new_config_tables(self) -> dict[str, str]:
        """Rendered ``[apps.NAME]`` tables of the apps to add to the configuration, by name."""
        return {a.name: a.config_table for a in self.apps if a.new and a.config_table}

    @property
    def totals(self) -> dict[str, int]:
        return {
            key: sum(getattr(a, key) for a in self.apps)
            for key in ("importable", "created", "updated", "unchanged", "without_token", "pending")
        } | {"skipped": sum(len(a.skipped) for a in self.apps)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "apps": [a.to_dict() for a in self.apps],
            "failed_folders": [{"folder": f, "reason": r} for f, r in self.failed_folders],
            "totals": self.totals,
        }


def _app_name(app: FourDApp, taken: set[str]) -> str:
    base = _NAME_CHARS.sub("-", app.short_name).strip("-_").lower() or "app"
    if base not in taken:
        return base
    full = _NAME_CHARS.sub("-", app.bundle_id.replace(".", "-")).strip("-_").lower()
    name, n = full, 2
    while name in taken:
        name, n = f"{full}-{n}", n + 1
    return name


def _plan_apps(folders: list[FourDApp], config: Config | None) -> dict[Path, ImportedApp]:
    """Decide the pushrelay app of each 4D folder (configured by bundle id, or new)."""
    configured = {a.bundle_id: a.name for a in config.apps.values()} if config else {}
    taken = set(config.apps) if config else set()
    by_bundle: dict[str, str] = {}
    planned: dict[Path, ImportedApp] = {}
    # iOS folders first: when both platforms exist, the new app is declared from the iOS folder.
    for fourd in sorted(folders, key=lambda f: (f.platform != "ios", f.folder.name)):
        name = configured.get(fourd.bundle_id) or by_bundle.get(fourd.bundle_id)
        new = name is None and fourd.bundle_id not in by_bundle
        if name is None:
            name = _app_name(fourd, taken)
            taken.add(name)
        by_bundle.setdefault(fourd.bundle_id, name)
        table = None
        if new:
            if fourd.platform == "ios":
                values: dict[str, str | bool] = {"fourd_folder": str(fourd.folder)}
                comment = f"imported from 4D: {fourd.name or fourd.bundle_id}"
                if fourd.auth_key is None:
                    comment += f"\nno AuthKey_<KEYID>.p8 in {fourd.folder}: add [apps.{name}.apns] key_file"
            else:
                values = {"bundle_id": fourd.bundle_id}
                comment = (
                    f"imported from 4D: {fourd.name or fourd.bundle_id} (Android)\n"
                    f"FCM needs a service-account key: add an [apps.{name}.fcm] table "
                    "(google-services.json is not one)"
                )
            table = render_app_table(name, values, comment)
        planned[fourd.folder] = ImportedApp(
            name=name,
            bundle_id=fourd.bundle_id,
            folder=fourd.folder,
            platform=fourd.platform,
            team_id=fourd.team_id,
            auth_key=fourd.auth_key,
            new=new,
            config_table=table,
        )
    return planned


def import_mobile_apps(
    path: str | Path,
    registry: DeviceRegistry | None,
    *,
    config: Config | None = None,
    batch_size: int = 500,
) -> ImportReport:
    """Import the app folder(s) at ``path`` (see the module docstring).

    With ``registry=None`` nothing is written: the report tells what an import would do with the
    apps, and lists the session files that cannot be read (a dry run).
    Raises :class:`FourDFolderError` only when ``path`` holds no app folder at all.
    """
    report = ImportReport()
    apps: list[FourDApp] = []
    for folder in find_app_folders(path):
        try:
            apps.append(read_app_folder(folder))
        except FourDFolderError as exc:
            report.failed_folders.append((str(folder), str(exc)))
    planned = _plan_apps(apps, config)
    for fourd in apps:
        imported = planned[fourd.folder]
        report.apps.append(imported)
        if registry is None:
            _import_sessions(fourd, imported, None, batch_size)
        else:
            _sync_sessions(fourd, imported, registry)
    return report


def _sync_sessions(fourd: FourDApp, imported: ImportedApp, registry: DeviceRegistry) -> None:
    watched = WatchedFolder(imported.name, fourd.folder, fourd.bundle_id)
    done = FourDSync(registry, [watched]).sync_folder(watched)
    record_folder(registry, imported.name, fourd.folder)
    imported.created, imported.updated, imported.unchanged = done.created, done.updated, done.unchanged
    imported.importable = done.registered
    imported.without_token, imported.pending = done.without_token, done.pending
    imported.skipped.extend(done.skipped)
    imported.notes.extend(done.notes)


def _import_sessions(
    fourd: FourDApp, imported: ImportedApp, registry: DeviceRegistry | None, batch_size: int
) -> None:
    batch: list[tuple[str, Any]] = []

    def flush() -> None:
        if registry is None or not batch:
            batch.clear()
            return
        infos = [info for _, info in batch]
        try:
            results = registry.register_many(infos)
        except InvalidDeviceError:
            # validated per session below, so this is rare (e.g. a too-long field): retry one by one
            # to skip only the culprit
            results = []
            for name, info in batch:
                try:
                    results.extend(registry.register_many([info]))
                except InvalidDeviceError as exc:
                    imported.skipped.append((name, f"{exc.field}: {exc}"))
        for result in results:
            setattr(imported, result.status, getattr(imported, result.status) + 1)
        batch.clear()

    for file in iter_session_files(fourd.folder):
        try:
            session = read_session(file)
        except SessionFileError as exc:
            imported.skipped.append((file.name, exc.reason))
            continue
        if session.bundle_id and session.bundle_id != fourd.bundle_id:
            imported.skipped.append((file.name, f"belongs to app {session.bundle_id}, not {fourd.bundle_id}"))
            continue
        if session.token is None:
            imported.without_token += 1
            continue
        if session.pending:
            imported.pending += 1
            continue
        info = session.device_info(imported.name)
        try:
            info = info.validated()
        except InvalidDeviceError as exc:
            imported.skipped.append((file.name, f"{exc.field}: {exc}"))
            continue
        imported.notes.extend((file.name, note) for note in session.notes)
        imported.importable += 1
        batch.append((file.name, info))
        if len(batch) >= batch_size:
            flush()
    flush()
