"""A pool of HTTP/2 connections to one origin, with nothing lost when connections fail.

* Requests wait in one FIFO queue and are started on the connection with the most free streams,
  following each server's SETTINGS_MAX_CONCURRENT_STREAMS as it changes (APNs starts at 1).
* More connections (up to ``connections``) are opened when the queue outgrows the open ones.
* The pool resends only what the server provably never processed: streams above a GOAWAY's
  ``last_stream_id`` and streams reset with REFUSED_STREAM (RFC 9113 §8.7). They go back to the head
  of the queue, at most ``max_resends`` times each, and are counted apart
  (``stats.resent_unprocessed``): they are not attempts, the server did no work for them.
* Anything else is not retried here. A request whose connection died before its answer (the
  server may have processed it), a reset stream, a timeout: its callback gets the
  :class:`TransportError`, and the caller (the outbox, through the provider client) decides.
  Retrying owns one place, with one backoff (:mod:`pushrelay.backoff`).
* Reconnecting backs off with that same backoff; after ``connect_attempts`` failures in a row the
  queued requests (never sent) fail with :class:`ConnectError`.
* Every request has a deadline; idle connections are PINGed and dropped when the PING goes unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .._exceptions import (
    ConfigurationError,
    ConnectError,
    ConnectionLostError,
    RequestTimeout,
    TransportError,
)
from ..backoff import Backoff
from .connection import Http2Connection, PendingRequest, Response
from .limit import AdaptiveLimit
from .protocol import ConnectionTerminated, ErrorCode, StreamReset

__all__ = ["Http2Pool", "PoolStats"]


class PoolStats:
    """Counters for metrics and tests."""

    __slots__ = (
        "connect_failures",
        "connections_opened",
        "goaways",
        "ping_timeouts",
        "pings",
        "requests",
        "resent_unprocessed",
        "responses",
        "timeouts",
    )

    def __init__(self) -> None:
        self.requests = self.responses = self.timeouts = 0
        #: requests resent because the server provably never processed them (GOAWAY, REFUSED_STREAM)
        self.resent_unprocessed = 0
        self.connections_opened = self.connect_failures = self.goaways = 0
        self.pings = self.ping_timeouts = 0


class Http2Pool:
    def __init__(
        self,
        origin: str,
        ssl_context: ssl.SSLContext,
        *,
        connections: int = 1,
        indexable_headers: frozenset[bytes] = frozenset(),
        request_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        ping_interval: float = 60.0,
        ping_timeout: float = 10.0,
        max_resends: int = 3,
        connect_attempts: int = 4,
        backoff_base: float = 0.2,
        backoff_cap: float = 30.0,
        limiter: AdaptiveLimit | None = None,
        overload_statuses: frozenset[int] = frozenset({429, 503}),
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigurationError(
                f"endpoint must look like https://host[:port], got {origin!r}", field="endpoint"
            )
        self.host = parts.hostname
        self.port = parts.port or 443
        self.authority = parts.netloc.encode()
        self.ssl_context = ssl_context
        self.max_connections = max(1, connections)
        self.indexable_headers = indexable_headers
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_resends = max_resends
        self.connect_attempts = connect_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stats = PoolStats()
        #: fed with every answer's latency and told the streams available (the caller applies it)
        self.limiter = limiter
        #: answer statuses that mean "the server is overloaded": the limiter backs off on them
        self.overload_statuses = overload_statuses
        self._streams_per_connection = 0  # the peers' last advertised MAX_CONCURRENT_STREAMS
        self.on_connection_change: Callable[[int], None] | None = None  # metrics hook: open connections
        self._conns: list[Http2Connection] = []
        self._waiting: deque[PendingRequest] = deque()
        self._connecting = 0
        self._failures = 0  # consecutive connect failures
        self._reconnect_handle: asyncio.TimerHandle | None = None
        self._next_id = 0
        self._closed = False
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- public API --------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return sum(len(c.inflight) for c in self._conns)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def open_connections(self) -> int:
        return sum(1 for c in self._conns if c.transport is not None and not c.lost)

    def submit(self, req: PendingRequest) -> None:
        """Queue a request; ``req.callback`` is called exactly once with a Response or a TransportError."""
        if self._closed:
            req.callback(req, ConnectionLostError("the client is closed"))
            return
        loop = asyncio.get_running_loop()
        req.deadline = loop.time() + self.request_timeout
        self.stats.requests += 1
        self._waiting.append(req)
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep())
        self.pump()

    async def request(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
        """Send one request and wait for its response (raises :class:`TransportError`)."""
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def done(_req: PendingRequest, result: Response | TransportError) -> None:
            if fut.done():
                return
            if isinstance(result, TransportError):
                fut.set_exception(result)
            else:
                fut.set_result(result)

        self.submit(PendingRequest(headers, body, done))
        return await fut

    def retire(self, conn: Http2Connection | None) -> None:
        """Take a connection out of rotation (e.g. its credentials were rejected); it closes when idle."""
        if conn is not None and conn in self._conns:
            conn.retire()
            self.pump()

    async def aclose(self, grace: float = 5.0) -> None:
        """Let in-flight requests finish (up to ``grace`` s), fail the queued ones, close connections."""
        self._closed = True
        if self._reconnect_handle is not None:
            self._reconnect_handle.cancel()
        while self._waiting:
            req = self._waiting.popleft()
            req.callback(req, ConnectionLostError("the client was closed before the request was sent"))
        loop = asyncio.get_running_loop()
        end = loop.time() + grace
        while self.in_flight and loop.time() < end:  # noqa: ASYNC110 - answers arrive via callbacks
            await asyncio.sleep(0.01)
        conns = list(self._conns)
        for conn in conns:
            if conn.inflight:  # still unanswered after the grace period
                conn.abort()
            else:
                conn.close()
        # wait for the sockets to be really closed (TLS close_notify), so none outlives the loop
        waits = [asyncio.ensure_future(c.closed_event.wait()) for c in conns if not c.closed_event.is_set()]
        if waits:
            _done, slow = await asyncio.wait(waits, timeout=1.0)
            for fut in slow:
                fut.cancel()
            for conn in conns:
                if not conn.closed_event.is_set():
                    conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._tasks:
            # cancelling a TLS handshake can leak its socket: let pending connects finish (they close
            # themselves, seeing the pool closed) and cancel only those that hang
            _done, pending = await asyncio.wait(set(self._tasks), timeout=self.connect_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for _ in range(3):  # let aborted transports run connection_lost
            await asyncio.sleep(0)

    # -- scheduling --------------------------------------------------------------------------------
    def pump(self) -> None:
        """Start as many queued requests as the connections allow; open connections as needed."""
        waiting = self._waiting
        if not waiting:
            return
        for conn in self._conns:
            free = conn.free_streams
            while free > 0 and waiting:
                conn.submit(waiting.popleft())
                free -= 1
            if not waiting:
                return
        usable = [c for c in self._conns if not (c.lost or c.retiring or c.proto.exhausted)]
        if (
            not self._closed
            and self._reconnect_handle is None
            and self._connecting == 0
            and len(usable) < self.max_connections
            and all(c.proto.settings_received for c in usable)  # one still starting up will take work soon
        ):
            self._start_connect()

    def _start_connect(self) -> None:
        self._connecting += 1
        task = asyncio.get_running_loop().create_task(self._connect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._next_id += 1
        conn_id = self._next_id
        try:
            try:
                _transport, conn = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: Http2Connection(self, conn_id),
                        self.host,
                        self.port,
                        ssl=self.ssl_context,
                        server_hostname=self.host,
                    ),
                    self.connect_timeout,
                )
            except Exception as exc:  # OSError, TimeoutError, ssl.SSLError, or anything the loop raises
                raise ConnectError(f"cannot connect to {self.host}:{self.port}: {_describe(exc)}") from None
            ssl_obj = _transport.get_extra_info("ssl_object")
            if ssl_obj is None or ssl_obj.selected_alpn_protocol() != "h2":
                _transport.close()
                raise ConnectError(f"{self.host}:{self.port} does not speak HTTP/2 (ALPN h2 not selected)")
        except ConnectError as exc:
            self._connecting -= 1
            self._connect_failed(exc)
            return
        self._connecting -= 1
        if self._closed:
            conn.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.closed_event.wait(), 1.0)
            return
        self.stats.connections_opened += 1
        self._conns.append(conn)
        self._update_capacity()
        self._changed()
        self.pump()

    def _connect_failed(self, exc: ConnectError) -> None:
        self.stats.connect_failures += 1
        self._failures += 1
        if self._failures >= self.connect_attempts and not any(not c.lost for c in self._conns):
            # nobody can take the queued requests now: hand them back to their owners
            self._failures = 0
            while self._waiting:
                req = self._waiting.popleft()
                req.callback(req, exc)
            return
        delay = Backoff(self.backoff_base, self.backoff_cap).delay(self._failures)
        self._reconnect_handle = asyncio.get_running_loop().call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        self._reconnect_handle = None
        self.pump()

    # -- callbacks from connections ----------------------------------------------------------------
    def complete(self, req: PendingRequest, response: Response, now: float) -> None:
        self.stats.responses += 1
        if self.limiter is not None:
            self.limiter.sample(now - req.sent_at, overloaded=response.status in self.overload_statuses)
        req.callback(req, response)

    def settings_received(self, conn: Http2Connection) -> None:
        """The server spoke HTTP/2 (or changed its settings): the connection is established,
        reconnect backoff starts over, and the streams it allows may have changed."""
        self._failures = 0
        self._update_capacity()

    @property
    def stream_capacity(self) -> int:
        """Requests the pool can have on streams at once with all its connections open:
        ``connections`` x the peer's MAX_CONCURRENT_STREAMS (0 until a peer said)."""
        return self.max_connections * self._streams_per_connection

    def _update_capacity(self) -> None:
        advertised = [
            c.proto.max_concurrent_streams
            for c in self._conns
            if c.proto.settings_received and not (c.lost or c.retiring)
        ]
        if advertised:
            # connections not open yet are counted at what the open ones were told: one peer
            self._streams_per_connection = max(advertised)
        if self.limiter is not None and self._streams_per_connection:
            self.limiter.set_capacity(self.stream_capacity, self._streams_per_connection)

    def stream_reset(self, req: PendingRequest, ev: StreamReset) -> None:
        if ev.unprocessed:
            self._resend_unprocessed(
                [req], ConnectionLostError("stream refused by the server (REFUSED_STREAM)")
            )
        else:
            req.callback(
                req, ConnectionLostError(f"stream reset by the server ({ErrorCode.name(ev.error_code)})")
            )

    def goaway(
        self, conn: Http2Connection, ev: ConnectionTerminated, unprocessed: list[PendingRequest]
    ) -> None:
        self.stats.goaways += 1
        self._resend_unprocessed(
            unprocessed, ConnectionLostError(f"GOAWAY from the server ({ErrorCode.name(ev.error_code)})")
        )
        self._changed()

    def connection_failed(
        self, conn: Http2Connection, reqs: list[PendingRequest], error: TransportError
    ) -> None:
        """The connection died with ``reqs`` unanswered: the server may have processed them, so they
        are not resent here; each caller gets the error (a ``retry`` outcome, owned by the outbox)."""
        for req in reqs:
            req.callback(req, error)

    def connection_closed(self, conn: Http2Connection) -> None:
        with contextlib.suppress(ValueError):
            self._conns.remove(conn)
        self._update_capacity()
        self._changed()
        if not self._closed:
            self.pump()

    def _resend_unprocessed(self, reqs: list[PendingRequest], error: TransportError) -> None:
        """Requests the server did no work for go back to the head of the queue, a bounded number of
        times (a server refusing forever must not keep them here)."""
        retry = []
        for req in reqs:
            if req.sends > self.max_resends:
                req.callback(req, error)
            else:
                retry.append(req)
        self.stats.resent_unprocessed += len(retry)
        self._waiting.extendleft(reversed(retry))  # keep their original order, ahead of newer work
        if not self._closed:
            asyncio.get_running_loop().call_soon(self.pump)

    def _changed(self) -> None:
        if self.on_connection_change is not None:
            self.on_connection_change(self.open_connections)

    # -- deadlines and liveness --------------------------------------------------------------------
    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        period = max(
            0.05,
            min(
                1.0,
                self.request_timeout / 4,
                self.ping_interval / 2,
                self.ping_timeout / 2,
                self.connect_timeout / 2,
            ),
        )
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            while self._waiting and self._waiting[0].deadline <= now:
                req = self._waiting.popleft()
                self.stats.timeouts += 1
                req.callback(req, RequestTimeout(f"no connection to {self.host} within the request deadline"))
            for conn in list(self._conns):
                expired = []
                for sid, req in conn.inflight.items():  # oldest first
                    if req.deadline > now:
                        break
                    expired.append(sid)
                for sid in expired:
                    req = conn.inflight.pop(sid)
                    conn.cancel(sid)
                    self.stats.timeouts += 1
                    req.callback(
                        req, RequestTimeout(f"no answer from {self.host} within {self.request_timeout:g} s")
                    )
                if not conn.proto.settings_received and not conn.lost:
                    if now - conn.opened_at > self.connect_timeout:  # TLS up, but no HTTP/2 from the server
                        conn.lost = True
                        self._connect_failed(
                            ConnectError(
                                f"{self.host}:{self.port} sent no HTTP/2 SETTINGS within {self.connect_timeout:g} s"
                            )
                        )
                        conn.abort()
                    continue
                if conn.ping_sent_at is not None and now - conn.ping_sent_at > self.ping_timeout:
                    self.stats.ping_timeouts += 1
                    conn.abort()  # unanswered PING: dead; connection_lost fails its requests
                elif conn.ping_sent_at is None and now - conn.last_read > self.ping_interval:
                    self.stats.pings += 1
                    conn.ping()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({exc.verify_message})"
    return str(exc) or type(exc).__name__
