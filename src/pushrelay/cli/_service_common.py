"""Options and helpers shared by the service commands (serve, worker, keys, notifications)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._exceptions import ConfigurationError
from ..config import Config, load_config

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Configuration file (default: $PUSHRELAY_CONFIG, then ./pushrelay.toml).",
)


def load(config_path: str | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
