"""Helpers shared by ``devices``, ``send`` and ``import-4d``: loading the configuration, opening
the registry, and turning pushrelay's errors into one clear line on stderr (no traceback)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import click
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from .._exceptions import ConfigurationError, PushRelayError
from ..config import Config, load_config
from ..registry import DeviceRegistry

P = ParamSpec("P")
R = TypeVar("R")

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Configuration file (default: $PUSHRELAY_CONFIG, then ./pushrelay.toml).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")


def clean_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Report pushrelay and database errors as ``Error: ...`` on stderr with exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PushRelayError as exc:
            raise click.ClickException(str(exc)) from None
        except DBAPIError as exc:
            lines = str(exc.orig).strip().splitlines()
            detail = lines[0] if lines else type(exc.orig).__name__
            raise click.ClickException(f"database error: {detail}") from None
        except SQLAlchemyError as exc:
            raise click.ClickException(f"database error: {exc}") from None

    return wrapper


def load(config_path: str | None) -> Config:
    return load_config(config_path)


def open_registry(config: Config) -> DeviceRegistry:
    return DeviceRegistry(config.database.url)


def app_name(config: Config, ref: str) -> str:
    """The registry name of ``--app``: a configured app (by any of its identifiers) or, when the
    configuration has no such app, the text itself (devices of apps used through a 4D auth object
    are registered under the bundle id)."""
    try:
        return config.app(ref).name
    except ConfigurationError:
        return ref


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks", "": "days"}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``, ``45s``; a bare number is days."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise click.BadParameter(f"expected a duration like 90d, 12h, 30m or 2w, got {text!r}")
    value = float(match.group(1))
    if value <= 0:
        raise click.BadParameter("the duration must be positive")
    return timedelta(**{_UNITS[match.group(2)]: value})


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
