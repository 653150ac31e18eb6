"""``pushrelay serve``: the HTTP API and the delivery workers.

By default the workers run in ``service.worker_processes`` (1) supervised child processes, each a
``pushrelay worker`` with the same configuration: delivery never shares the API's GIL, event loop or
database pool (see :mod:`pushrelay.server.worker_processes`). ``worker_processes = 0`` keeps the
worker in the API's process.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable
from pathlib import Path

import click

from .._exceptions import ConfigurationError
from ..logs import configure
from ._service_common import config_option, load, log_level_option


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (a dependency off Windows): its event loop and transports cost
    the API about a fifth less CPU per request than asyncio's own (measured with
    ``bench/end_to_end.py``); None: asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(
    config_path: str | None,
    *,
    host: str | None,
    port: int | None,
    api: bool,
    workers: bool,
    log_level: str,
    worker_processes: int | None = None,
) -> None:
    """Run the service; ``host`` / ``port`` None: from ``[service]`` / ``PUSHRELAY_HOST`` /
    ``PUSHRELAY_PORT``, else 127.0.0.1:8080."""
    from ..fourd.sync import sync_for_config
    from ..server.runtime import run_service
    from ..server.service import ServiceSettings
    from ..server.wiring import build_service
    from ..server.worker_processes import WorkerProcesses

    try:
        configure(log_level)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--log-level") from None
    config = load(config_path)
    try:
        settings = ServiceSettings.from_config(config.service)
        children = settings.worker_processes if worker_processes is None else worker_processes
        in_children = api and workers and children > 0
        service = build_service(config, settings=settings, with_worker=workers and not in_children)
    except (ConfigurationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    service.use_config(config)
    host = host or settings.host
    port = settings.port if port is None else port
    # 4D folders are watched wherever workers run (serve, worker), not by an API-only process
    fourd = sync_for_config(config, service.registry) if workers and not in_children else None
    supervised = None
    if in_children:
        command = [sys.executable, "-m", "pushrelay", "worker", "--log-level", log_level]
        if config_path is not None:
            command += ["--config", str(Path(config_path).resolve())]
        supervised = WorkerProcesses(children, command)
    # What exists now (modules, configuration, engines: hundreds of thousands of objects) lives
    # as long as the process. Frozen, it is no longer walked by every full collection, which the
    # objects of a large send trigger every few seconds: that walk was ~10 % of the worker's CPU.
    gc.collect()
    gc.freeze()
    # A young collection every 700 allocations ran ~20 times per chunk of 500 deliveries, each
    # walking the chunk's live objects again: every 10,000, the collector's time per delivery is
    # less than half (bench/end_to_end.py, 50k devices); the garbage waiting meanwhile is a few MB.
    gc.set_threshold(10_000, 10, 10)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(
                run_service(
                    service,
                    host=host,
                    port=port,
                    api=api,
                    workers=workers and not in_children,
                    fourd=fourd,
                    worker_processes=supervised,
                )
            )
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        service.close()


@click.command()
@config_option
@click.option("--host", default=None, help="Address to listen on [default: service.host, else 127.0.0.1].")
@click.option(
    "--port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Port, 0 for any free one [default: service.port, else 8080].",
)
@click.option("--workers-only", is_flag=True, help="Run delivery workers without the HTTP API.")
@click.option("--api-only", is_flag=True, help="Run the HTTP API without delivery workers.")
@click.option(
    "--worker-processes",
    default=None,
    type=click.IntRange(0, 64),
    help="Delivery worker child processes; 0: the worker runs in the API's process "
    "[default: service.worker_processes, else 1].",
)
@log_level_option
def serve(
    config_path: str | None,
    host: str | None,
    port: int | None,
    workers_only: bool,
    api_only: bool,
    worker_processes: int | None,
    log_level: str,
) -> None:
    """Run the pushrelay service: HTTP API and delivery workers."""
    if workers_only and api_only:
        raise click.UsageError("--workers-only and --api-only exclude each other")
    run(
        config_path,
        host=host,
        port=port,
        api=not workers_only,
        workers=not api_only,
        log_level=log_level,
        worker_processes=worker_processes,
    )
