"""What the FCM, OAuth and Web Push sandboxes share: serving, lifecycle, and a JSON control API.

:class:`HttpsSandbox` serves a sandbox's routes over HTTPS on 127.0.0.1 (HTTP/2 and HTTP/1.1, see
:mod:`.dualstack`) with its TLS material in a directory (a temporary one by default), as an
``async with`` context or, for synchronous code, in a background thread (:meth:`running`).

:class:`ControlApi` answers ``/_sandbox/<name>`` requests from a table of endpoints, so a sandbox
started by ``pushrelay sandbox`` can be driven from another process (curl works: JSON in and out,
errors ``{"error": "..."}`` with 400 for bad input, 404 for an unknown endpoint, 405 for a wrong
method).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, cast
from urllib.parse import parse_qs, urlsplit

from .dualstack import DualStackServer, serve_in_thread
from .server import Handler, Request, Response

__all__ = ["CONTROL_PREFIX", "BadInput", "ControlApi", "HttpsSandbox", "json_field"]

CONTROL_PREFIX = "/_sandbox/"
_JSON = ("content-type", "application/json")

Query = Mapping[str, list[str]]
Endpoint = Callable[[Query, dict[str, Any]], Any]
"""``(query, json body) -> JSON-ready answer`` (200), or ``(status, answer)``; raises BadInput."""


class BadInput(ValueError):
    """A control request is malformed: answered 400 with the message."""


def json_field(body: Mapping[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    """``body[name]`` checked to be a ``kind`` (None when absent and not required)."""
    value = body.get(name)
    if value is None:
        if required:
            raise BadInput(f"{name}: required")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadInput(f"{name}: expected {kind.__name__}, got {value!r}")
    return value


class ControlApi:
    """The ``/_sandbox/`` route of a sandbox: ``endpoints`` maps ``(method, name)`` to a handler."""

    def __init__(self, endpoints: Mapping[tuple[str, str], Endpoint]) -> None:
        self.endpoints = dict(endpoints)

    def handle(self, request: Request) -> Response:
        parts = urlsplit(request.path)
        name = parts.path[len(CONTROL_PREFIX) :].strip("/")
        endpoint = self.endpoints.get((request.method, name))
        if endpoint is None:
            methods = sorted(m for m, n in self.endpoints if n == name)
            if methods:
                return _answer(
                    405, {"error": f"{parts.path} takes {', '.join(methods)}, not {request.method}"}
                )
            names = ",".join(sorted({n for _, n in self.endpoints}))
            return _answer(
                404, {"error": f"unknown control endpoint {parts.path}; try /_sandbox/{{{names}}}"}
            )
        try:
            body = _json_object(request.body) if request.method in ("POST", "PUT") else {}
            answer = endpoint(parse_qs(parts.query), body)
        except (BadInput, ValueError) as exc:
            return _answer(400, {"error": str(exc)})
        if isinstance(answer, tuple):
            return _answer(*answer)
        return _answer(200, answer)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadInput(f"body: expected a JSON object ({exc})") from None
    if not isinstance(body, dict):
        raise BadInput("body: expected a JSON object")
    return body


def _answer(status: int, data: Any) -> Response:
    return Response(status, [_JSON], json.dumps(data).encode())


class HttpsSandbox:
    """Base of the FCM, OAuth and Web Push sandboxes (see the module docstring).

    A subclass gives its :meth:`routes` (path prefix -> handler) and may act once the URL is known
    (:meth:`_started`).
    """

    #: In error messages and temporary folder names.
    kind: ClassVar[str] = "local"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, directory: str | Path | None = None
    ) -> None:
        """``directory``: where the TLS material (``ca.pem``...) goes; a temporary one by default."""
        self._host, self._port = host, port
        self._directory = Path(directory) if directory is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: DualStackServer | None = None
        self.url = ""

    def routes(self) -> dict[str, Handler]:
        raise NotImplementedError

    def _started(self) -> None:
        """Called once :attr:`url` is known."""

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) clients must trust: TLS verification stays on."""
        if self._server is None:
            raise RuntimeError(f"the {self.kind} sandbox is not running")
        return self._server.ca_file

    async def __aenter__(self) -> Self:
        directory = self._directory
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"pushrelay-{self.kind.lower().replace(' ', '')}-")
            directory = Path(self._tmp.name)
        self._server = DualStackServer(directory)
        for prefix, handler in self.routes().items():
            self._server.add_route(prefix, handler)
        try:
            port = await self._server.start(self._host, self._port)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        self.url = f"https://{self._host}:{port}"
        self._started()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @classmethod
    def running(cls, **kwargs: Any) -> AbstractContextManager[Self]:
        """The sandbox in a background thread, for synchronous code."""

        # mypy does not match Self against the async context manager protocol: say it
        return serve_in_thread(lambda: cast(AbstractAsyncContextManager[Self], cls(**kwargs)))
