"""One HTTP/2 connection on asyncio: feeds the sans-IO :class:`ClientProtocol` and batches writes.

Requests carry a completion callback instead of a future, so a batch of a million notifications
keeps no per-request object alive once it is answered. All writes produced while handling one read
(answers, new requests started from callbacks, WINDOW_UPDATEs) go out in one ``transport.write``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._exceptions import ConnectionLostError, ProtocolError, TransportError
from .protocol import (
    ClientProtocol,
    ConnectionTerminated,
    ErrorCode,
    PingAcknowledged,
    ResponseReceived,
    SettingsChanged,
    StreamReset,
)

if TYPE_CHECKING:
    from .pool import Http2Pool

__all__ = ["Http2Connection", "PendingRequest", "Response"]

Response = ResponseReceived


class PendingRequest:
    """A request on its way: what to send, when to give up, and whom to tell."""

    __slots__ = ("body", "callback", "conn", "deadline", "headers", "sends", "sent_at", "tag")

    def __init__(
        self,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        callback: Callable[[PendingRequest, Response | TransportError], None],
        tag: Any = None,
    ) -> None:
        self.headers = headers
        self.body = body
        self.callback = callback
        self.tag = tag
        self.deadline = 0.0
        self.sends = 0  # how many times it was put on a connection (> 1 only for unprocessed resends)
        self.sent_at = 0.0  # loop time it was put on a stream: its answer's latency counts from there
        self.conn: Http2Connection | None = None


class Http2Connection(asyncio.Protocol):
    def __init__(self, pool: Http2Pool, conn_id: int) -> None:
        self.pool = pool
        self.id = conn_id
        self.proto = ClientProtocol(indexable_headers=pool.indexable_headers)
        self.transport: asyncio.Transport | None = None
        self.inflight: dict[int, PendingRequest] = {}  # insertion order = oldest first (deadline sweep)
        self.loop = asyncio.get_running_loop()
        self.last_read = self.loop.time()
        self.opened_at = self.last_read
        self.ping_sent_at: float | None = None
        self.retiring = False  # takes no new requests; closes once the in-flight ones are answered
        self.lost = False
        self._flush_pending = False
        self._in_read = False
        self.closed_event = asyncio.Event()  # set by connection_lost: the socket is really closed

    # -- capacity ----------------------------------------------------------------------------------
    @property
    def free_streams(self) -> int:
        if self.lost or self.retiring or self.transport is None or not self.proto.can_open_stream:
            return 0
        return self.proto.max_concurrent_streams - self.proto.open_streams

    def submit(self, req: PendingRequest) -> None:
        sid = self.proto.send_request(req.headers, req.body)
        req.sent_at = self.loop.time()
        req.sends += 1
        req.conn = self
        self.inflight[sid] = req
        self._schedule_flush()

    def cancel(self, sid: int) -> None:
        self.proto.reset_stream(sid, ErrorCode.CANCEL)
        self._schedule_flush()

    def ping(self) -> None:
        self.ping_sent_at = self.loop.time()
        self.proto.ping(b"pushrely")
        self._schedule_flush()

    def retire(self) -> None:
        """Stop using this connection for new requests; close it when it has nothing in flight."""
        self.retiring = True
        if not self.inflight:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.proto.close()
            self._flush()
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.opened_at = self.loop.time()  # uvloop's transports are not asyncio.Transport subclasses
        self.proto.initiate()
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.lost:  # failed with a connection error: what still arrives is not read
            return
        self.last_read = self.loop.time()
        self._in_read = True
        try:
            try:
                events = self.proto.receive(data)
            except ProtocolError as exc:
                # a connection error (RFC 9113 §5.4.1): GOAWAY with the code, then close. close()
                # lets the GOAWAY out (abort would discard it); a peer that does not read gets
                # aborted shortly after. Requests in flight fail with the error, never resent.
                self.proto.close(exc.error_code)
                self._flush()
                self._fail_all(exc)
                if self.transport is not None:
                    self.transport.close()
                    self.loop.call_later(1.0, self.abort)
                return
            pool = self.pool
            for ev in events:
                if type(ev) is ResponseReceived:
                    req = self.inflight.pop(ev.stream_id, None)
                    if req is not None:
                        pool.complete(req, ev, self.last_read)
                elif isinstance(ev, StreamReset):
                    req = self.inflight.pop(ev.stream_id, None)
                    if req is not None:
                        pool.stream_reset(req, ev)
                elif isinstance(ev, ConnectionTerminated):
                    reqs = [r for r in (self.inflight.pop(s, None) for s in ev.unprocessed) if r is not None]
                    pool.goaway(self, ev, reqs)
                elif isinstance(ev, PingAcknowledged):
                    self.ping_sent_at = None
                elif isinstance(ev, SettingsChanged):
                    pool.settings_received(self)  # pool.pump() below uses the new limit
            if (self.retiring or self.proto.exhausted) and not self.inflight:
                self.close()
            pool.pump()
        finally:
            self._in_read = False
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.closed_event.set()
        reason = f"connection lost: {exc}" if exc else "connection closed by the server"
        self._fail_all(ConnectionLostError(reason))
        self.pool.connection_closed(self)

    # -- internals ---------------------------------------------------------------------------------
    def _fail_all(self, error: TransportError) -> None:
        reqs = list(self.inflight.values())
        self.inflight.clear()
        self.lost = True
        if reqs:
            self.pool.connection_failed(self, reqs, error)

    def _schedule_flush(self) -> None:
        if not self._flush_pending and not self._in_read:
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        data = self.proto.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
