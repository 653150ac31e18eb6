"""The ``pushrelay`` command line. Each sub-command lives in its own module of this package."""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pushrelay")
def cli() -> None:
    """pushrelay: self-hosted push notifications for APNs, FCM and Web Push."""


def main() -> None:
    cli()
from .serve import serve as _serve; cli.add_command(_serve)  # noqa: E402, E702, I001
from .worker import worker as _worker; cli.add_command(_worker)  # noqa: E402, E702, I001
from .keys import keys as _keys; cli.add_command(_keys)  # noqa: E402, E702, I001
from .notifications import notifications as _notifications; cli.add_command(_notifications)  # noqa: E402, E702, I001
from .vapid import vapid_command as _vapid; cli.add_command(_vapid)  # noqa: E402, E702, I001
from .devices import devices as _devices; cli.add_command(_devices)  # noqa: E402, E702, I001
from .send import send as _send; cli.add_command(_send)  # noqa: E402, E702, I001
from .import4d import import_4d as _import_4d; cli.add_command(_import_4d)  # noqa: E402, E702, I001
from .sandbox import sandbox as _sandbox; cli.add_command(_sandbox)  # noqa: E402, E702, I001
from .demo import demo as _demo; cli.add_command(_demo)  # noqa: E402, E702, I001
