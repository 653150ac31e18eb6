"""``pushrelay apps list|pause|resume``: the apps of the service and their paused state.

An app is paused when a provider refuses its configuration (a revoked or unknown key, a topic the
key may not push to): its deliveries are kept, not sent, until it is resumed. A restart with
changed credentials resumes it by itself; ``apps resume`` is for fixes made at the provider.
"""

from __future__ import annotations

import click

from ..db import Database
from ..queue.interface import AppPause
from ..queue.sql import SqlOutbox
from ..webhooks.store import WebhookEventStore
from ._common import print_json
from ._service_common import config_option, load

_OPERATOR = "operator"


@click.group()
def apps() -> None:
    """List apps, pause or resume their deliveries."""


def _since(pause: AppPause) -> str:
    return pause.paused_at.isoformat(timespec="seconds") + "Z"


@apps.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_apps(config_path: str | None, as_json: bool) -> None:
    """Configured apps, and which are paused (and why)."""
    config = load(config_path)
    db = Database(config.database.url)
    try:
        paused = {p.app: p for p in SqlOutbox(db.engine).paused_apps()}
    finally:
        db.dispose()
    names = sorted(set(config.apps) | set(paused))
    if as_json:
        print_json(
            [
                {
                    "app": name,
                    "configured": name in config.apps,
                    "paused": name in paused,
                    **(
                        {"reason": p.reason, "platform": p.platform, "since": _since(p), "by": p.paused_by}
                        if (p := paused.get(name))
                        else {}
                    ),
                }
                for name in names
            ]
        )
        return
    for name in names:
        p = paused.get(name)
        state = f"PAUSED since {_since(p)}: {p.reason} (by {p.paused_by})" if p else "sending"
        note = "" if name in config.apps else "  [not in the configuration]"
        click.echo(f"{name}  {state}{note}")


@apps.command("pause")
@config_option
@click.argument("app")
@click.option("--reason", default="paused by an operator", show_default=True, help="Shown in /readyz.")
def pause(config_path: str | None, app: str, reason: str) -> None:
    """Stop sending for APP; its deliveries wait (until they expire) for `apps resume`."""
    config = load(config_path)
    if app not in config.apps:
        raise click.ClickException(f"no app {app!r} in {config.where} (configured: {', '.join(config.apps)})")
    db = Database(config.database.url)
    try:
        created = SqlOutbox(db.engine).pause(app, reason, platform=None, by=_OPERATOR, fingerprint=None)
    finally:
        db.dispose()
    click.echo(f"{app} paused" if created else f"{app} was already paused")


@apps.command("resume")
@config_option
@click.argument("app")
def resume(config_path: str | None, app: str) -> None:
    """Send again for APP: its kept deliveries are due at once."""
    config = load(config_path)
    db = Database(config.database.url)
    try:
        resumed = SqlOutbox(db.engine).resume(app)
        hooked = config.apps.get(app)
        if resumed is not None and hooked is not None and hooked.webhook_url:
            WebhookEventStore(db.engine).add([(app, "app.resumed", {"deliveries": resumed})])
    finally:
        db.dispose()
    if resumed is None:
        click.echo(f"{app} was not paused")
        return
    click.echo(f"{app} resumed: {resumed} kept deliveries are due now")
