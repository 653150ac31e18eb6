"""``pushrelay worker``: delivery workers only (same as ``serve --workers-only``)."""

from __future__ import annotations

import click

from ._service_common import config_option, log_level_option
from .serve import run


@click.command()
@config_option
@log_level_option
def worker(config_path: str | None, log_level: str) -> None:
    """Run delivery workers (no HTTP API); start as many as you like on PostgreSQL."""
    run(config_path, host=None, port=0, api=False, workers=True, log_level=log_level)
