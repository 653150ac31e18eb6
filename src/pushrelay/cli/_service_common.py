"""Options and helpers shared by the service commands (serve, worker, keys, notifications, apps)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._exceptions import ConfigurationError
from ..config import Config, load_config
from ._common import config_option

__all__ = ["config_option", "load", "log_level_option"]

F = TypeVar("F", bound=Callable[..., Any])

log_level_option = click.option(
    "--log-level",
    default="info",
    show_default=True,
    envvar="PUSHRELAY_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
)


def load(config_path: str | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
