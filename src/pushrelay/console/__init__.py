"""The web console: ``/console`` (apps, devices, notifications, composer, keys), the home page ``/``
linking it and the API docs, and the offline assets the pages load.

Server-rendered with Jinja2, plain CSS and htmx (vendored byte-for-byte from the npm registry at
``pushrelay/_assets/htmx.min.js``): no Node toolchain to install or run it, and no page loads a
third-party URL.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..server.service import Service
from .routes import console_routes, templates

__all__ = ["SecurityHeaders", "install_console"]

_HERE = Path(__file__).parent
_ASSETS = _HERE.parent / "_assets"

#: no inline script or style anywhere in the console, so the policy can forbid them
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: Swagger UI and ReDoc start with an inline script; what this adds is that they may reach nothing
#: but this server (ReDoc's footer fetches a logo from its CDN: blocked, the image hides itself)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_DOCS = ("/docs", "/redoc")
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """CSP and friends on the console's responses (``/`` and ``/console...``), and a CSP keeping
    the API docs on this server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path in _DOCS:

            async def send_docs(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"content-security-policy", DOCS_CSP.encode()),
                    ]
                await send(message)

            await self.app(scope, receive, send_docs)
            return
        if not (path == "/" or path.startswith("/console")):
            await self.app(scope, receive, send)
            return
        static = path.startswith("/console/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"cache-control" or not static]
                names = {h[0] for h in headers}
                for name, value in _HEADERS:
                    if name == b"cache-control" and static:
                        value = b"public, max-age=3600"
                    if name not in names:
                        headers.append((name, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_console(app: FastAPI, service: Service) -> None:
    app.add_middleware(SecurityHeaders)
    app.mount("/console/static/vendor", StaticFiles(directory=str(_ASSETS)), name="console-vendor")
    app.mount("/console/static", StaticFiles(directory=str(_HERE / "static")), name="console-static")
    app.include_router(console_routes(service))

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "home.html", {"session": None, "csrf": ""})
