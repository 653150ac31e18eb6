"""A small HTTP/2 test client on raw ``h2`` + asyncio (independent of pushrelay's own APNs client).

It follows the server's SETTINGS_MAX_CONCURRENT_STREAMS and flow control like a well-behaved APNs
client, and can be told to break those rules to test how the sandbox reacts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


@dataclass
class H2Response:
    status: int
    headers: dict[str, str]
    body: bytes
    stream_id: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def reason(self) -> str | None:
        return self.json.get("reason") if self.body else None


class StreamWasReset(Exception):
    def __init__(self, stream_id: int, error_code: int) -> None:
        super().__init__(f"stream {stream_id} reset with error {error_code}")
        self.stream_id = stream_id
        self.error_code = error_code


class ConnectionClosed(Exception):
    """The connection ended before the stream was answered (GOAWAY above last_stream_id, or EOF)."""


@dataclass
class GoAwayInfo:
    last_stream_id: int
    error_code: int
    debug_data: bytes


class _ClientConnection(h2.connection.H2Connection):
    """h2 stops accepting frames once it received GOAWAY; RFC 9113 §6.8 lets the streams up to
    last_stream_id finish, and that is what the tests check, so this one keeps listening."""

    def _receive_goaway_frame(self, frame: Any) -> Any:
        result = super()._receive_goaway_frame(frame)
        self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return result

    # h2 counts open streams by scanning all of them for every new stream (O(n) with 1000 in flight);
    # H2TestClient tracks them itself, so h2's count is replaced by a cheap one.
    in_flight = 0

    @property
    def open_outbound_streams(self) -> int:
        return self.in_flight

    def purge_closed(self) -> None:
        super().open_outbound_streams  # noqa: B018 - drops closed streams as a side effect


class _UnlimitedClientConnection(_ClientConnection):
    """h2 refuses to exceed the peer's stream limit itself; this one lets a test break the rule."""

    @property
    def open_outbound_streams(self) -> int:
        return 0


@dataclass
class _Pending:
    future: asyncio.Future[H2Response]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)


class H2TestClient:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, obey_limits: bool
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.obey_limits = obey_limits
        connection_class = _ClientConnection if obey_limits else _UnlimitedClientConnection
        self.h2 = connection_class(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self._pending: dict[int, _Pending] = {}
        # Waiters for a free stream slot (woken one per freed slot, so a 1000-deep queue stays cheap)
        # and for flow-control window.
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._window_changed = asyncio.Event()
        self._send_lock = asyncio.Lock()  # one body at a time: a single task waits for window
        self._started = 0
        self._got_settings = asyncio.Event()
        self.pings_acknowledged = 0
        self._opened: dict[int, asyncio.Future[H2Response]] = {}
        self.goaway: GoAwayInfo | None = None
        self.closed = asyncio.Event()
        self.max_streams_seen: list[int] = []
        self.peak_in_flight = 0
        self._reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        ca_file: Path,
        *,
        cert: tuple[Path, Path | None, str | None] | None = None,
        obey_limits: bool = True,
    ) -> H2TestClient:
        parts = urlsplit(url)
        context = ssl.create_default_context(cafile=str(ca_file))  # verification stays on
        context.set_alpn_protocols(["h2"])
        if cert is not None:
            certfile, keyfile, password = cert
            context.load_cert_chain(certfile, keyfile, password)
        host = parts.hostname or "127.0.0.1"
        reader, writer = await asyncio.open_connection(host, parts.port, ssl=context, server_hostname=host)
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        client = cls(reader, writer, obey_limits=obey_limits)
        client.h2.initiate_connection()
        client._flush()
        client._reader_task = asyncio.create_task(client._read_loop())
        settings = asyncio.ensure_future(client._got_settings.wait())
        closed = asyncio.ensure_future(client.closed.wait())
        await asyncio.wait({settings, closed}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        settings.cancel()
        closed.cancel()
        if not client._got_settings.is_set():
            await client.close()
            raise ConnectionClosed("the server closed the connection before its SETTINGS (TLS refused?)")
        return client

    @property
    def max_concurrent_streams(self) -> int:
        return self.h2.remote_settings.max_concurrent_streams

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                events = self.h2.receive_data(data)
                for event in events:
                    await self._on_event(event)
                self._flush()
        except (ConnectionError, ssl.SSLError, OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.closed.set()
            for stream_id, pending in list(self._pending.items()):
                if not pending.future.done():
                    pending.future.set_exception(ConnectionClosed(f"stream {stream_id}: connection closed"))
            self._pending.clear()
            self._wake_all()

    async def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            pending = self._pending.get(event.stream_id)
            if pending is not None:
                headers = dict(event.headers or ())
                pending.status = int(headers.pop(":status"))
                pending.headers = headers
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            pending = self._pending.get(event.stream_id)
            if pending is not None:
                pending.chunks.append(event.data or b"")
        elif isinstance(event, h2.events.StreamEnded):
            pending = self._pending.pop(event.stream_id, None)
            if pending is not None and not pending.future.done():
                response = H2Response(
                    pending.status, pending.headers, b"".join(pending.chunks), event.stream_id
                )
                pending.future.set_result(response)
            self._wake_slots()
        elif isinstance(event, h2.events.StreamReset):
            pending = self._pending.pop(event.stream_id, None)
            if pending is not None and not pending.future.done():
                pending.future.set_exception(StreamWasReset(event.stream_id, int(event.error_code or 0)))
            self._wake_slots()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.max_streams_seen.append(self.max_concurrent_streams)
            self._got_settings.set()
            self._wake_slots()
        elif isinstance(event, h2.events.WindowUpdated):
            self._window_changed.set()
            self._window_changed = asyncio.Event()
        elif isinstance(event, h2.events.PingAckReceived):
            self.pings_acknowledged += 1
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = GoAwayInfo(
                event.last_stream_id or 0, int(event.error_code or 0), event.additional_data or b""
            )
            for stream_id in [s for s in self._pending if s > self.goaway.last_stream_id]:
                pending = self._pending.pop(stream_id)
                if not pending.future.done():
                    pending.future.set_exception(
                        ConnectionClosed(f"stream {stream_id} above GOAWAY last_stream_id")
                    )
            self._wake_all()

    def _has_slot(self) -> bool:
        return (
            self.closed.is_set()
            or self.goaway is not None
            or len(self._pending) < self.max_concurrent_streams
        )

    def _wake_slots(self) -> None:
        free = self.max_concurrent_streams - len(self._pending)
        while self._slot_waiters and (free > 0 or self.closed.is_set()):
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def _wake_all(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self._window_changed.set()

    async def request(
        self, method: str, path: str, headers: Sequence[tuple[str, str]] = (), body: bytes = b""
    ) -> H2Response:
        while self.obey_limits and not self._has_slot():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._slot_waiters.append(waiter)
            await waiter
        if self.closed.is_set() or self.goaway is not None:
            raise ConnectionClosed("connection already closed")
        all_headers = [
            (":method", method),
            (":scheme", "https"),
            (":authority", "sandbox"),
            (":path", path),
            *headers,
        ]
        future: asyncio.Future[H2Response] = asyncio.get_running_loop().create_future()
        async with self._send_lock:
            if self.closed.is_set() or self.goaway is not None:
                raise ConnectionClosed("connection closed")
            stream_id = self.h2.get_next_available_stream_id()
            self._pending[stream_id] = _Pending(future)
            self.peak_in_flight = max(self.peak_in_flight, len(self._pending))
            self._track_started()
            self.h2.send_headers(stream_id, all_headers, end_stream=not body)
            view = memoryview(body)
            while view:
                room = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size)
                if room <= 0:
                    self._flush()
                    await self._window_changed.wait()
                    if self.closed.is_set() or stream_id not in self._pending:
                        break
                    continue
                chunk, view = view[:room], view[room:]
                self.h2.send_data(stream_id, chunk.tobytes(), end_stream=not view)
            self._flush()
        return await future

    def _track_started(self) -> None:
        if isinstance(self.h2, _ClientConnection):
            self.h2.in_flight = len(self._pending) - 1
            self._started += 1
            if self._started % 500 == 0:
                self.h2.purge_closed()

    def open_stream(self, path: str, headers: Sequence[tuple[str, str]] = ()) -> int:
        """Send HEADERS without ending the stream (the request stays open); returns the stream id."""
        stream_id = self.h2.get_next_available_stream_id()
        all_headers = [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "sandbox"),
            (":path", path),
            *headers,
        ]
        self._track_started()
        pending = _Pending(asyncio.get_running_loop().create_future())
        self._pending[stream_id] = pending
        self._opened[stream_id] = pending.future
        self.h2.send_headers(stream_id, all_headers)
        self._flush()
        return stream_id

    async def finish_stream(self, stream_id: int, body: bytes) -> H2Response:
        future = self._opened.pop(stream_id)
        if not future.done():  # the server may have refused the stream already
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.h2.send_data(stream_id, body, end_stream=True)
            self._flush()
        return await future

    async def ping(self) -> None:
        self.h2.ping(b"sandbox!")
        self._flush()

    async def close(self) -> None:
        if not self.closed.is_set():
            try:
                self.h2.close_connection()
                self._flush()
            except Exception:  # noqa: S110 - best effort goodbye
                pass
        self._writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
