"""HTTP/2 *and* HTTP/1.1 over TLS on one port, for the FCM, OAuth and Web Push sandboxes.

:class:`~pushrelay.sandbox.server.H2Server` speaks only HTTP/2, but google-auth posts its token
grant over HTTP/1.1 and Web Push clients commonly do too. This server offers ALPN ``h2`` and
``http/1.1``: an ``h2`` connection is served by the shared :class:`~pushrelay.sandbox.server.Connection`
(same routes, same stats), an HTTP/1.1 one by ``h11`` with the very same handlers — a handler does
not need to know which protocol carried the request.

:func:`serve_in_thread` runs any ``async with`` sandbox in a background thread for synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TypeVar

import h11

from .server import (
    CLOSE_GRACE,
    Connection,
    Delayed,
    Drop,
    GoAway,
    H2Server,
    Handler,
    Reply,
    Request,
    Reset,
    Response,
)
from .tls import CertificateAuthority, ServerMaterial, server_ssl_context

__all__ = ["AlpnSelector", "DualStackServer", "Http1Protocol", "serve_in_thread"]

log = logging.getLogger("pushrelay.sandbox")

#: Request bodies above this are refused with 413 before the handler sees them (FCM and Web Push
#: bodies are at most a few KiB).
MAX_REQUEST_BODY = 1 << 20
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class DualStackServer:
    """TLS server with path-prefix routes, answering over HTTP/2 or HTTP/1.1 as the client prefers."""

    def __init__(
        self, directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    ) -> None:
        self.material: ServerMaterial = CertificateAuthority.generate().write_server_material(
            directory, hosts
        )
        context = server_ssl_context(self.material)
        context.set_alpn_protocols(["h2", "http/1.1"])
        self.ssl_context = context
        self.h2 = H2Server(context)
        self._listener: asyncio.Server | None = None
        self._h1: set[Http1Protocol] = set()
        self._next_id = 0

    @property
    def ca_file(self) -> Path:
        return self.material.ca_file

    def add_route(self, prefix: str, handler: Handler) -> None:
        self.h2.add_route(prefix, handler)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._select, host, port, ssl=self.ssl_context)
        return int(self._listener.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for h1 in list(self._h1):
            h1.close()
        # GOAWAY on the HTTP/2 connections, a grace for their TLS goodbye, then abort
        await self.h2.close()
        # The same grace for HTTP/1.1. A client that keeps an idle connection it no longer reads (requests
        # does, for a response held by an exception's traceback) never answers the TLS close_notify: its
        # transport would outlive this event loop, unclosed.
        if self._h1:
            waits = [asyncio.create_task(h1.gone.wait()) for h1 in self._h1]
            _, pending = await asyncio.wait(waits, timeout=CLOSE_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for h1 in list(self._h1):
            h1.abort()
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None

    def _connection_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _select(self) -> AlpnSelector:
        return AlpnSelector(
            lambda: Connection(self.h2, self._connection_id()),
            lambda: Http1Protocol(self.h2, self._h1, self._connection_id()),
        )


class AlpnSelector(asyncio.Protocol):
    """Picks the protocol the TLS handshake agreed on, then forwards every callback to it.

    A client that offers no ALPN at all (aioapns, for one, speaks HTTP/2 with prior knowledge over
    TLS, as Apple allows) is told apart by its first bytes: the HTTP/2 connection preface, or not.
    """

    def __init__(
        self, on_h2: Callable[[], asyncio.Protocol], on_http1: Callable[[], asyncio.Protocol]
    ) -> None:
        self._on_h2 = on_h2
        self._on_http1 = on_http1
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._early = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if isinstance(ssl_object, ssl.SSLObject) else None
        if alpn is None:
            self._transport = transport  # decided by the first bytes
            return
        self._start(self._on_h2() if alpn == "h2" else self._on_http1(), transport)

    def _start(self, inner: asyncio.Protocol, transport: asyncio.BaseTransport) -> None:
        self._inner = inner
        inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            if self._transport is None:
                return
            self._early += data
            if len(self._early) < len(_H2_PREFACE) and _H2_PREFACE.startswith(self._early):
                return  # not enough to tell yet
            early, self._early = self._early, b""
            inner = self._on_h2() if early.startswith(_H2_PREFACE) else self._on_http1()
            self._start(inner, self._transport)
            inner.data_received(early)
            return
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._inner.connection_lost(exc)


class Http1Protocol(asyncio.Protocol):
    """One HTTP/1.1 connection: requests in order, one at a time (no pipelining needed here).

    Requests go to ``handle`` (default: the routes of ``h2``); the protocol adds itself to ``live`` while
    connected, so that its server can close it.
    """

    def __init__(
        self,
        h2: H2Server,
        live: set[Http1Protocol],
        connection_id: int,
        handle: Callable[[Request], Reply] | None = None,
    ) -> None:
        self._h2server = h2
        self._live = live
        self._route = handle if handle is not None else h2.handle
        self._h11 = h11.Connection(h11.SERVER)
        self._transport: asyncio.Transport | None = None
        # Handlers get a Connection object for ``request.connection.state``; it never speaks HTTP/2.
        self._handle = Connection(h2, connection_id)
        self._method = ""
        self._path = ""
        self._headers: list[tuple[str, str]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self.gone = asyncio.Event()  # set when the connection is lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._live.add(self)

    def data_received(self, data: bytes) -> None:
        self._h11.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        self._h11.receive_data(b"")
        self._process()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._live.discard(self)
        self.gone.set()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        """Close at once, without waiting for the TLS goodbye."""
        if self._transport is not None:
            self._transport.abort()

    def _process(self) -> None:
        while not self._busy:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(exc.error_status_hint, f"malformed HTTP/1.1 request: {exc}")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._method = event.method.decode("ascii", "replace")
                self._path = event.target.decode("ascii", "replace")
                self._headers = [
                    (k.decode("ascii", "replace").lower(), v.decode("utf-8", "replace"))
                    for k, v in event.headers
                ]
                self._chunks = []
                self._size = 0
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size > MAX_REQUEST_BODY:
                    self._fail(413, "request body too large")
                    return
                self._chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                request = Request(
                    self._handle, 0, self._method, self._path, self._headers, b"".join(self._chunks)
                )
                self._busy = True
                self._apply(self._route(request))
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    def _apply(self, reply: Reply) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if isinstance(reply, Response):
            self._send(reply)
        elif isinstance(reply, Delayed):
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(
                reply.seconds, lambda: self._apply(H2Server.call_handler(reply.then))
            )
        elif isinstance(reply, Drop):
            self._transport.abort()
        elif isinstance(reply, Reset | GoAway):
            # HTTP/1.1 has no stream reset: closing without an answer is the nearest equivalent.
            self.close()

    def _send(self, response: Response) -> None:
        assert self._transport is not None
        headers = [(k, v) for k, v in response.headers if k.lower() not in ("content-length", "connection")]
        headers.append(("content-length", str(len(response.body))))
        try:
            data = self._h11.send(h11.Response(status_code=response.status, headers=headers))
            data = (
                (data or b"") + (self._h11.send(h11.Data(data=response.body)) or b"")
                if response.body
                else data
            )
            data = (data or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            log.warning("sandbox HTTP/1.1 reply could not be sent: %s", exc)
            self.close()
            return
        self._transport.write(data)
        self._busy = False
        if self._h11.our_state is h11.MUST_CLOSE or self._h11.their_state is h11.MUST_CLOSE:
            self.close()
            return
        try:
            self._h11.start_next_cycle()
        except h11.LocalProtocolError:
            self.close()
            return
        self._process()

    def _fail(self, status: int, message: str) -> None:
        """Answer a request we cannot parse or accept, then close (h11 refuses to send in that state)."""
        if self._transport is not None and self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = json.dumps({"error": message}).encode()
            head = (
                f"HTTP/1.1 {status} Error\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self._transport.write(head.encode() + body)
        self.close()


S = TypeVar("S")


@contextlib.contextmanager
def serve_in_thread(
    factory: Callable[[], AbstractAsyncContextManager[S]], *, timeout: float = 30.0
) -> Iterator[S]:
    """Enter ``factory()`` on an event loop in a daemon thread; yield what it yields; exit on return.

    The sandbox object is shared with the caller's thread: its recording methods are plain reads of
    lists, safe enough for tests and demos.
    """
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()  # set from the caller's thread through call_soon_threadsafe
    entered: list[S] = []
    failure: list[BaseException] = []
    started = threading.Event()

    async def main() -> None:
        try:
            async with factory() as value:
                entered.append(value)
                started.set()
                await stop.wait()
        except BaseException as exc:  # reported to the caller's thread
            failure.append(exc)
            started.set()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        finally:
            # here, not in the caller's thread: the caller may be running an event loop of its own
            loop.run_until_complete(loop.shutdown_asyncgens())

    thread = threading.Thread(target=run, name="pushrelay-sandbox", daemon=True)
    thread.start()
    try:
        if not started.wait(timeout):
            raise TimeoutError("the sandbox did not start in time")
        if failure:
            raise failure[0]
        yield entered[0]
    finally:
        if thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
