"""``pushrelay devices add|list|remove|prune``: the device registry from the command line."""

from __future__ import annotations

from datetime import timedelta

import click

from ..registry import DeviceRecord
from ._common import (
    app_name,
    clean_errors,
    config_option,
    json_option,
    load,
    open_registry,
    parse_duration,
    print_json,
)


@click.group()
def devices() -> None:
    """Register, list and prune the devices that notifications are sent to."""


@devices.command("add")
@config_option
@click.option("--app", "app_ref", required=True, help="App name, bundle id or TEAMID.bundle.id.")
@click.option("--token", required=True, help="APNs hex token, FCM registration token or Web Push endpoint.")
@click.option("--platform", type=click.Choice(["ios", "android", "web"]), default="ios", show_default=True)
@click.option("--email", default=None, help="The user's e-mail address (sends to it reach this device).")
@click.option(
    "--environment",
    type=click.Choice(["production", "development"]),
    default=None,
    help="APNs environment of an iOS token (default: the app's).",
)
@click.option("--language", default=None, help="e.g. fr, es-MX: picks the notification's localization.")
@click.option("--time-zone", default=None, help="IANA zone, e.g. Europe/Paris: for local-time delivery.")
@click.option("--app-version", default=None)
@click.option("--os", "os_name", default=None, help="iOS, iPadOS, Android, or a browser name.")
@click.option("--os-version", default=None)
@click.option("--model", "device_model", default=None, help="Device model, e.g. 'iPhone 15'.")
@click.option("--simulator", is_flag=True, help="The token is an iOS simulator UDID.")
@click.option("--p256dh", default=None, help="Web Push subscription key (base64url).")
@click.option("--auth", "web_auth", default=None, help="Web Push subscription secret (base64url).")
@json_option
@clean_errors
def add(
    config_path: str | None,
    app_ref: str,
    token: str,
    platform: str,
    email: str | None,
    environment: str | None,
    language: str | None,
    time_zone: str | None,
    app_version: str | None,
    os_name: str | None,
    os_version: str | None,
    device_model: str | None,
    simulator: bool,
    p256dh: str | None,
    web_auth: str | None,
    as_json: bool,
) -> None:
    """Register a device, or update it when the token is already known (registering again also
    re-activates a retired device)."""
    config = load(config_path)
    app = config.app(app_ref)
    with open_registry(config) as registry:
        registration = registry.register(
            app.name,
            token,
            platform=platform,
            email=email,
            environment=environment,
            language=language,
            time_zone=time_zone,
            app_version=app_version,
            os=os_name,
            os_version=os_version,
            device_model=device_model,
            simulator=simulator,
            web_p256dh=p256dh,
            web_auth=web_auth,
        )
    if as_json:
        print_json({"status": registration.status, "reactivated": registration.reactivated,
                    "device": registration.device.to_dict()})  # fmt: skip
        return
    extra = " and re-activated" if registration.reactivated else ""
    click.echo(f"{registration.status}{extra}: {_describe(registration.device)}")


def _describe(d: DeviceRecord) -> str:
    state = "active" if d.active else f"retired {d.retired_at:%Y-%m-%d} ({d.retired_reason})"
    return f"{d.app} {d.platform} {d.masked_token} {d.email or '-'} [{state}]"


@devices.command("list")
@config_option
@click.option("--app", "app_ref", default=None, help="Only this app.")
@click.option("--email", default=None, help="Only this user's devices (case-insensitive).")
@click.option("--active", "active_only", is_flag=True, help="Hide retired devices.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many (newest first).")
@json_option
@clean_errors
def list_(
    config_path: str | None,
    app_ref: str | None,
    email: str | None,
    active_only: bool,
    limit: int | None,
    as_json: bool,
) -> None:
    """List devices, newest registration first. Tokens are masked unless --json is given."""
    config = load(config_path)
    app = app_name(config, app_ref) if app_ref else None
    with open_registry(config) as registry:
        found = registry.devices(app=app, email=email, include_retired=not active_only, limit=limit)
    if as_json:
        print_json([d.to_dict() for d in found])
        return
    if not found:
        click.echo("no devices", err=True)
        return
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table()
    for title in ("app", "platform", "token", "email", "os", "model", "last seen", "state"):
        table.add_column(title, no_wrap=True)  # a wrapped token or address cannot be copied
    for d in found:
        state = "active" if d.active else f"retired: {d.retired_reason}"
        os_text = " ".join(x for x in (d.os, d.os_version) if x) + (" (simulator)" if d.simulator else "")
        table.add_row(d.app, d.platform, d.masked_token, d.email or "", os_text, d.device_model or "",
                      f"{d.last_seen_at:%Y-%m-%d %H:%M}", state)  # fmt: skip
    # piped output keeps whole lines, whatever the width of the terminal it was started from
    Console(width=None if sys.stdout.isatty() else 250).print(table)


@devices.command("remove")
@config_option
@click.option("--app", "app_ref", required=True)
@click.option("--token", required=True)
@clean_errors
def remove(config_path: str | None, app_ref: str, token: str) -> None:
    """Delete one device (for example when its user signs out)."""
    config = load(config_path)
    with open_registry(config) as registry:
        removed = registry.remove(app_name(config, app_ref), token)
    if not removed:
        raise click.ClickException("no such device")
    click.echo("removed")


@devices.command("prune")
@config_option
@click.option(
    "--older-than",
    "older_than",
    required=True,
    callback=lambda _ctx, _param, value: (value, parse_duration(value)),
    help="Age: 90d, 12h, 2w... (a bare number is days).",
)
@click.option("--app", "app_ref", default=None, help="Only this app.")
@json_option
@clean_errors
def prune(
    config_path: str | None, older_than: tuple[str, timedelta], app_ref: str | None, as_json: bool
) -> None:
    """Delete devices retired, or not seen (registered), for longer than --older-than."""
    text, age = older_than
    config = load(config_path)
    with open_registry(config) as registry:
        count = registry.prune(age, app=app_name(config, app_ref) if app_ref else None)
    if as_json:
        print_json({"removed": count})
    else:
        click.echo(f"removed {count} device(s) retired or unseen for more than {text}")
