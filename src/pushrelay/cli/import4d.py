"""``pushrelay import-4d PATH``: bring a 4D ``MobileApps`` folder (or one app folder) over.

Session files become devices (``--watch``: and keep following the folder); apps not configured yet are appended to the configuration file
(``--config``, ``$PUSHRELAY_CONFIG``, else ``./pushrelay.toml``, created if needed) as
``[apps.NAME] fourd_folder = ...``, so that credentials keep coming from the 4D folder. Unreadable
session files are listed and skipped. Running it again changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from ..config import DEFAULT_CONFIG_NAME, Config
from ..config.writer import append_apps
from ..fourd.importer import ImportReport, import_mobile_apps
from ..fourd.sync import FourDSync, WatchedFolder
from ..logs import configure
from ._common import clean_errors, config_option, json_option, load, open_registry, print_json


@click.command("import-4d")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@config_option
@click.option("--dry-run", is_flag=True, help="Read everything, write nothing; show what would change.")
@click.option(
    "--watch",
    is_flag=True,
    help="After the import, keep following the folder (new, changed, removed sessions) until Ctrl-C.",
)
@json_option
@clean_errors
def import_4d(path: Path, config_path: str | None, dry_run: bool, watch: bool, as_json: bool) -> None:
    """Import the 4D MobileApps folder (or one app folder) at PATH."""
    if watch and dry_run:
        raise click.UsageError("--watch and --dry-run exclude each other")
    config = load(config_path)
    target = config.source or Path.cwd() / DEFAULT_CONFIG_NAME
    if dry_run:
        report = import_mobile_apps(path, None, config=config)
    else:
        with open_registry(config) as registry:
            report = import_mobile_apps(path, registry, config=config)
        append_apps(target, report.new_config_tables)
    if as_json:
        data = report.to_dict()
        data["config_file"] = str(target)
        data["config_added"] = sorted(report.new_config_tables)
        data["dry_run"] = dry_run
        print_json(data)
    else:
        _report(report, target, dry_run)
    if not report.apps:
        raise SystemExit(1)
    if watch:
        _watch(config, report)


def _watch(config: Config, report: ImportReport) -> None:
    """Follow the imported folders until SIGINT / SIGTERM; each change is logged on stderr."""
    configure("info")
    folders = [WatchedFolder(a.name, a.folder, a.bundle_id) for a in report.apps]
    click.echo(f"watching {len(folders)} folder(s); Ctrl-C to stop", err=True)
    with open_registry(config) as registry:
        sync = FourDSync(registry, folders)

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            await sync.run(stop)

        asyncio.run(main())


def _report(report: ImportReport, config_file: Path, dry_run: bool) -> None:
    for app in report.apps:
        if dry_run:
            counts = f"{app.importable} device(s) to import"
        else:
            counts = f"{app.created} created, {app.updated} updated, {app.unchanged} unchanged"
        if app.without_token:
            counts += f", {app.without_token} session(s) without push token"
        if app.pending:
            counts += f", {app.pending} pending session(s) (used once 4D accepts them)"
        if app.skipped:
            counts += f", {len(app.skipped)} file(s) skipped"
        click.echo(f"{app.name} ({app.bundle_id}, {app.platform}, {app.folder.name}): {counts}")
        for name, reason in app.skipped:
            click.echo(f"warning: {app.folder.name}/{name} skipped: {reason}", err=True)
        for name, note in app.notes:
            click.echo(f"note: {app.folder.name}/{name}: {note}", err=True)
        if app.platform == "ios" and app.auth_key is None:
            click.echo(f"warning: no AuthKey_<KEYID>.p8 in {app.folder}: iOS sends need one", err=True)
    for folder, reason in report.failed_folders:
        click.echo(f"warning: {folder} not imported: {reason}", err=True)
    tables = report.new_config_tables
    if tables:
        verb = "would add" if dry_run else "added"
        click.echo(f"{verb} {len(tables)} app(s) to {config_file}:")
        for table in tables.values():
            click.echo("  " + table.strip().replace("\n", "\n  "))
