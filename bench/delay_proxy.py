"""A TCP proxy that delays what the server sends by a fixed time: a far APNs in front of a null one.

    python bench/delay_proxy.py --listen 8463 --upstream 8443 --delay-ms 54

Every byte from the upstream (the null APNs of ``../shared/bench``: nginx, TLS + HTTP/2) reaches the
client ``delay`` ms after the proxy read it; what the client sends goes on at once. So every answer
(and every SETTINGS, WINDOW_UPDATE and PING ACK) arrives one round trip of ``delay`` late, as from
an APNs that far away, while the server itself does no more work than the null sink does. TLS passes
through untouched (the client verifies nginx's certificate).

The proxy works per read, not per request: nginx writes the answers to many requests in one read,
so its CPU per request stays a small fraction of the sender's (``bench/inflight.py`` measures it).
Reads are delayed in order through one queue and one timer per connection.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import deque


class _Upstream(asyncio.Protocol):
    def __init__(self, down: _Downstream) -> None:
        self.down = down

    def data_received(self, data: bytes) -> None:
        self.down.send_late(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.down.close_late()


class _Downstream(asyncio.Protocol):
    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.up: asyncio.Transport | None = None
        self.early: list[bytes] = []  # from the client before the upstream connection is up
        self.late: deque[tuple[float, bytes | None]] = deque()  # (due, data); None: close
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            up, _ = await self.loop.create_connection(
                lambda: _Upstream(self), "127.0.0.1", self.upstream_port
            )
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        self.up = up
        for data in self.early:
            up.write(data)
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        if self.up is None:
            self.early.append(data)
        else:
            self.up.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.up is not None:
            self.up.close()

    def send_late(self, data: bytes | None) -> None:
        self.late.append((self.loop.time() + self.delay, data))
        if self.timer is None:
            self.timer = self.loop.call_at(self.late[0][0], self._due)

    def close_late(self) -> None:
        self.send_late(None)

    def _due(self) -> None:
        self.timer = None
        now = self.loop.time()
        late = self.late
        chunks: list[bytes] = []
        while late and late[0][0] <= now:
            data = late.popleft()[1]
            if data is None:
                if chunks and self.transport is not None:
                    self.transport.write(b"".join(chunks))
                if self.transport is not None:
                    self.transport.close()
                return
            chunks.append(data)
        if chunks and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(chunks))
        if late:
            self.timer = self.loop.call_at(late[0][0], self._due)


async def serve(listen: int, upstream: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Downstream(upstream, delay), "127.0.0.1", listen, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=54.0)
    args = p.parse_args()
    import uvloop

    uvloop.run(serve(args.listen, args.upstream, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
