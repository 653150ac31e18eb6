"""A small asyncio HTTP/2-over-TLS server built on ``h2``, with pluggable route handlers.

The server knows nothing about APNs: it reads whole requests, hands each one to the handler whose
path prefix matches (longest prefix wins), and carries out the handler's :data:`Reply`.

Adding handlers (the seam for FCM / Web Push sandboxes)::

    def handle(request: Request) -> Reply:          # called on the event loop: keep it quick, never block
        if request.method != "POST":
            return Response(405, [("content-type", "application/json")], b'{"error": "POST only"}')
        request.connection.raise_max_concurrent_streams(1000)   # connections start at 1 stream
        return Response(200, [("content-type", "application/json")], b"{}")

    server.add_route("/v1/projects/", handle)

A handler returns a :class:`Response`, or one of the transport actions :class:`Reset`, :class:`Drop`,
:class:`GoAway`, or :class:`Delayed` (which calls back later for the real reply). Per-connection state
a handler needs goes in ``request.connection.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from cryptography import x509
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from .fast_hpack import CompiledRequestDecoder, LiteralResponseEncoder

__all__ = [
    "Connection",
    "Delayed",
    "Drop",
    "GoAway",
    "H2Server",
    "Handler",
    "Reply",
    "Request",
    "Reset",
    "Response",
    "ServerStats",
]

log = logging.getLogger("pushrelay.sandbox")

_JSON = ("content-type", "application/json")


@dataclass(slots=True)
class Request:
    """One complete request. ``headers``: the regular (non-pseudo) headers, in order, repeats kept."""

    connection: Connection
    stream_id: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class Response:
    """Answer the stream with this status, headers and body."""

    status: int
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Reset:
    """Answer the stream with RST_STREAM (REFUSED_STREAM by default: "not processed, safe to retry")."""

    error_code: int = ErrorCodes.REFUSED_STREAM


@dataclass(frozen=True, slots=True)
class Drop:
    """Abort the TCP connection at once, answering nothing."""


@dataclass(frozen=True, slots=True)
class GoAway:
    """Send GOAWAY; streams above ``last_stream_id`` (this one included) are never answered.

    Streams at or below it that are still in progress are answered as usual; the connection is closed
    once none is left.
    """

    last_stream_id: int
    error_code: int = ErrorCodes.NO_ERROR
    debug_data: bytes = b""


@dataclass(frozen=True, slots=True)
class Delayed:
    """Wait ``seconds``, then call ``then()`` for the reply (skipped if the stream or connection died)."""

    seconds: float
    then: Callable[[], Reply]


Reply = Response | Reset | Drop | GoAway | Delayed
Handler = Callable[[Request], Reply]


@dataclass
class ServerStats:
    """Transport-level counters, shared by every connection of one server."""

    connections: int = 0
    goaways_sent: int = 0
    resets_sent: int = 0
    connections_dropped: int = 0
    max_streams_in_use: int = 0
    stream_limit_violations: int = 0


class _ServerH2Connection(h2.connection.H2Connection):
    """h2's connection, minus its own per-HEADERS stream counting.

    h2 counts open streams by scanning every stream it knows each time a HEADERS frame arrives: with
    1000 streams in flight that is O(n) per request and caps throughput. :class:`Connection` enforces the
    advertised limit itself (and counts violations instead of killing the connection), so h2's check is
    switched off here and its housekeeping of closed streams runs in batches via :meth:`purge_closed`.
    """

    @property
    def open_inbound_streams(self) -> int:
        return 0

    def purge_closed(self) -> None:
        # The base property drops closed streams from ``self.streams`` as a side effect.
        super().open_inbound_streams  # noqa: B018


_PURGE_EVERY = 512
CLOSE_GRACE = 2.0  # seconds a closing server waits for its clients' TLS goodbyes
_MAX_HEADER_LIST_SIZE = 8000  # what APNs advertises


class _Incoming:
    __slots__ = ("chunks", "headers", "method", "path")

    def __init__(self, method: str, path: str, headers: list[tuple[str, str]]) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.chunks: list[bytes] = []


def _decode_headers(raw: Sequence[tuple[bytes | str, bytes | str]]) -> tuple[str, str, list[tuple[str, str]]]:
    method = path = ""
    headers: list[tuple[str, str]] = []
    for name, value in raw:
        key = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if key[0] == ":":
            if key == ":method":
                method = text
            elif key == ":path":
                path = text
        else:
            headers.append((key, text))
    return method, path, headers


class Connection(asyncio.Protocol):
    """One client connection. Handlers see it as ``request.connection``.

    Public for handlers: ``id``, ``peer_certificate`` (the verified client certificate, if one was
    presented), ``max_concurrent_streams`` (the limit last advertised), :meth:`raise_max_concurrent_streams`
    and ``state`` (a dict for the handlers' per-connection data).
    """

    def __init__(self, server: H2Server, connection_id: int) -> None:
        self.id = connection_id
        self.state: dict[str, Any] = {}
        self.peer_certificate: x509.Certificate | None = None
        self.max_concurrent_streams = server.initial_max_concurrent_streams
        self._server = server
        self._stats = server.stats
        self._h2 = _ServerH2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding=None,
                # Our own responses are well-formed, and h2's per-character checks of inbound headers
                # cost as much as the APNs rules themselves: skipped to keep the hot path lean (a header
                # the checks would have refused simply fails the APNs validation instead).
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
            )
        )
        self._h2.encoder = LiteralResponseEncoder()  # type: ignore[assignment]
        if CompiledRequestDecoder.available():
            decoder = CompiledRequestDecoder()
            decoder.max_header_list_size = self._h2.decoder.max_header_list_size
            self._h2.decoder = decoder  # type: ignore[assignment]
        self._transport: asyncio.Transport | None = None
        self._incoming: dict[int, _Incoming] = {}
        self._open: set[int] = set()  # streams counted against the limit: opened, not yet finished by us
        self._outbox: dict[int, memoryview] = {}  # response bodies waiting for flow-control window
        self._timers: set[asyncio.TimerHandle] = set()
        self._goaway_last: int | None = None
        self._finished_since_purge = 0
        # Streams answered since the last write: still open as far as the client can know.
        self._unflushed = 0
        # The limit the client can know about: a raise counts once the SETTINGS frame has been written.
        self._limit_in_force = self.max_concurrent_streams
        self._closed = False

    # -- for handlers ------------------------------------------------------------------------------

    def raise_max_concurrent_streams(self, limit: int) -> None:
        """Advertise a higher SETTINGS_MAX_CONCURRENT_STREAMS (never lowers it)."""
        if limit <= self.max_concurrent_streams or self._closed:
            return
        self.max_concurrent_streams = limit
        self._h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limit})

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)
        self._stats.connections += 1
        ssl_object = transport.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject):
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                self.peer_certificate = x509.load_der_x509_certificate(der)
        self._h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: _MAX_HEADER_LIST_SIZE,
            },
        )
        self._h2.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.info("connection %d: HTTP/2 protocol error from the client: %s", self.id, exc)
            self._flush()
            self._close()
            return
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                assert isinstance(event, h2.events.DataReceived)
                self._on_data(event)
            elif kind is h2.events.RequestReceived:
                assert isinstance(event, h2.events.RequestReceived)
                self._on_request(event)
            elif kind is h2.events.StreamEnded:
                assert isinstance(event, h2.events.StreamEnded)
                self._on_stream_ended(event.stream_id)
            elif kind is h2.events.StreamReset:
                assert isinstance(event, h2.events.StreamReset)
                self._forget(event.stream_id)
            elif kind is h2.events.WindowUpdated:
                self._drain_outbox()
            elif kind is h2.events.ConnectionTerminated:
                # The client said goodbye; h2 refuses to send anything more, so there is nothing to wait for.
                self._flush()
                self._close()
                return
            # PING is acknowledged by h2 itself; SETTINGS acks and priorities need nothing from us.
        self._flush()

    def pause_writing(self) -> None:
        # The client is not reading its responses: stop reading its requests until it catches up.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._server.connection_gone(self)

    # -- request intake ----------------------------------------------------------------------------

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if self._goaway_last is not None and stream_id > self._goaway_last:
            return  # after GOAWAY, new streams are ignored (the client must retry them elsewhere)
        # Requests are answered as soon as they are complete, but a stream only ends for the client when
        # the answer reaches it: count both, so a client that pipelines beyond the limit is caught even
        # though the server never holds that many requests at once.
        in_use = len(self._open) + self._unflushed
        if in_use >= self._limit_in_force:
            # The client opened more streams than we advertised: refuse this one, keep the connection.
            self._stats.stream_limit_violations += 1
            log.warning(
                "connection %d: stream %d opened beyond MAX_CONCURRENT_STREAMS=%d; refused",
                self.id,
                stream_id,
                self._limit_in_force,
            )
            self._h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        self._open.add(stream_id)
        if in_use >= self._stats.max_streams_in_use:
            self._stats.max_streams_in_use = in_use + 1
        method, path, headers = _decode_headers(event.headers or ())
        self._incoming[stream_id] = _Incoming(method, path, headers)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        # Hand the window back at once, whatever happens to the stream: a client must never stall on us.
        if event.flow_controlled_length:
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        incoming = self._incoming.get(event.stream_id)
        if incoming is not None and event.data:
            incoming.chunks.append(event.data)

    def _on_stream_ended(self, stream_id: int) -> None:
        incoming = self._incoming.pop(stream_id, None)
        if incoming is None:
            return
        chunks = incoming.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        request = Request(self, stream_id, incoming.method, incoming.path, incoming.headers, body)
        self._apply(stream_id, self._server.handle(request))

    # -- replies -----------------------------------------------------------------------------------

    def _apply(self, stream_id: int, reply: Reply) -> None:
        if self._closed:
            return
        if type(reply) is Response:
            self._respond(stream_id, reply)
        elif isinstance(reply, Delayed):
            loop = asyncio.get_running_loop()
            timer: asyncio.TimerHandle

            def fire() -> None:
                self._timers.discard(timer)
                if self._closed or stream_id not in self._open:
                    return  # the client reset the stream, or the connection went away meanwhile
                self._apply(stream_id, self._server.call_handler(reply.then))
                self._flush()

            timer = loop.call_later(reply.seconds, fire)
            self._timers.add(timer)
        elif isinstance(reply, Reset):
            self._stats.resets_sent += 1
            self._h2.reset_stream(stream_id, reply.error_code)
            self._finish(stream_id)
        elif isinstance(reply, GoAway):
            self._send_goaway(reply)
        elif isinstance(reply, Drop):
            self._stats.connections_dropped += 1
            self._closed = True
            if self._transport is not None:
                self._transport.abort()
        else:  # pragma: no cover - guarded by the type checker
            raise TypeError(
                f"handler returned {reply!r}; expected a Response, Reset, Drop, GoAway or Delayed"
            )

    def _respond(self, stream_id: int, response: Response) -> None:
        headers = [(":status", str(response.status)), *response.headers]
        body = response.body
        h2conn = self._h2
        if not body:
            h2conn.send_headers(stream_id, headers, end_stream=True)
            self._finish(stream_id)
            return
        h2conn.send_headers(stream_id, headers)
        if len(body) <= h2conn.max_outbound_frame_size and len(body) <= h2conn.local_flow_control_window(
            stream_id
        ):
            h2conn.send_data(stream_id, body, end_stream=True)
            self._finish(stream_id)
            return
        self._outbox[stream_id] = memoryview(body)
        self._drain_outbox()

    def _drain_outbox(self) -> None:
        """Send as much of the waiting response bodies as the flow-control windows allow."""
        h2conn = self._h2
        for stream_id in list(self._outbox):
            view = self._outbox[stream_id]
            while view:
                room = min(h2conn.local_flow_control_window(stream_id), h2conn.max_outbound_frame_size)
                if room <= 0:
                    break
                chunk, view = view[:room], view[room:]
                h2conn.send_data(stream_id, chunk.tobytes(), end_stream=not view)
            if view:
                self._outbox[stream_id] = view
            else:
                del self._outbox[stream_id]
                self._finish(stream_id)

    def _send_goaway(self, goaway: GoAway) -> None:
        """GOAWAY that still lets lower streams be answered.

        h2 refuses to send anything after its own ``close_connection()``, so the frame is written raw,
        after whatever h2 has queued; h2 carries on serving the streams at or below ``last_stream_id``.
        """
        last = goaway.last_stream_id
        if self._goaway_last is not None and self._goaway_last <= last:
            return  # already going away, with an equal or lower last stream
        self._goaway_last = last
        for stream_id in [s for s in self._open if s > last]:
            self._open.discard(stream_id)  # never answered: the client retries them elsewhere
            self._incoming.pop(stream_id, None)
            self._outbox.pop(stream_id, None)
        frame = GoAwayFrame(
            0, last_stream_id=last, error_code=goaway.error_code, additional_data=goaway.debug_data
        )
        self._flush()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame.serialize())
        self._stats.goaways_sent += 1
        self._close_if_drained()

    def _finish(self, stream_id: int) -> None:
        self._open.discard(stream_id)
        self._unflushed += 1
        self._finished_since_purge += 1
        if self._finished_since_purge >= _PURGE_EVERY:
            self._finished_since_purge = 0
            self._h2.purge_closed()
        if self._goaway_last is not None:
            self._close_if_drained()

    def _forget(self, stream_id: int) -> None:
        self._open.discard(stream_id)
        self._incoming.pop(stream_id, None)
        self._outbox.pop(stream_id, None)
        if self._goaway_last is not None:
            self._close_if_drained()

    def _close_if_drained(self) -> None:
        assert self._goaway_last is not None
        last = self._goaway_last
        if not any(s <= last for s in self._open):
            self._flush()
            self._close()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)
            self._unflushed = 0
            self._limit_in_force = self.max_concurrent_streams

    def _close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    def shutdown(self) -> None:
        """Server stop: GOAWAY (NO_ERROR) and close; nothing in progress is answered any more."""
        if self._closed:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection()
        self._flush()
        self._close()

    def abort(self) -> None:
        """Close at once, without waiting for the TLS goodbye."""
        self._closed = True
        if self._transport is not None:
            self._transport.abort()


class H2Server:
    """An HTTP/2 server over TLS. Routes map a path prefix to a :data:`Handler`; the longest prefix wins."""

    def __init__(self, ssl_context: ssl.SSLContext, *, initial_max_concurrent_streams: int = 100) -> None:
        self.ssl_context = ssl_context
        self.initial_max_concurrent_streams = initial_max_concurrent_streams
        self.stats = ServerStats()
        self.connections: set[Connection] = set()
        self._routes: list[tuple[str, Handler]] = []
        self._server: asyncio.Server | None = None
        self._all_gone: asyncio.Event | None = None
        self._next_id = 0

    def add_route(self, prefix: str, handler: Handler) -> None:
        """Send requests whose path starts with ``prefix`` to ``handler`` (replacing a previous one)."""
        routes = [(p, h) for p, h in self._routes if p != prefix]
        routes.append((prefix, handler))
        routes.sort(key=lambda route: len(route[0]), reverse=True)
        self._routes = routes

    def handle(self, request: Request) -> Reply:
        path = request.path
        for prefix, handler in self._routes:
            if path.startswith(prefix):
                try:
                    return handler(request)
                except Exception:
                    log.exception("sandbox handler for %s failed", prefix)
                    return Response(500, [_JSON], b'{"reason": "InternalServerError"}')
        return Response(404, [_JSON], b'{"error": "no handler for this path"}')

    @staticmethod
    def call_handler(call: Callable[[], Reply]) -> Reply:
        try:
            return call()
        except Exception:
            log.exception("sandbox handler failed")
            return Response(500, [_JSON], b'{"reason": "InternalServerError"}')

    def _make_connection(self) -> Connection:
        self._next_id += 1
        return Connection(self, self._next_id)

    def new_connection_id(self) -> int:
        """A connection number for a protocol served beside HTTP/2 (see ``protocol_factory``)."""
        self._next_id += 1
        return self._next_id

    new_connection = _make_connection

    async def start(
        self, host: str, port: int, *, protocol_factory: Callable[[], asyncio.Protocol] | None = None
    ) -> int:
        """Listen on ``host:port`` (0: any free port); returns the bound port.

        ``protocol_factory`` replaces the HTTP/2 connection per accepted socket (e.g. an ALPN selector
        that also answers HTTP/1.1); it should use :meth:`new_connection` for HTTP/2.
        """
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol_factory or self._make_connection, host, port, ssl=self.ssl_context, reuse_address=True
        )
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1])

    def connection_gone(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    async def close(self) -> None:
        """Stop listening, say GOAWAY on every connection, and wait (a little) until they are closed.

        Waiting lets each TLS transport finish before the event loop goes away; connections whose peer does
        not complete the TLS goodbye in time are aborted.
        """
        if self._server is not None:
            self._server.close()
        self._all_gone = asyncio.Event()
        for connection in list(self.connections):
            connection.shutdown()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_gone.wait(), CLOSE_GRACE)
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
