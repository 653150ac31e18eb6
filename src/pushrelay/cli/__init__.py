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
