"""``pushrelay keys create|list|revoke``: API keys of the HTTP API."""

from __future__ import annotations

import json

import click

from ..db import Database
from ..server.apikeys import SCOPES, ApiKeyStore, KeyError_
from ._service_common import config_option, load
from .vapid import vapid


def _store(config_path: str | None) -> tuple[Database, ApiKeyStore]:
    db = Database(load(config_path).database.url)
    return db, ApiKeyStore(db.engine)


@click.group()
def keys() -> None:
    """Manage API keys (stored hashed; the key text is shown once) and make VAPID keys."""


keys.add_command(vapid)


@keys.command("create")
@config_option
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="send (backends), register (mobile apps: devices only), admin. Repeatable.",
)
@click.option("--app", "apps", multiple=True, help="Restrict the key to this app (repeatable; default: all).")
@click.option("--name", default=None, help="A label to recognise the key in `keys list`.")
def create(config_path: str | None, scopes: tuple[str, ...], apps: tuple[str, ...], name: str | None) -> None:
    """Create a key and print it once."""
    db, store = _store(config_path)
    try:
        key, text = store.create(scopes, apps, name)
    except KeyError_ as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None
    finally:
        db.dispose()
    click.echo(text)
    click.echo(
        f"key id {key.id}: scopes {','.join(key.scopes)}; apps {','.join(key.apps) or 'all'}. "
        "Store it now: it cannot be shown again.",
        err=True,
    )


@keys.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(config_path: str | None, as_json: bool) -> None:
    """List keys (ids and scopes; never the secrets)."""
    db, store = _store(config_path)
    try:
        items = store.list()
    finally:
        db.dispose()
    rows = [
        {
            "id": k.id,
            "scopes": list(k.scopes),
            "apps": list(k.apps),
            "name": k.name,
            "created_at": k.created_at.isoformat() + "Z",
            "revoked_at": k.revoked_at.isoformat() + "Z" if k.revoked_at else None,
        }
        for k in items
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
        apps = ",".join(r["apps"]) or "all apps"  # type: ignore[arg-type]
        click.echo(f"{r['id']}  {','.join(r['scopes']):<20} {apps:<20} {state}  {r['name'] or ''}")  # type: ignore[arg-type]


@keys.command("revoke")
@config_option
@click.argument("key_id")
def revoke(config_path: str | None, key_id: str) -> None:
    """Revoke a key by its id (or its full text)."""
    db, store = _store(config_path)
    try:
        ok = store.revoke(key_id)
    finally:
        db.dispose()
    if not ok:
        raise click.ClickException(f"no active key with id {key_id!r}")
    click.echo(f"revoked {key_id}")
