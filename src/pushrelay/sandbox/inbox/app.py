"""The inbox web page: Starlette, Jinja2 templates, plain CSS and htmx (vendored, no build step).

Local-only by design: it listens on 127.0.0.1, answers only requests whose ``Host`` is a loopback name
(a page on another site cannot reach it through DNS rebinding), and every form carries a per-process
CSRF token and is refused when its ``Origin`` is another site. Pages are server-rendered and work
without JavaScript; htmx adds the live updates (polling) and in-place form posts.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import fcm as fcm_sandbox
from .. import scripting
from .. import webpush as webpush_sandbox
from ..apns_sandbox import ApnsSandbox
from ..fcm import FcmSandbox
from ..records import PLATFORMS, InboxLog, Platform
from ..webpush import WebPushSandbox
from .views import device_label, show

__all__ = ["PLATFORM_NAMES", "Inbox"]

PLATFORM_NAMES: dict[str, str] = {
    "apns": "iOS (APNs)",
    "fcm": "Android (FCM)",
    "webpush": "Browser (Web Push)",
}
PAGE_SIZE = 50
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_CSP = (
    "default-src 'self'; img-src 'self' data: https: http:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class _Scriptable:
    """How the page scripts one platform's devices: the sandbox's own scripting, nothing new."""

    behaviours: dict[str, str]  # name -> what the device then answers
    add: Callable[[str, str, int | None], None]
    clear: Callable[[str], None]
    pending: Callable[[str], list[str]]


class Inbox:
    """The inbox page for the sandboxes given (any of them may be absent).

    ``Inbox.for_stack(stack)`` attaches a fresh :class:`InboxLog` to the three sandboxes of a
    :class:`~pushrelay.sandbox.stack.SandboxStack`; :attr:`app` is the ASGI application.
    """

    def __init__(
        self,
        log: InboxLog,
        *,
        apns: ApnsSandbox | None = None,
        fcm: FcmSandbox | None = None,
        web: WebPushSandbox | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.log = log
        self.poll_seconds = poll_seconds
        self.csrf_token = secrets.token_urlsafe(32)
        self._scripting: dict[str, _Scriptable] = {}
        if apns is not None:
            self._scripting["apns"] = _apns_scripting(apns)
        if fcm is not None:
            self._scripting["fcm"] = _fcm_scripting(fcm)
        if web is not None:
            self._scripting["webpush"] = _webpush_scripting(web)
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("pushrelay.sandbox.inbox", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._templates.globals.update(
            platform_names=PLATFORM_NAMES, device_label=device_label, quote=lambda s: quote(s, safe="")
        )
        self._assets = {
            "htmx.min.js": (resources.files("pushrelay._assets") / "htmx.min.js").read_bytes(),
            "inbox.css": (resources.files("pushrelay.sandbox.inbox") / "static" / "inbox.css").read_bytes(),
        }
        starlette = Starlette(
            routes=[
                Route("/", self._page),
                Route("/feed", self._feed),
                Route("/script", self._script, methods=["POST"]),
                Route("/script/clear", self._clear, methods=["POST"]),
                Route("/assets/{name}", self._asset),
            ]
        )
        self.app: Asgi = _LocalOnly(starlette)

    @classmethod
    def for_stack(cls, stack: Any, *, limit: int = 10_000, poll_seconds: float = 1.0) -> Inbox:
        """Attach an inbox to ``stack``'s sandboxes (APNs, FCM, Web Push)."""
        log = stack.attach_inbox(limit=limit)
        return cls(log, apns=stack.apns, fcm=stack.fcm, web=stack.web, poll_seconds=poll_seconds)

    # -- pages -----------------------------------------------------------------------------------------
    async def _page(self, request: Request) -> Response:
        platform, device = _device_param(request.query_params.get("device"))
        before = _int(request.query_params.get("before"))
        entries = self.log.entries(before=before, platform=platform, device=device, limit=PAGE_SIZE + 1)
        older = entries[PAGE_SIZE].id + 1 if len(entries) > PAGE_SIZE else None
        context = {
            "shown": [show(e) for e in entries[:PAGE_SIZE]],
            "older": older,
            "live": before is None,  # an older page stays still
            "after": self.log.last_id,
            "selected": (platform, device) if device is not None else None,
            "panel": self._panel(platform, device) if device is not None and platform else None,
            **self._common(),
        }
        return self._render("page.html", context)

    async def _feed(self, request: Request) -> Response:
        """What arrived after ``after``: entries to prepend, the device list, the next poller."""
        platform, device = _device_param(request.query_params.get("device"))
        after = _int(request.query_params.get("after")) or 0
        entries = self.log.entries(after=after, platform=platform, device=device, limit=PAGE_SIZE)
        context = {
            "shown": [show(e) for e in entries],
            "after": max([after, *(e.id for e in entries)]),
            "selected": (platform, device) if device is not None else None,
            "changed": bool(entries) or request.query_params.get("devices") != str(len(self.log.devices())),
            # the device's scripts are used up by the requests that just arrived
            "panel": self._panel(platform, device) if entries and device is not None and platform else None,
            **self._common(),
        }
        return self._render("feed.html", context)

    def _common(self) -> dict[str, Any]:
        devices = self.log.devices()
        return {
            "devices": devices,
            "labels": {(d.platform, d.device): self.log.label(d.platform, d.device) for d in devices},
            "total": self.log.total,
            "dropped": self.log.dropped,
            "limit": self.log.limit,
            "csrf": self.csrf_token,
            "poll": self.poll_seconds,
        }

    def _panel(self, platform: str, device: str) -> dict[str, Any] | None:
        scripting_ = self._scripting.get(platform)
        if scripting_ is None:
            return None
        return {
            "platform": platform,
            "device": device,
            "behaviours": scripting_.behaviours,
            "pending": scripting_.pending(device),
            "label": self.log.label(platform, device),  # type: ignore[arg-type]
        }

    # -- scripting -------------------------------------------------------------------------------------
    async def _script(self, request: Request) -> Response:
        form, error = await self._form(request)
        if error is not None:
            return error
        platform, device, scripting_ = form["platform"], form["device"], form["scripting"]
        behaviour = str(form["fields"].get("behaviour", ""))
        if behaviour not in scripting_.behaviours:
            return _bad(f"behaviour: expected one of {', '.join(scripting_.behaviours)}, got {behaviour!r}")
        times_text = str(form["fields"].get("times", "")).strip()
        times: int | None = None
        if times_text:
            if not times_text.isdigit() or int(times_text) < 1:
                return _bad(f"times: expected a whole number ≥ 1, or empty for always, got {times_text!r}")
            times = int(times_text)
        try:
            scripting_.add(device, behaviour, times)
        except (ValueError, KeyError) as exc:
            return _bad(f"device: {exc}")
        return self._after_form(request, platform, device)

    async def _clear(self, request: Request) -> Response:
        form, error = await self._form(request)
        if error is not None:
            return error
        form["scripting"].clear(form["device"])
        return self._after_form(request, form["platform"], form["device"])

    async def _form(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        # url-encoded forms only: a few short fields, parsed here rather than with another dependency
        body = await request.body()
        if len(body) > 16_384:
            return {}, _bad("form: too large")
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        token = str(fields.get("csrf", ""))
        if not hmac.compare_digest(token.encode(), self.csrf_token.encode()):
            return {}, PlainTextResponse("csrf: missing or wrong form token; reload the page", 403)
        platform = str(fields.get("platform", ""))
        scripting_ = self._scripting.get(platform)
        if scripting_ is None:
            return {}, _bad(f"platform: expected one of {', '.join(self._scripting)}, got {platform!r}")
        device = str(fields.get("device", ""))
        if not device:
            return {}, _bad("device: required")
        return {"platform": platform, "device": device, "scripting": scripting_, "fields": fields}, None

    def _after_form(self, request: Request, platform: str, device: str) -> Response:
        if request.headers.get("hx-request") == "true":
            return self._render(
                "panel.html", {"panel": self._panel(platform, device), "csrf": self.csrf_token}
            )
        # without JavaScript: back to the device's page (POST/redirect/GET)
        return RedirectResponse(f"/?device={quote(f'{platform}:{device}', safe='')}", status_code=303)

    # -- plumbing --------------------------------------------------------------------------------------
    async def _asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = self._assets.get(name)
        if body is None:
            return PlainTextResponse("not found", 404)
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return Response(body, media_type=kind, headers={"cache-control": "max-age=3600"})

    def _render(self, name: str, context: dict[str, Any]) -> HTMLResponse:
        return HTMLResponse(self._templates.get_template(name).render(context))


class _LocalOnly:
    """Refuse requests for another host name (DNS rebinding) and forms posted by other sites; add the
    security headers to every answer."""

    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        refusal: str | None = None
        if hostname not in _LOOPBACK:
            refusal = f"host: the inbox answers only 127.0.0.1 / localhost, not {host!r}"
        elif scope["method"] == "POST":
            origin = headers.get("origin")
            if origin is not None and origin != "null" and urlsplit(origin).netloc != host:
                refusal = f"origin: forms must come from this page, not {origin!r}"
        if refusal is not None:
            await PlainTextResponse(refusal, 403)(scope, receive, send)
            return

        async def secured(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", _CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                ]
            await send(message)

        await self.app(scope, receive, secured)


def _apns_scripting(sandbox: ApnsSandbox) -> _Scriptable:
    def pending(token: str) -> list[str]:
        scripts = sandbox.describe()["scripts"].get(token, [])
        return [_describe(s["behaviour"], s["times"]) for s in scripts]

    return _Scriptable(
        {name: b.description for name, b in scripting.BEHAVIOURS.items()},
        lambda token, behaviour, times: sandbox.script(token, behaviour, times=times),
        sandbox.clear_scripts,
        pending,
    )


def _fcm_scripting(sandbox: FcmSandbox) -> _Scriptable:
    def pending(target: str) -> list[str]:
        script = sandbox.service.scripts().get(target)
        return [_describe(script["behaviour"], script["times"])] if script else []

    return _Scriptable(
        {name: f"{status} {code}" for name, (status, _, code, _) in fcm_sandbox.BEHAVIOURS.items()},
        lambda target, behaviour, times: sandbox.script(target, behaviour, times=times),
        sandbox.unscript,
        pending,
    )


def _webpush_scripting(sandbox: WebPushSandbox) -> _Scriptable:
    def pending(sub_id: str) -> list[str]:
        script = sandbox.service.scripts().get(sub_id)
        return [_describe(script["behaviour"], script["times"])] if script else []

    return _Scriptable(
        {name: str(status) for name, status in webpush_sandbox.BEHAVIOURS.items()},
        lambda sub_id, behaviour, times: sandbox.script(sub_id, behaviour, times=times),
        sandbox.service.unscript,
        pending,
    )


def _describe(behaviour: str, times: int | None) -> str:
    return f"{behaviour} ({'always' if times is None else f'{times} more'})"


def _device_param(value: str | None) -> tuple[Platform | None, str | None]:
    if not value or ":" not in value:
        return None, None
    platform, _, device = value.partition(":")
    for known in PLATFORMS:
        if platform == known:
            return known, device
    return None, None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _bad(message: str) -> Response:
    return PlainTextResponse(message, 400)
