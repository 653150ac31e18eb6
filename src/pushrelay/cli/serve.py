"""``pushrelay serve``: the HTTP API and the delivery workers (one process by default)."""

from __future__ import annotations

import asyncio

import click

from .._exceptions import ConfigurationError
from ..logs import configure
from ._service_common import config_option, load


def run(config_path: str | None, *, host: str, port: int, api: bool, workers: bool, log_level: str) -> None:
    from ..server.runtime import run_service
    from ..server.wiring import build_service

    try:
        configure(log_level)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--log-level") from None
    config = load(config_path)
    try:
        service = build_service(config, with_worker=workers)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        asyncio.run(run_service(service, host=host, port=port, api=api, workers=workers))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        service.close()


@click.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free)."
)
@click.option("--workers-only", is_flag=True, help="Run delivery workers without the HTTP API.")
@click.option("--api-only", is_flag=True, help="Run the HTTP API without delivery workers.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    envvar="PUSHRELAY_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(
    config_path: str | None, host: str, port: int, workers_only: bool, api_only: bool, log_level: str
) -> None:
    """Run the pushrelay service: HTTP API and delivery workers."""
    if workers_only and api_only:
        raise click.UsageError("--workers-only and --api-only exclude each other")
    run(config_path, host=host, port=port, api=not workers_only, workers=not api_only, log_level=log_level)
