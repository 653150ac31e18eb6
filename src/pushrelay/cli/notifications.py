"""``pushrelay notifications list`` and ``pushrelay notifications status ID``: read the outbox.

Every send leaves a record there, whichever surface it came from: the HTTP API (``api``),
``pushrelay send`` (``cli``) and ``PushNotification`` (``library``).
"""

from __future__ import annotations

import json
from datetime import UTC

import click

from ..db import Database
from ..queue.sql import SqlOutbox
from ._service_common import config_option, load


@click.group()
def notifications() -> None:
    """Inspect the notifications sent (through the API, pushrelay send or the Python library)."""


@notifications.command("list")
@config_option
@click.option("--app", "app_name", default=None, help="Only this app's notifications.")
@click.option(
    "--state",
    type=click.Choice(["scheduled", "pending", "expanding", "sending", "completed", "cancelled"]),
    default=None,
)
@click.option(
    "--surface", type=click.Choice(["api", "cli", "library"]), default=None, help="Where they came from."
)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(
    config_path: str | None,
    app_name: str | None,
    state: str | None,
    surface: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The most recent notifications first."""
    db = Database(load(config_path).database.url)
    try:
        items = SqlOutbox(db.engine).list_notifications(
            app=app_name, state=state, surface=surface, limit=limit
        )
    finally:
        db.dispose()
    if as_json:
        doc = [
            {
                "id": st.id,
                "app": st.app,
                "surface": st.surface,
                "state": st.state,
                "success": st.success,
                "counts": st.counts,
                "warnings": st.warnings,
                "errors": st.errors,
                "created_at": st.created_at.replace(tzinfo=UTC).isoformat(),
            }
            for st in items
        ]
        click.echo(json.dumps(doc, indent=2))
        return
    if not items:
        click.echo("no notifications")
        return
    for st in items:
        counts = ", ".join(f"{k}={v}" for k, v in st.counts.items() if k != "total")
        click.echo(
            f"{st.id}  {st.created_at:%Y-%m-%d %H:%M:%S}  {st.surface:<7}  app={st.app}  "
            f"state={st.state}  devices={st.counts.get('total', 0)}" + (f"  ({counts})" if counts else "")
        )


@notifications.command("status")
@config_option
@click.argument("notification_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the first 1000 deliveries).")
def status(config_path: str | None, notification_id: str, as_json: bool) -> None:
    """Show state, counts per outcome, warnings and errors of one notification."""
    db = Database(load(config_path).database.url)
    try:
        outbox = SqlOutbox(db.engine)
        st = outbox.status(notification_id)
        if st is None:
            raise click.ClickException(f"no notification with id {notification_id}")
        deliveries = list(outbox.deliveries(notification_id, limit=1000)) if as_json else []
    finally:
        db.dispose()
    if as_json:
        doc = {
            "id": st.id,
            "app": st.app,
            "surface": st.surface,
            "state": st.state,
            "success": st.success,
            "counts": st.counts,
            "warnings": st.warnings,
            "errors": st.errors,
            "deliveries": [{k: v for k, v in d.items() if k != "_id"} for d in deliveries],
        }
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    click.echo(
        f"{st.id}  app={st.app}  surface={st.surface}  state={st.state}  success={str(st.success).lower()}"
    )
    click.echo("counts: " + ", ".join(f"{k}={v}" for k, v in st.counts.items()))
    for w in st.warnings:
        click.echo(f"warning: {w}")
    for e in st.errors:
        click.echo(f"error: {e}")
    if st.state not in ("completed", "cancelled"):
        raise SystemExit(3)  # still in progress: lets scripts poll
