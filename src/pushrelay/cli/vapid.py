"""``pushrelay keys vapid``: make a VAPID key pair for an app's Web Push.

The public key goes into the web page (``pushManager.subscribe({applicationServerKey})``), the
private key into ``[apps.X.webpush]``. With ``--out`` the private key is written to a file readable
by its owner only and never printed.

``pushrelay vapid-keys``, the first name of this command, stays as a hidden alias (it says the new
name on stderr) so that scripts written for it keep working.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import click

from ..webpush.vapid import generate_vapid_keys

__all__ = ["vapid", "vapid_command"]


def _generate(out: Path | None, force: bool, subject: str, as_json: bool) -> None:
    pair = generate_vapid_keys()
    if out is not None:
        if out.exists() and not force:
            raise click.BadParameter(f"{out} exists; pass --force to replace it", param_hint="--out")
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pair.private_pem)
            out.chmod(0o600)
        except OSError as exc:
            raise click.BadParameter(f"cannot write {out}: {exc.strerror}", param_hint="--out") from None
        setting = f"vapid_private_key_file = {json.dumps(str(out))}"
        result: dict[str, str] = {"public_key": pair.public_key, "private_key_file": str(out)}
    else:
        setting = f'vapid_private_key = "{pair.private_key}"'
        result = {"public_key": pair.public_key, "private_key": pair.private_key}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"Public key (applicationServerKey for the web page):\n  {pair.public_key}\n")
    click.echo(
        f'Settings for pushrelay.toml:\n  [apps.<name>.webpush]\n  {setting}\n  vapid_subject = "{subject}"'
    )
    if out is None:
        click.echo("\nThe private key above is a secret: keep it out of version control.", err=True)


_OPTIONS = [
    click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write the private key (PEM) to this file instead of printing it.",
    ),
    click.option("--force", is_flag=True, help="Overwrite the --out file if it exists."),
    click.option(
        "--subject",
        default="mailto:you@example.com",
        show_default=True,
        help="Contact for the push services, used in the printed config snippet.",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text."),
]


def _vapid_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options of both names of the command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


@click.command("vapid")
@_vapid_options
def vapid(out: Path | None, force: bool, subject: str, as_json: bool) -> None:
    """Generate a VAPID key pair (Web Push) and print the public key for the web page."""
    _generate(out, force, subject, as_json)


@click.command("vapid-keys", hidden=True)
@_vapid_options
def vapid_command(out: Path | None, force: bool, subject: str, as_json: bool) -> None:
    """Renamed: `pushrelay keys vapid`."""
    click.echo("note: `pushrelay vapid-keys` is now `pushrelay keys vapid`", err=True)
    _generate(out, force, subject, as_json)
