"""``pushrelay serve``'s delivery workers in supervised child processes.

Why: in one process, the API and the worker share the GIL and the event loop. A py-spy profile at
500 ``POST /v1/notifications`` per second showed the API's requests waiting behind delivery (and
the worker starved while the API was busy): p50 38 ms, p99 190 ms on SQLite and PostgreSQL, where
the API alone answered in 2 ms. Each child is an ordinary ``pushrelay worker`` with the same
configuration file and environment, so it has its own database pool as well: delivery never takes
the API's connections.

The parent (the API process):

- starts ``service.worker_processes`` children and restarts one that exits while the service runs
  (after 1 s, doubling up to 30 s while it keeps dying within a minute of its start); what the
  dead child held is claimable again when its leases run out, as after any crash;
- on SIGTERM, stops the API and sends SIGTERM to every child, which finishes or releases its
  chunks (``shutdown_grace``); a child still running 15 s later is killed;
- writes one byte to a child's stdin when a notification was accepted, which wakes its idle
  worker (at most every 50 ms; on PostgreSQL ``LISTEN``/``NOTIFY`` wakes it too, on SQLite there
  is nothing else but polling);
- answers ``GET /metrics`` with its own metrics and its children's together (see
  :func:`merged_metrics`), each child serving its registry on a Unix socket of the parent's
  private folder.

The child dies with its parent: on Linux by ``PR_SET_PDEATHSIG`` (a ``kill -9`` of ``serve``
takes its workers along, as it did when they were one process), elsewhere when its stdin reaches
end of file (then it stops gracefully).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ..logs import event, get_logger

__all__ = ["METRICS_SOCKET_ENV", "PARENT_ENV", "WorkerProcesses", "merged_metrics", "serve_as_child"]

log = get_logger("service")

#: set by the parent in each child's environment: where the child serves its metrics
METRICS_SOCKET_ENV = "PUSHRELAY_WORKER_METRICS_SOCKET"
#: the parent's pid, so that a child that lost its parent before arming PDEATHSIG exits at once
PARENT_ENV = "PUSHRELAY_WORKER_PARENT"

_RESTART_FIRST = 1.0
_RESTART_MAX = 30.0
_STABLE_AFTER = 60.0  # a child that lived this long restarts after _RESTART_FIRST again
_KILL_AFTER = 15.0
WAKE_EVERY = 0.05  # seconds: at most one wake-up per child in this time (see WorkerProcesses.wake)  # seconds after SIGTERM; the worker's own shutdown grace is 10 s


_FOLDER_PREFIX = "pushrelay-workers-"


def _sweep_stale_folders() -> None:
    """Remove the socket folders of ``serve`` processes that died without cleaning up (``kill -9``,
    OOM): ours (same owner), named after a pid that no longer runs. A folder of a live serve, or of
    another user, is left alone; an old-style name without a pid too."""
    base = Path(tempfile.gettempdir())
    for folder in base.glob(f"{_FOLDER_PREFIX}*"):
        pid_text = folder.name[len(_FOLDER_PREFIX) :].split("-", 1)[0]
        try:
            if not pid_text.isdigit() or folder.stat().st_uid != os.getuid() or _alive(int(pid_text)):
                continue
            for sock in folder.iterdir():
                sock.unlink()
            folder.rmdir()
        except OSError:  # another serve sweeping at the same time, or not ours after all
            continue


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class _Child:
    def __init__(self, index: int, sock: Path) -> None:
        self.index = index
        self.sock = sock
        self.proc: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self.delay = _RESTART_FIRST
        self.wake_pending = False
        self.woken = -float("inf")  # loop time of the last wake-up written


class WorkerProcesses:
    """Start, watch, wake and stop ``count`` ``pushrelay worker`` children (see module docstring).

    ``command``: the child's command line (``python -m pushrelay worker --config ...``)."""

    def __init__(self, count: int, command: list[str], *, env: dict[str, str] | None = None) -> None:
        self.command = command
        self.env = dict(os.environ if env is None else env)
        _sweep_stale_folders()
        # 0700: only we can connect; the pid in the name lets a later serve remove it after a kill -9
        self._dir = Path(tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-"))
        self.children = [_Child(i, self._dir / f"worker-{i}.sock") for i in range(count)]
        self.restarts = 0
        self._stopping = False

    @property
    def sockets(self) -> list[Path]:
        return [c.sock for c in self.children]

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self.children if c.proc is not None and c.proc.returncode is None]

    async def _start(self, child: _Child) -> None:
        with contextlib.suppress(FileNotFoundError):
            child.sock.unlink()
        env = {**self.env, METRICS_SOCKET_ENV: str(child.sock), PARENT_ENV: str(os.getpid())}
        child.proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, env=env
        )
        child.started = time.monotonic()
        event(log, logging.INFO, "worker_process.started", index=child.index, pid=child.proc.pid)

    async def _watch(self, child: _Child) -> None:
        while not self._stopping:
            await self._start(child)
            assert child.proc is not None
            code = await child.proc.wait()
            if self._stopping:
                return
            lived = time.monotonic() - child.started
            if lived >= _STABLE_AFTER:
                child.delay = _RESTART_FIRST
            event(
                log,
                logging.ERROR,
                "worker_process.exited",
                index=child.index,
                pid=child.proc.pid,
                code=code,
                restart_in=child.delay,
                hint="its leased deliveries are sent again when their lease runs out",
            )
            self.restarts += 1
            await asyncio.sleep(child.delay)
            child.delay = min(child.delay * 2, _RESTART_MAX)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the children running until ``stop`` is set, then stop them."""
        watchers = [
            asyncio.create_task(self._watch(c), name=f"worker-process-{c.index}") for c in self.children
        ]
        try:
            await stop.wait()
        finally:
            self._stopping = True
            await self._terminate()
            for w in watchers:
                w.cancel()
            for w in watchers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await w
            for c in self.children:
                with contextlib.suppress(OSError):
                    c.sock.unlink()
            with contextlib.suppress(OSError):
                self._dir.rmdir()

    async def _terminate(self) -> None:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.returncode is None]
        for p in running:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in running:
            try:
                await asyncio.wait_for(p.wait(), _KILL_AFTER)
            except TimeoutError:
                event(log, logging.ERROR, "worker_process.killed", pid=p.pid, after=_KILL_AFTER)
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                await p.wait()

    def wake(self) -> None:
        """New work: one byte to each child's stdin, at most one per ``WAKE_EVERY`` per child.

        A wake-up per accepted request made the worker claim one or two deliveries at a time: at
        500 requests/s on SQLite it spent 0.89 ms of CPU per request delivering them, against 0.53
        ms when it only polled (one paired ``bench/end_to_end.py`` run; spaced by 50 ms, the cost
        matched polling's within the noise). A quiet service's single notification still goes at
        once, and under load each claim takes what 50 ms brought."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for c in self.children:
            if c.wake_pending:
                continue
            wait = c.woken + WAKE_EVERY - now
            if wait <= 0:
                self._ring(c)
            else:
                c.wake_pending = True
                loop.call_later(wait, self._ring, c)

    @staticmethod
    def _ring(c: _Child) -> None:
        c.wake_pending = False
        proc = c.proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return
        c.woken = asyncio.get_running_loop().time()
        with contextlib.suppress(OSError, RuntimeError):  # a child just died: its restart polls
            proc.stdin.write(b"w")


# -- the child's side -------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: the kernel sends us SIGKILL when the parent dies (PR_SET_PDEATHSIG)."""
    parent = os.environ.get(PARENT_ENV)
    if not sys.platform.startswith("linux") or not parent:
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # the parent died before we armed it
        os._exit(1)


async def serve_as_child(
    registry: CollectorRegistry, wake: Callable[[], None], stop: asyncio.Event, *, nice: int = 0
) -> None:
    """In a child started by :class:`WorkerProcesses` (else returns at once): lower this process's
    priority by ``nice``, serve ``registry`` on the metrics socket, call ``wake`` for each byte on
    stdin, set ``stop`` when stdin closes."""
    path = os.environ.get(METRICS_SOCKET_ENV)
    if not path:
        return
    _die_with_parent()
    if nice and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(nice)
    loop = asyncio.get_running_loop()

    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(await asyncio.to_thread(generate_latest, registry))
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_unix_server(answer, path)
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            data = await reader.read(4096)
            if not data:  # the parent is gone (or closed our stdin): stop as on SIGTERM
                event(log, logging.WARNING, "worker_process.orphaned", parent=os.environ.get(PARENT_ENV))
                stop.set()
                return
            wake()
    finally:
        transport.close()
        server.close()


# -- /metrics of the API process and its children ----------------------------------------------


def _scrape(sock: Path, timeout: float = 2.0) -> str | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            chunks = []
            while data := s.recv(65536):
                chunks.append(data)
        return b"".join(chunks).decode()
    except OSError:  # a child restarting: its figures are missing from this scrape
        return None


#: gauges every process reads from the database or the configuration: equal in all of them
SHARED_GAUGES = frozenset(
    {
        "pushrelay_queue_depth",
        "pushrelay_app_paused",
        "pushrelay_webhook_events_pending",
        "pushrelay_apns_certificate_expiry_timestamp_seconds",
        "pushrelay_fourd_folders_watched",
    }
)


class _Merged:
    """A collector over the families of several processes. Counters, histograms and summaries are
    added up (``_created``: the earliest). So are gauges of what each process holds (provider
    clients, APNs requests in flight and their limit, tokens minted): the service holds their sum.
    A gauge that every process computes from the database (queue depth, paused apps, pending
    webhooks, a certificate's expiry) would be counted once per process: it takes the largest."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for fam in self.families:
            if fam.name not in merged:
                merged[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                values[fam.name] = {}
            into = values[fam.name]
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                if key not in into:
                    into[key] = s.value
                elif s.name.endswith("_created"):
                    into[key] = min(into[key], s.value)
                elif fam.name in SHARED_GAUGES or fam.type in ("unknown", "info", "stateset"):
                    into[key] = max(into[key], s.value)
                else:
                    into[key] += s.value
        for name, fam in merged.items():
            for (sample, labels), value in values[name].items():
                fam.add_sample(sample, dict(labels), value)
            yield fam


def merged_metrics(registry: CollectorRegistry, sockets: Iterable[Path]) -> bytes:
    """The Prometheus text of ``registry`` with the children's figures merged in."""
    families: list[Any] = list(registry.collect())
    for sock in sockets:
        text = _scrape(sock)
        if text:
            families.extend(text_string_to_metric_families(text))
    return generate_latest(_Merged(families))  # any object with collect() will do
