"""The console's pages under ``/console``: server-rendered (Jinja2), htmx for live parts.

Every page needs a session (see :mod:`.sessions`); every POST needs the session's CSRF token, in
the form (``csrf``) or, from htmx, in the ``X-CSRF-Token`` header. Sending goes through the API's
own checks (:func:`~pushrelay.server.send_requests.request_from`), so the composer refuses exactly
what ``POST /v1/notifications`` refuses, with the same message and field.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from ..apns import TokenAuth
from ..queue.interface import IdempotencyConflict
from ..queue.models import utcnow
from ..server.apikeys import SCOPES, KeyError_
from ..server.errors import ApiError
from ..server.guards import cursor_decode, cursor_encode
from ..server.schemas import SendBody
from ..server.send_requests import request_from
from ..server.service import Service
from . import queries
from .preview import render_all
from .sessions import COOKIE, ConsoleSession, SessionStore

__all__ = ["console_routes"]

_HERE = Path(__file__).parent
_LOGIN_CSRF = "pushrelay_console_login"
_TERMINAL = ("completed", "cancelled")
_STATES = ("scheduled", "pending", "expanding", "sending", "completed", "cancelled")
PAGE = 50


def _when(dt: datetime | None) -> str:
    if dt is None:
        return "—"
    return dt.replace(tzinfo=dt.tzinfo or UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _device_id(text: str) -> int | None:
    """A device id from a URL, or None: ids are 64-bit, and a larger number would overflow the
    database's integer (a 500) rather than find nothing."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 <= value < 2**63 else None


def _lines(text: str) -> list[str]:
    return [p.strip() for p in text.replace(",", "\n").splitlines() if p.strip()]


templates = Jinja2Templates(directory=str(_HERE / "templates"))
templates.env.filters["when"] = _when
templates.env.filters["pretty"] = lambda v: json.dumps(v, ensure_ascii=False, indent=2, default=str)


class _SignIn(Exception):
    """Raised by a page that needs a session when there is none."""


def console_routes(service: Service) -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)
    sessions = SessionStore(service.keys, service.db.engine)
    engine = service.db.engine
    outbox = service.outbox

    def apps_of(session: ConsoleSession) -> list[str]:
        names = sorted(service.apps or service.app_configs or ())
        return [a for a in names if session.key.allows_app(a)]

    def secure(request: Request) -> bool:
        # behind TLS (directly, or a proxy uvicorn trusts for X-Forwarded-Proto)
        return request.url.scheme == "https"

    def page(request: Request, name: str, session: ConsoleSession | None, **ctx: Any) -> HTMLResponse:
        ctx.update(request=request, session=session, csrf=session.csrf if session else "")
        if session is not None:
            ctx.setdefault("apps", apps_of(session))
            ctx["restricted"] = bool(session.apps)
        return templates.TemplateResponse(request, name, ctx, status_code=ctx.pop("status", 200))

    def current(request: Request) -> ConsoleSession:
        session = sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise _SignIn
        return session

    async def posted(request: Request, session: ConsoleSession) -> dict[str, Any]:
        """The form, once its CSRF token checked (403 otherwise)."""
        form = await request.form()
        presented = request.headers.get("x-csrf-token") or str(form.get("csrf") or "")
        if not session.check_csrf(presented):
            raise ApiError(403, "csrf", "the form's CSRF token is missing or wrong: reload the page")
        out: dict[str, Any] = {}
        for k in form:
            values = [str(v) for v in form.getlist(k)]
            out[k] = values if len(values) > 1 else values[0]
        return out

    def guarded(
        handler: Callable[[Request, ConsoleSession], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request, current(request))
            except _SignIn:
                if request.headers.get("hx-request"):
                    return Response(status_code=401, headers={"HX-Redirect": "/console/login"})
                return RedirectResponse("/console/login", status_code=303)
            except ApiError as exc:
                return page(
                    request, "error.html", sessions.get(request.cookies.get(COOKIE)),
                    status=exc.status, message=exc.message, field=exc.field,
                )  # fmt: skip

        run.__name__ = handler.__name__
        return run

    def allowed_app(session: ConsoleSession, app: str | None) -> str:
        visible = apps_of(session)
        if app is None or app == "":
            if not visible:
                raise ApiError(404, "not_found", "no app is configured (or visible to this key)")
            return visible[0]
        if app not in visible:
            raise ApiError(404, "not_found", f"no app named '{app}' here", field="app")
        return app

    # -- sign-in ----------------------------------------------------------------------------------
    def login_page(request: Request, status: int = 200, error: str | None = None) -> Response:
        # the form's CSRF token is a double-submit cookie: there is no session yet to keep it in
        token = secrets.token_urlsafe(32)
        resp = page(request, "login.html", None, status=status, login_csrf=token, error=error)
        resp.set_cookie(
            _LOGIN_CSRF, token, httponly=True, samesite="strict", secure=secure(request), path="/console"
        )
        return resp

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        return login_page(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        expected = request.cookies.get(_LOGIN_CSRF) or ""
        presented = str(form.get("csrf") or "")
        if not expected or not secrets.compare_digest(expected, presented):
            return login_page(request, 403, "The sign-in form expired: reload the page and try again.")
        found = await asyncio.to_thread(sessions.sign_in, str(form.get("api_key") or ""))
        if found is None:
            return login_page(request, 401, "This key is unknown, revoked, or lacks the admin scope.")
        sid, _session = found
        done = RedirectResponse("/console/", status_code=303)
        done.set_cookie(COOKIE, sid, httponly=True, samesite="strict", secure=secure(request), path="/console",
                        max_age=int(sessions.ttl))  # fmt: skip
        done.delete_cookie(_LOGIN_CSRF, path="/console")
        return done

    async def _logout(request: Request, session: ConsoleSession) -> Response:
        await posted(request, session)
        sessions.sign_out(request.cookies.get(COOKIE))
        resp = RedirectResponse("/console/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/console")
        return resp

    router.add_api_route("/logout", guarded(_logout), methods=["POST"])

    # -- apps -------------------------------------------------------------------------------------
    def credentials(app_name: str) -> list[dict[str, str]]:
        cfg = service.app_config(app_name)
        out: list[dict[str, str]] = []
        if cfg.apns is not None and cfg.apns.has_credentials:
            item = {"platform": "APNs", "environment": cfg.apns.environment}
            try:
                auth = cfg.apns.load_auth(app=app_name)
                if isinstance(auth, TokenAuth):
                    item["kind"] = f"token key {auth.key_id} (team {auth.team_id})"
                    item["expiry"] = "a .p8 key does not expire (until revoked at Apple)"
                else:
                    item["kind"] = f"certificate {auth.subject}"
                    item["expiry"] = _when(auth.not_after)
                    days = (auth.not_after - datetime.now(UTC)).days
                    item["warn"] = "expired" if days < 0 else (f"expires in {days} days" if days < 30 else "")
            except Exception as exc:  # a key the service cannot read: say why, never the secret
                item["kind"] = "unreadable"
                item["warn"] = f"{type(exc).__name__}: {exc}"
            out.append(item)
        if cfg.fcm is not None:
            out.append(
                {"platform": "FCM", "kind": "service account", "expiry": "access tokens renewed hourly"}
            )
        if cfg.webpush is not None:
            out.append({"platform": "Web Push", "kind": "VAPID key", "expiry": "does not expire"})
        return out

    async def apps_page(request: Request, session: ConsoleSession) -> Response:
        names = apps_of(session)

        def read() -> dict[str, Any]:
            paused = {p.app: p for p in outbox.paused_apps()}
            return {
                "paused": paused,
                "depth": queries.open_deliveries(engine, names),
                "rates": queries.delivery_rates(engine, names),
                "creds": {a: credentials(a) for a in names},
            }

        data = await asyncio.to_thread(read)
        return page(request, "apps.html", session, names=names, **data, nav="apps")

    async def resume_app(request: Request, session: ConsoleSession) -> Response:
        await posted(request, session)
        app = allowed_app(session, request.path_params["app"])
        await asyncio.to_thread(outbox.resume, app)
        return RedirectResponse("/console/apps", status_code=303)

    router.add_api_route("/", guarded(apps_page), methods=["GET"])
    router.add_api_route("/apps", guarded(apps_page), methods=["GET"])
    router.add_api_route("/apps/{app}/resume", guarded(resume_app), methods=["POST"])

    # -- devices ----------------------------------------------------------------------------------
    async def devices_page(request: Request, session: ConsoleSession) -> Response:
        app = allowed_app(session, request.query_params.get("app"))
        q = request.query_params.get("q", "")
        after = _device_id(request.query_params.get("after") or "0")
        if after is None:
            raise ApiError(400, "invalid_cursor", "after must be a device id", field="after")
        result = await asyncio.to_thread(
            queries.search_devices, service.registry, app, q, after=after, limit=PAGE
        )
        return page(request, "devices.html", session, app=app, q=q, result=result, nav="devices")

    async def device_page(request: Request, session: ConsoleSession) -> Response:
        device_id = _device_id(request.path_params["device_id"])
        if device_id is None:
            raise ApiError(404, "not_found", "no such device", field="id")
        device = await asyncio.to_thread(queries.device_by_id, engine, device_id)
        if device is None or not session.key.allows_app(device.app):
            raise ApiError(404, "not_found", "no such device", field="id")
        recent = await asyncio.to_thread(queries.device_deliveries, engine, device.app, device.token)
        return page(request, "device.html", session, device=device, recent=recent, nav="devices")

    router.add_api_route("/devices", guarded(devices_page), methods=["GET"])
    router.add_api_route("/devices/{device_id}", guarded(device_page), methods=["GET"])

    # -- notifications ----------------------------------------------------------------------------
    async def notifications_page(request: Request, session: ConsoleSession) -> Response:
        params = request.query_params
        app = params.get("app") or None
        if app is not None:
            allowed_app(session, app)
        state = params.get("state") or None
        if state is not None and state not in _STATES:
            raise ApiError(
                400, "invalid_request", f"state must be one of {', '.join(_STATES)}", field="state"
            )
        before = None
        if params.get("cursor"):
            ts, _, last = cursor_decode(params["cursor"]).partition("|")
            try:
                before = (datetime.fromisoformat(ts), last)
            except ValueError:
                raise ApiError(
                    400, "invalid_cursor", "cursor is not one this page made", field="cursor"
                ) from None

        def read() -> tuple[list[Any], dict[str, str]]:
            items = outbox.list_notifications(
                app=app, apps=session.apps or None, state=state, limit=PAGE + 1, before=before
            )
            return items, queries.surfaces(engine, [i.id for i in items])

        items, surf = await asyncio.to_thread(read)
        nxt = None
        if len(items) > PAGE:
            last_item = items[PAGE - 1]
            nxt = cursor_encode(f"{last_item.created_at.isoformat()}|{last_item.id}")
        return page(
            request, "notifications.html", session, items=items[:PAGE], surfaces=surf, next_cursor=nxt,
            app=app or "", state=state or "", states=_STATES, nav="notifications",
        )  # fmt: skip

    async def load_notification(request: Request, session: ConsoleSession) -> dict[str, Any]:
        nid = request.path_params["nid"]
        st = await asyncio.to_thread(outbox.status, nid)
        if st is None or not session.key.allows_app(st.app):
            raise ApiError(404, "not_found", f"no notification with id {nid}", field="id")
        after = 0
        if request.query_params.get("after"):
            try:
                after = int(request.query_params["after"])
            except ValueError:
                raise ApiError(400, "invalid_cursor", "after must be a delivery id", field="after") from None
        deliveries = await asyncio.to_thread(outbox.deliveries, nid, limit=PAGE, after=after)
        surf = await asyncio.to_thread(queries.surfaces, engine, [nid])
        return {"n": st, "deliveries": deliveries, "after": after, "live": st.state not in _TERMINAL,
                "surface": surf.get(nid)}  # fmt: skip

    async def notification_page(request: Request, session: ConsoleSession) -> Response:
        ctx = await load_notification(request, session)
        st = ctx["n"]
        rendered = render_all(st.notification, service.app_config(st.app))
        return page(request, "notification.html", session, rendered=rendered, nav="notifications", **ctx)

    async def notification_live(request: Request, session: ConsoleSession) -> Response:
        ctx = await load_notification(request, session)
        return page(request, "_notification_live.html", session, **ctx)

    router.add_api_route("/notifications", guarded(notifications_page), methods=["GET"])
    router.add_api_route("/notifications/{nid}", guarded(notification_page), methods=["GET"])
    router.add_api_route("/notifications/{nid}/live", guarded(notification_live), methods=["GET"])

    # -- composer ---------------------------------------------------------------------------------
    def body_from(form: dict[str, Any]) -> SendBody:
        """The form as the API's request body: every check after this one is the API's."""
        note: dict[str, Any] = {}
        for name in ("title", "subtitle", "body", "sound", "category", "url", "imageUrl", "color"):
            value = str(form.get(name) or "").strip()
            if value:
                note[name] = value
        badge = str(form.get("badge") or "").strip()
        if badge:
            try:
                note["badge"] = int(badge)
            except ValueError:
                raise ApiError(422, "invalid_notification", "badge must be a whole number",
                               field="notification.badge") from None  # fmt: skip
        user_info = str(form.get("userInfo") or "").strip()
        if user_info:
            try:
                note["userInfo"] = json.loads(user_info)
            except json.JSONDecodeError as exc:
                raise ApiError(422, "invalid_notification", f"userInfo is not JSON: {exc.msg}",
                               field="notification.userInfo") from None  # fmt: skip
        mode = str(form.get("to") or "emails")
        targets = form.get("targets")
        recipients: dict[str, Any] = {}
        if mode == "all":
            recipients["all"] = True
        elif mode == "tokens":
            recipients["device_tokens"] = _lines(str(form.get("recipients") or ""))
        else:
            recipients["emails"] = _lines(str(form.get("recipients") or ""))
        raw: dict[str, Any] = {"app": form.get("app"), "notification": note, "recipients": recipients}
        if targets:
            raw["targets"] = targets if isinstance(targets, list) else [targets]
        try:
            return SendBody.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ()))
            raise ApiError(422, "invalid_request", f"{field}: {first.get('msg')}", field=field) from None

    async def compose_page(request: Request, session: ConsoleSession) -> Response:
        app = allowed_app(session, request.query_params.get("app"))
        return page(request, "compose.html", session, app=app, form={}, nav="compose")

    async def compose_preview(request: Request, session: ConsoleSession) -> Response:
        form = await posted(request, session)
        ctx: dict[str, Any] = {}
        try:
            body = body_from(form)
            allowed_app(session, body.app)
            req = request_from(body, key_id=session.key.id, now=utcnow())
            ctx["rendered"] = render_all(req.notification, service.app_config(body.app))
        except ApiError as exc:
            ctx.update(error=exc.message, field=exc.field)
        return page(request, "_preview.html", session, **ctx)

    async def compose_send(request: Request, session: ConsoleSession) -> Response:
        form = await posted(request, session)
        try:
            body = body_from(form)
            app = allowed_app(session, body.app)
            req = request_from(body, key_id=session.key.id, now=utcnow())
            result = await asyncio.to_thread(outbox.enqueue, req)
        except (ApiError, IdempotencyConflict) as exc:
            message = exc.message if isinstance(exc, ApiError) else str(exc)
            field = exc.field if isinstance(exc, ApiError) else "idempotency_key"
            return page(request, "compose.html", session, app=form.get("app") or "", form=form, status=422,
                        error=message, field=field, nav="compose")  # fmt: skip
        if result.created:
            service.metrics.accepted.labels(app).inc()
            service.wake_workers()
        return RedirectResponse(f"/console/notifications/{result.id}", status_code=303)

    router.add_api_route("/compose", guarded(compose_page), methods=["GET"])
    router.add_api_route("/compose/preview", guarded(compose_preview), methods=["POST"])
    router.add_api_route("/compose", guarded(compose_send), methods=["POST"])

    # -- keys -------------------------------------------------------------------------------------
    def unrestricted(session: ConsoleSession) -> None:
        # an app-restricted admin must not mint keys for other apps, nor revoke theirs
        if session.apps:
            raise ApiError(
                403, "forbidden", "keys are managed with an admin key that is not restricted to apps"
            )

    async def keys_page(request: Request, session: ConsoleSession, **extra: Any) -> Response:
        unrestricted(session)
        keys = await asyncio.to_thread(service.keys.list)
        keys.sort(key=lambda k: (k.revoked_at is not None, k.created_at), reverse=False)
        return page(request, "keys.html", session, keys=keys, scopes=SCOPES, nav="keys", **extra)

    async def keys_create(request: Request, session: ConsoleSession) -> Response:
        unrestricted(session)
        form = await posted(request, session)
        scopes = form.get("scopes") or []
        scopes = scopes if isinstance(scopes, list) else [scopes]
        apps = _lines(str(form.get("apps") or ""))
        unknown = [a for a in apps if not service.knows_app(a)]
        try:
            if unknown:
                raise KeyError_(f"unknown app: {', '.join(unknown)}")
            key, secret = await asyncio.to_thread(
                service.keys.create, scopes, apps, str(form.get("name") or "").strip() or None
            )
        except KeyError_ as exc:
            return await keys_page(request, session, error=str(exc), status=422)
        return await keys_page(request, session, created=key, secret=secret)

    async def keys_revoke(request: Request, session: ConsoleSession) -> Response:
        unrestricted(session)
        await posted(request, session)
        await asyncio.to_thread(service.keys.revoke, request.path_params["key_id"])
        return RedirectResponse("/console/keys", status_code=303)

    router.add_api_route("/keys", guarded(keys_page), methods=["GET"])
    router.add_api_route("/keys", guarded(keys_create), methods=["POST"])
    router.add_api_route("/keys/{key_id}/revoke", guarded(keys_revoke), methods=["POST"])

    return router
