"""``pushrelay notifications status ID``: read a notification from the outbox."""

from __future__ import annotations

import json

import click

from ..db import Database
from ..queue.sql import SqlOutbox
from ._service_common import config_option, load


@click.group()
def notifications() -> None:
    """Inspect notifications accepted by the service."""


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
            "state": st.state,
            "success": st.success,
            "counts": st.counts,
            "warnings": st.warnings,
            "errors": st.errors,
            "deliveries": [{k: v for k, v in d.items() if k != "_id"} for d in deliveries],
        }
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    click.echo(f"{st.id}  app={st.app}  state={st.state}  success={str(st.success).lower()}")
    click.echo("counts: " + ", ".join(f"{k}={v}" for k, v in st.counts.items()))
    for w in st.warnings:
        click.echo(f"warning: {w}")
    for e in st.errors:
        click.echo(f"error: {e}")
    if st.state not in ("completed", "cancelled"):
        raise SystemExit(3)  # still in progress: lets scripts poll
