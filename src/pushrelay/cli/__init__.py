"""The ``pushrelay`` command line. Each sub-command lives in its own module of this package and is
imported only when it runs, so that ``pushrelay sandbox`` does not pay for FastAPI and SQLAlchemy."""

from __future__ import annotations

import importlib

import click

from .. import __version__

#: command name -> "module:attribute" in this package
COMMANDS: dict[str, str] = {
    "demo": "demo:demo",
    "sandbox": "sandbox:sandbox",
    "serve": "serve:serve",
    "worker": "worker:worker",
    "send": "send:send",
    "devices": "devices:devices",
    "import-4d": "import4d:import_4d",
    "notifications": "notifications:notifications",
    "keys": "keys:keys",
    "vapid-keys": "vapid:vapid_command",
    "apps": "apps:apps",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attr = target.split(":")
        command = getattr(importlib.import_module(f".{module}", __name__), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pushrelay")
def cli() -> None:
    """pushrelay: self-hosted push notifications for APNs, FCM and Web Push."""


def main() -> None:
    cli()
