"""ASGI middleware that keeps bad input and unexpected errors from becoming 5xx.

:class:`InputGuard` refuses text no database can store before any route sees it: a NUL character
(PostgreSQL's ``text`` and ``jsonb`` reject ``\\u0000``) or a lone UTF-16 surrogate (not encodable
as UTF-8), in the path, the query string or a JSON body. The answer is a 422 that names the field.

:class:`CatchAll` answers an exception no handler took with a JSON 500 (no traceback in the body;
the traceback goes to the log) and, unlike Starlette's own handler, does not re-raise it, so the
server keeps the keep-alive connection open for the client's next request.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body

__all__ = ["CatchAll", "InputGuard", "bad_text", "find_bad_text"]

log = logging.getLogger("pushrelay.server")

# cheap byte-level pre-checks: only a body that matches one of them is parsed a second time
_SUSPECT = re.compile(rb"\\u0000|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\x00|%00")
_SKIPPED_TYPES = ("multipart/", "application/octet-stream")


def bad_text(text: str) -> str | None:
    """Why ``text`` cannot be stored as given, or None when it can."""
    if "\x00" in text:
        return "NUL characters (\\u0000) are not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "the text holds a lone UTF-16 surrogate, which is not valid Unicode"
    return None


def find_bad_text(value: Any, path: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """The first (dotted field, reason) in a JSON value whose keys or strings :func:`bad_text`
    refuses, depth first; None when all of it can be stored."""
    if isinstance(value, str):
        why = bad_text(value)
        return None if why is None else (".".join(path), why)
    if isinstance(value, dict):
        for k, v in value.items():
            why = bad_text(k)
            if why is not None:
                return ".".join((*path, k.encode("utf-8", "backslashreplace").decode()[:60])), why
            found = find_bad_text(v, (*path, k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = find_bad_text(v, (*path, str(i)))
            if found:
                return found
    return None


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


class InputGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = self._in_path(scope) or self._in_query(scope)
        if found is None and scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            content_type = dict(scope.get("headers", [])).get(b"content-type", b"").decode("latin-1").lower()
            if not content_type.startswith(_SKIPPED_TYPES):
                body, more = await _read_body(receive)
                if _SUSPECT.search(body):
                    found = _in_body(body, content_type)
                receive = _replay(body, more, receive)
        if found is not None:
            field, why = found
            await _answer(send, 422, error_body("invalid_request", f"{field}: {why}", field))
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _in_path(scope: Scope) -> tuple[str, str] | None:
        path = str(scope.get("path", ""))
        if bad_text(path) is None:
            return None
        # name the path parameter of the route the path matches (``/v1/notifications/{nid}`` -> nid)
        for template in _templates(scope.get("app")):
            m = template.fullmatch(path)
            if m is not None:
                for name, value in m.groupdict().items():
                    why = bad_text(value)
                    if why is not None:
                        return name, why
        why = bad_text(path)
        assert why is not None
        return "path", why

    @staticmethod
    def _in_query(scope: Scope) -> tuple[str, str] | None:
        raw = scope.get("query_string", b"")
        if not raw:
            return None
        for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            for text in (name, value):
                why = bad_text(text)
                if why is not None:
                    return (name if bad_text(name) is None else "query"), why
        return None


_TEMPLATES: dict[int, list[re.Pattern[str]]] = {}


def _templates(app: Any) -> list[re.Pattern[str]]:
    """The app's path templates as patterns, from its OpenAPI document (built once, on the first
    refused path)."""
    if app is None or not hasattr(app, "openapi"):
        return []
    found = _TEMPLATES.get(id(app))
    if found is None:
        found = []
        for template in app.openapi().get("paths", {}):
            parts = re.split(r"\{(\w+)\}", template)
            pattern = "".join(
                f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
            )
            found.append(re.compile(pattern))
        _TEMPLATES[id(app)] = found
    return found


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body (the body-size limit outside this middleware bounds it)."""
    chunks: list[bytes] = []
    while True:
        msg = await receive()
        if msg["type"] != "http.request":  # the client went away: let the app see it
            return b"".join(chunks), False
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, _more: bool, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _in_body(body: bytes, content_type: str) -> tuple[str, str] | None:
    if "x-www-form-urlencoded" in content_type:
        for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            why = bad_text(name) or bad_text(value)
            if why is not None:
                return name, why
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None  # not JSON: the route's own parsing answers it
    return find_bad_text(parsed)


class CatchAll:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # half an answer is out: only closing the connection can tell the client
            await _answer(
                send,
                500,
                error_body("internal_error", "an unexpected error occurred; it has been logged"),
            )
