"""The sandbox inbox: a local web page listing every fake device and what it received.

``pushrelay sandbox`` and ``pushrelay demo`` serve it; from Python::

    async with SandboxStack.serve(directory) as stack:
        inbox = Inbox.for_stack(stack)
        async with serve_inbox(inbox, port=0) as url:
            ...   # open url in a browser

See docs/sandbox.md ("The inbox").
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn

from .app import PLATFORM_NAMES, Inbox

__all__ = ["PLATFORM_NAMES", "Inbox", "InboxListenError", "serve_inbox"]


class InboxListenError(OSError):
    """The inbox could not listen on its port (the message says where)."""


@contextlib.asynccontextmanager
async def serve_inbox(inbox: Inbox, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``inbox`` on this event loop; yields its URL (``http://127.0.0.1:<port>/``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and without it a
    # keep-alive client (a browser polling) waits 40 ms for every answer (Nagle + delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise InboxListenError(
            exc.errno, f"cannot listen on {host}:{port} for the inbox: {exc.strerror or exc}"
        ) from None
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(inbox.app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # the caller handles signals
    task = asyncio.create_task(server.serve(sockets=[sock]), name="sandbox-inbox")
    try:
        while not server.started and not task.done():  # noqa: ASYNC110  # uvicorn exposes readiness as a flag
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound}/"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
