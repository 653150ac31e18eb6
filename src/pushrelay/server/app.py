"""The HTTP API (FastAPI). Routes are thin: validation here, work in the outbox and registry.

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime, and
the ``Key`` dependency alias is local to :func:`create_app`.
"""

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from .._exceptions import NotificationError
from ..notification import Notification
from ..queue.interface import IdempotencyConflict, NotificationRequest, NotificationStatus, Recipients
from ..queue.models import utcnow
from ..registry.models import Device
from ..registry.tokens import InvalidDeviceError
from .apikeys import ApiKey
from .errors import ApiError, install_error_handlers
from .middleware import BodyLimit, RequestMetrics
from .schemas import DeviceBody, SendBody
from .service import Service

__all__ = ["create_app"]

_TERMINAL = ("completed", "cancelled")


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _naive_utc(dt: datetime | None, field: str) -> datetime | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        raise ApiError(
            422,
            "invalid_request",
            f"{field} must include a time zone (e.g. 2030-01-01T09:00:00Z)",
            field=field,
        )
    return dt.astimezone(UTC).replace(tzinfo=None)


def _status_json(st: NotificationStatus) -> dict[str, Any]:
    return {
        "id": st.id,
        "app": st.app,
        "state": st.state,
        "success": st.success,
        "warnings": st.warnings,
        "errors": st.errors,
        "counts": st.counts,
        "created_at": _iso(st.created_at),
        "send_at": _iso(st.send_at),
        "expires_at": _iso(st.expires_at),
        "completed_at": _iso(st.completed_at),
        "idempotency_key": st.idempotency_key,
    }


def _cursor_encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _cursor_decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned", field="cursor") from None


def create_app(service: Service) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="pushrelay",
        version=__version__,
        description="Self-hosted push notifications (APNs, FCM, Web Push). Authenticate with "
        "`Authorization: Bearer <key>`; create keys with `pushrelay keys create`.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=service.settings.max_body)
    app.add_middleware(RequestMetrics, metrics=service.metrics)
    app.state.service = service

    # -- authentication ------------------------------------------------------------------------
    def authenticate(
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> ApiKey:
        presented = x_api_key
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise ApiError(
                    401,
                    "unauthorized",
                    "Authorization must be 'Bearer <api key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            presented = value.strip()
        if not presented:
            raise ApiError(
                401,
                "unauthorized",
                "an API key is required (Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = service.keys.authenticate(presented)
        if key is None:
            raise ApiError(
                401,
                "unauthorized",
                "the API key is unknown or revoked",
                headers={"WWW-Authenticate": "Bearer"},
            )
        wait = service.limiter.take(key.id)
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests for this key; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        return key

    Key = Annotated[ApiKey, Depends(authenticate)]

    def require(key: ApiKey, scope: str, app_name: str | None = None) -> None:
        if not key.allows_scope(scope):
            raise ApiError(
                403, "forbidden", f"this key lacks the '{scope}' scope (it has: {', '.join(key.scopes)})"
            )
        if app_name is not None and not key.allows_app(app_name):
            raise ApiError(403, "forbidden", f"this key is not allowed for app '{app_name}'", field="app")

    def known_app(app_name: str, field: str = "app") -> None:
        if not service.knows_app(app_name):
            raise ApiError(
                422, "unknown_app", f"app '{app_name}' is not configured in this pushrelay", field=field
            )

    def load(nid: str, key: ApiKey) -> NotificationStatus:
        st = service.outbox.status(nid)
        if st is None or not key.allows_app(st.app):
            # an app-restricted key cannot learn that other apps' notifications exist
            raise ApiError(404, "not_found", f"no notification with id {nid}", field="id")
        return st

    # -- health --------------------------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            service.outbox.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["credentials"] = "ok" if service.credentials_loaded else "no provider credentials loaded"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
        )

    @app.get("/metrics", tags=["operations"])
    def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- devices -------------------------------------------------------------------------------
    @app.post("/v1/devices", status_code=201, tags=["devices"])
    def register_device(body: DeviceBody, key: Key, response: Response) -> dict[str, Any]:
        require(key, "register", body.app)
        known_app(body.app)
        fields = body.model_dump(exclude={"app", "token"})
        try:
            reg = service.registry.register(body.app, body.token, **fields)
        except InvalidDeviceError as exc:
            raise ApiError(422, "invalid_device", str(exc), field=exc.field) from None
        if str(reg.status) != "created":
            response.status_code = 200
        d = reg.device.to_dict()
        for secret in ("web_p256dh", "web_auth"):
            d.pop(secret, None)
        return {"status": str(reg.status), "reactivated": reg.reactivated, "device": d}

    @app.delete("/v1/devices/{token}", status_code=204, tags=["devices"])
    def unregister_device(token: str, key: Key, app_name: Annotated[str, Query(alias="app")]) -> Response:
        require(key, "register", app_name)
        if not service.registry.remove(app_name, token):
            raise ApiError(404, "not_found", f"no device with this token in app '{app_name}'", field="token")
        return Response(status_code=204)

    @app.get("/v1/devices", tags=["devices"])
    def list_devices(
        key: Key,
        app_name: Annotated[str, Query(alias="app")],
        email: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        require(key, "send", app_name)
        after = 0
        if cursor:
            try:
                after = int(_cursor_decode(cursor))
            except ValueError:
                raise ApiError(
                    400, "invalid_cursor", "cursor is not one this API returned", field="cursor"
                ) from None
        # keyset pagination on the registry's (app, id) index
        q = (
            sa.select(Device)
            .where(Device.app == app_name, Device.id > after)
            .order_by(Device.id)
            .limit(limit + 1)
        )
        if email:
            q = q.where(Device.email_norm == email.strip().lower())
        with service.db.session() as s:
            rows = list(s.scalars(q))
        items = [
            {
                "id": d.id,
                "platform": d.platform,
                "token": d.token,
                "email": d.email,
                "environment": d.environment,
                "language": d.language,
                "app_version": d.app_version,
                "os": d.os,
                "os_version": d.os_version,
                "device_model": d.device_model,
                "active": d.active,
                "retired_reason": d.retired_reason,
                "created_at": d.created_at.isoformat(),
                "last_seen_at": d.last_seen_at.isoformat(),
            }
            for d in rows[:limit]
        ]
        nxt = _cursor_encode(str(rows[limit - 1].id)) if len(rows) > limit else None
        return {"items": items, "next_cursor": nxt}

    # -- notifications -------------------------------------------------------------------------
    @app.post("/v1/notifications", status_code=202, tags=["notifications"])
    async def send(
        body: SendBody,
        key: Key,
        request: Request,
        wait: Annotated[float, Query(ge=0, description="seconds to wait for the outcome (max 60)")] = 0,
    ) -> JSONResponse:
        require(key, "send", body.app)
        known_app(body.app)
        note = dict(body.notification)
        if body.priority is not None:
            note["priority"] = body.priority
        if body.collapse_id is not None:
            note["collapse_id"] = body.collapse_id
        try:
            payload = Notification.from_dict(note).to_dict()
        except NotificationError as exc:
            raise ApiError(
                422,
                "invalid_notification",
                str(exc),
                field=f"notification.{exc.field}" if exc.field else "notification",
            ) from None
        r = body.recipients
        if r.all and (r.emails or r.device_tokens):
            raise ApiError(
                422, "invalid_request", "give either all: true or emails/device_tokens", field="recipients"
            )
        if not r.all and not r.emails and not r.device_tokens:
            raise ApiError(
                422, "no_recipient", "Both mails and deviceTokens collections are empty", field="recipients"
            )
        now = utcnow()
        send_at = _naive_utc(body.send_at, "send_at")
        expires_at = _naive_utc(body.expires_at, "expires_at")
        if expires_at is not None and expires_at <= max(now, send_at or now):
            raise ApiError(
                422, "invalid_request", "expires_at must be after now and after send_at", field="expires_at"
            )
        req = NotificationRequest(
            app=body.app,
            notification=payload,
            recipients=Recipients(tuple(r.emails), tuple(r.device_tokens), r.all),
            send_at=send_at,
            expires_at=expires_at,
            targets=tuple(body.targets or ()),
            idempotency_key=body.idempotency_key,
            api_key_id=key.id,
        )
        try:
            res = await asyncio.to_thread(service.outbox.enqueue, req)
        except IdempotencyConflict as exc:
            raise ApiError(409, "idempotency_conflict", str(exc), field="idempotency_key") from None
        if res.created:
            service.metrics.accepted.labels(body.app).inc()
            if service.worker is not None:
                service.worker.wake()
        location = f"/v1/notifications/{res.id}"
        headers = {"Location": location}
        if not res.created:
            headers["Idempotent-Replayed"] = "true"
        if wait <= 0 and res.created:
            # the common path: no second query, the state follows from what was just committed
            state = "scheduled" if send_at is not None and send_at > now else "pending"
            return JSONResponse({"id": res.id, "app": body.app, "state": state}, 202, headers=headers)
        st = await _wait(res.id, min(wait, service.settings.wait_max))
        data = _status_json(st)
        if st.state in _TERMINAL and wait > 0:
            page = await asyncio.to_thread(service.outbox.deliveries, res.id, limit=1000)
            data["deliveries"] = [_delivery_json(d) for d in page]
            return JSONResponse(data, 200, headers=headers)
        return JSONResponse(data, 202 if res.created else 200, headers=headers)

    async def _wait(nid: str, seconds: float) -> NotificationStatus:
        deadline = time.monotonic() + seconds
        delay = 0.02
        while True:
            st = await asyncio.to_thread(service.outbox.status, nid)
            assert st is not None
            if st.state in _TERMINAL or time.monotonic() >= deadline:
                return st
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)

    @app.get("/v1/notifications/{nid}", tags=["notifications"])
    def get_notification(nid: str, key: Key) -> dict[str, Any]:
        require(key, "send")
        st = load(nid, key)
        data = _status_json(st)
        data["notification"] = st.notification
        data["recipients"] = st.recipients
        return data

    @app.get("/v1/notifications/{nid}/deliveries", tags=["notifications"])
    def get_deliveries(
        nid: str, key: Key, limit: Annotated[int, Query(ge=1, le=1000)] = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        require(key, "send")
        load(nid, key)
        after = 0
        if cursor:
            try:
                after = int(_cursor_decode(cursor))
            except ValueError:
                raise ApiError(
                    400, "invalid_cursor", "cursor is not one this API returned", field="cursor"
                ) from None
        page = service.outbox.deliveries(nid, limit=limit, after=after)
        nxt = _cursor_encode(str(page.next_cursor)) if page.next_cursor is not None else None
        return {"items": [_delivery_json(d) for d in page], "next_cursor": nxt}

    @app.delete("/v1/notifications/{nid}", tags=["notifications"])
    def cancel(nid: str, key: Key) -> dict[str, Any]:
        require(key, "send")
        st = load(nid, key)
        if st.state == "completed":
            raise ApiError(409, "already_completed", "the notification is already completed", field="id")
        st2 = service.outbox.cancel(nid)
        assert st2 is not None
        if st2.state != "cancelled":
            raise ApiError(
                409,
                "already_completed",
                "the notification completed before it could be cancelled",
                field="id",
            )
        return _status_json(st2)

    @app.get("/v1/notifications", tags=["notifications"])
    def list_notifications(
        key: Key,
        app_name: Annotated[str | None, Query(alias="app")] = None,
        state: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        require(key, "send", app_name)
        before = None
        if cursor:
            ts, _, last = _cursor_decode(cursor).partition("|")
            try:
                before = (datetime.fromisoformat(ts), last)
            except ValueError:
                raise ApiError(
                    400, "invalid_cursor", "cursor is not one this API returned", field="cursor"
                ) from None
        items = service.outbox.list_notifications(
            app=app_name, apps=key.apps or None, state=state, limit=limit + 1, before=before
        )
        nxt = None
        if len(items) > limit:
            last_item = items[limit - 1]
            nxt = _cursor_encode(f"{last_item.created_at.isoformat()}|{last_item.id}")
        return {"items": [_status_json(s) for s in items[:limit]], "next_cursor": nxt}

    return app


def _delivery_json(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in d.items() if k != "_id"}
    out["updated_at"] = _iso(d.get("updated_at"))
    return out
