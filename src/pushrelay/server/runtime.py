"""Run the API (uvicorn) and/or a worker in one asyncio process, with graceful shutdown; or the
API with its workers in supervised child processes (see :mod:`.worker_processes`).

SIGTERM / SIGINT: the API stops accepting connections and finishes its requests, the worker stops
claiming, finishes or releases its chunks, the webhook sender finishes the POST it is making (what
is not sent waits in the database for the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

import uvicorn

from ..fourd.sync import FourDSync
from ..logs import event, get_logger
from .app import create_app
from .pausing import resume_changed
from .service import Service
from .worker_processes import WorkerProcesses, serve_as_child

__all__ = ["run_service"]

log = get_logger("service")


async def run_service(
    service: Service,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    api: bool = True,
    workers: bool = True,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    fourd: FourDSync | None = None,
    worker_processes: WorkerProcesses | None = None,
) -> None:
    """``fourd``: 4D folders to keep in sync with the registry while the service runs.
    ``worker_processes``: child processes that deliver for this API (``workers`` is then False)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    # before any worker claims: an app paused under credentials that have since changed is resumed
    await asyncio.to_thread(resume_changed, service.outbox, service.fingerprints)
    await service.webhooks.start()
    tasks: list[asyncio.Task[None]] = []
    side: list[asyncio.Task[None]] = []  # not awaited: their end does not end the service
    if fourd is not None and fourd.folders:
        service.metrics.registry.register(fourd)
        tasks.append(asyncio.create_task(fourd.run(stop), name="fourd-sync"))
    if workers:
        if service.worker is None:
            raise RuntimeError("this service was built without a worker")
        tasks.append(asyncio.create_task(service.worker.run(stop), name="worker"))
        # a child of `pushrelay serve`: its metrics socket and wake-ups (returns at once otherwise)
        side.append(
            asyncio.create_task(
                serve_as_child(
                    service.metrics.registry, service.worker.wake, stop, nice=service.settings.worker_nice
                ),
                name="child-channel",
            )
        )
    if worker_processes is not None:
        service.worker_wakers.append(worker_processes.wake)
        service.worker_metrics = worker_processes.sockets
        tasks.append(asyncio.create_task(worker_processes.run(stop), name="worker-processes"))
    server: uvicorn.Server | None = None
    if api:
        config = uvicorn.Config(
            create_app(service),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=10,
        )
        server = uvicorn.Server(config)
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # we handle signals
        tasks.append(asyncio.create_task(server.serve(), name="api"))
        # uvicorn exposes readiness only as a flag
        while not server.started and not tasks[-1].done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if tasks[-1].done():
            tasks[-1].result()  # startup failed (port in use...): raise it
        bound = port
        for s in server.servers:
            for sock in s.sockets:
                bound = sock.getsockname()[1]
        url = f"http://{host}:{bound}"
        event(log, logging.INFO, "api.listening", url=url)
        if on_ready is not None:
            on_ready(url)
    elif on_ready is not None:
        on_ready("")
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    if server is not None:
        server.should_exit = True
    results = await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()
    for t in side:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    await service.webhooks.stop()
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            raise r
    event(log, logging.INFO, "service.stopped")
