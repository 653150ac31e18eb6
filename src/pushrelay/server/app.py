"""The HTTP API (FastAPI). Routes are thin: validation here, work in the outbox and registry.

The notification routes live in :mod:`.notification_routes`, the checks every route makes
(key, scope, app) in :mod:`.guards`.

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime, and
the ``Key`` dependency alias is local to :func:`create_app`.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Response
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from .. import __version__
from ..console import install_console
from ..registry import DeviceInfo, Registration
from ..registry.tokens import InvalidDeviceError
from .apikeys import ApiKey
from .errors import ApiError, install_error_handlers
from .guards import Guards, int_cursor, iso
from .guards import cursor_encode as _cursor_encode
from .input_guard import CatchAll, InputGuard
from .middleware import BodyLimit, RequestMetrics
from .notification_routes import notification_routes
from .schemas import ERROR_RESPONSES, DeviceBatchBody, DeviceBody
from .service import Service
from .worker_processes import merged_metrics

__all__ = ["create_app"]


def item_error(index: int, status: int, code: str, message: str, field: str | None) -> dict[str, Any]:
    """One refused item of a batch: the API's error shape, its field prefixed with its place."""
    where = f"devices.{index}" + (f".{field}" if field else "")
    return {
        "index": index,
        "status": "error",
        "error": {"status": status, "code": code, "message": f"{where}: {message}", "field": where},
    }


def create_app(service: Service) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    # /docs and /redoc from Swagger UI and ReDoc files shipped by fastapi-offline: no CDN, so the
    # pages work on a machine without internet access
    app = FastAPIOffline(
        title="pushrelay",
        version=__version__,
        description="Self-hosted push notifications (APNs, FCM, Web Push). Authenticate with "
        "`Authorization: Bearer <key>`; create keys with `pushrelay keys create`.",
        lifespan=lifespan,
        static_url="/_docs/static",
    )
    install_error_handlers(app)
    # the last added is the outermost: CatchAll sees what the others raise
    app.add_middleware(InputGuard)
    app.add_middleware(BodyLimit, limit=service.settings.max_body)
    app.add_middleware(RequestMetrics, metrics=service.metrics)
    app.add_middleware(CatchAll)
    app.state.service = service

    guards = Guards(service)
    Key = Annotated[ApiKey, Depends(guards.authenticate)]
    require = guards.require
    known_app = guards.known_app

    # -- health --------------------------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:  # async: no thread-pool hop for a liveness probe
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        """503 when the database is unreachable or no credentials are configured. A paused app
        (its credentials were refused) is reported but keeps the API ready: accepting still
        works and nothing is lost, while a 503 would take the API out of a load balancer."""
        checks: dict[str, str] = {}
        paused: list[dict[str, Any]] = []
        try:
            service.outbox.ping()
            checks["database"] = "ok"
            paused = [
                {"app": p.app, "reason": p.reason, "platform": p.platform, "since": iso(p.paused_at),
                 "resume": f"pushrelay apps resume {p.app}"}
                for p in service.outbox.paused_apps()
            ]  # fmt: skip
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["credentials"] = "ok" if service.credentials_loaded else "no provider credentials loaded"
        if paused:
            checks["apps"] = "paused: " + ", ".join(f"{p['app']} ({p['reason']})" for p in paused)
        ready = checks["database"] == "ok" and checks["credentials"] == "ok"
        status = ("degraded" if paused else "ready") if ready else "not ready"
        return JSONResponse(
            {"status": status, "checks": checks, "paused_apps": paused}, 200 if ready else 503
        )

    @app.get("/metrics", tags=["operations"])
    def metrics() -> Response:
        # with child worker processes, their figures too (what they deliver is counted there)
        text = (
            merged_metrics(service.metrics.registry, service.worker_metrics)
            if service.worker_metrics
            else generate_latest(service.metrics.registry)
        )
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    # -- devices -------------------------------------------------------------------------------
    def device_info(body: DeviceBody, key: ApiKey) -> DeviceInfo:
        """What POST /v1/devices checks before the registry's own validation (raises ApiError)."""
        require(key, "register", body.app)
        known_app(body.app)
        # what the platform's provider could never deliver to is refused before it is stored (a Web
        # Push endpoint outside the allow-list, an APNs token registered as android...)
        refused = service.pool.refuse_token(body.app, body.platform, body.token.strip())
        if refused is not None:
            raise ApiError(422, "invalid_device", refused, field="token")
        if body.platform == "web":
            for name, part in (("web_p256dh", "keys.p256dh"), ("web_auth", "keys.auth")):
                if not getattr(body, name):
                    raise ApiError(
                        422,
                        "invalid_device",
                        f"platform web requires {name}: the subscription's {part} "
                        "(PushSubscription.toJSON()); the token is its endpoint",
                        field=name,
                    )
        return DeviceInfo(app=body.app, token=body.token, **body.model_dump(exclude={"app", "token"}))

    def registration_body(reg: Registration) -> dict[str, Any]:
        d = reg.device.to_dict()
        for secret in ("web_p256dh", "web_auth"):
            d.pop(secret, None)
        return {"status": str(reg.status), "reactivated": reg.reactivated, "device": d}

    @app.post("/v1/devices", status_code=201, tags=["devices"], responses=ERROR_RESPONSES)
    def register_device(body: DeviceBody, key: Key, response: Response) -> dict[str, Any]:
        info = device_info(body, key)
        guards.device_rate(body.app, body.token)  # after the checks: a refused body costs nothing
        try:
            reg = service.registry.register_many([info])[0]
        except InvalidDeviceError as exc:
            raise ApiError(422, "invalid_device", str(exc), field=exc.field) from None
        if str(reg.status) != "created":
            response.status_code = 200
        return registration_body(reg)

    @app.post("/v1/devices:batch", tags=["devices"], responses=ERROR_RESPONSES)
    def register_devices(body: DeviceBatchBody, key: Key) -> dict[str, Any]:
        """Up to 1,000 devices, each as the body of POST /v1/devices, registered in a few
        statements. One bad item does not refuse the batch: its result is an error naming its
        index and field (``devices.3.token``), the others are registered."""
        require(key, "register")
        results: list[dict[str, Any] | None] = [None] * len(body.devices)
        infos: list[DeviceInfo] = []
        at: list[int] = []
        for i, raw in enumerate(body.devices):
            try:
                infos.append(device_info(DeviceBody.model_validate(raw), key))
                at.append(i)
            except ValidationError as exc:
                first = exc.errors()[0]
                name = ".".join(str(p) for p in first["loc"])
                msg = "unknown field" if first["type"] == "extra_forbidden" else str(first["msg"])
                results[i] = item_error(i, 422, "invalid_request", msg, name or None)
            except ApiError as exc:
                results[i] = item_error(i, exc.status, exc.code, exc.message, exc.field)
        for i, done in zip(at, service.registry.register_each(infos), strict=True):
            if isinstance(done, InvalidDeviceError):
                results[i] = item_error(i, 422, "invalid_device", str(done), done.field)
            else:
                results[i] = {"index": i, **registration_body(done)}
        counts = dict.fromkeys(("created", "updated", "unchanged", "failed"), 0)
        for r in results:
            assert r is not None
            counts[r["status"] if r["status"] != "error" else "failed"] += 1
        return {"counts": counts, "results": results}

    @app.delete("/v1/devices/{token}", status_code=204, tags=["devices"], responses=ERROR_RESPONSES)
    def unregister_device(token: str, key: Key, app_name: Annotated[str, Query(alias="app")]) -> Response:
        require(key, "register", app_name)
        guards.device_rate(app_name, token)
        if not service.registry.remove(app_name, token):
            raise ApiError(404, "not_found", f"no device with this token in app '{app_name}'", field="token")
        return Response(status_code=204)

    @app.get("/v1/devices", tags=["devices"], responses=ERROR_RESPONSES)
    def list_devices(
        key: Key,
        app_name: Annotated[str, Query(alias="app")],
        email: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        require(key, "send", app_name)
        after = int_cursor(cursor)
        # keyset pagination on the registry's (app, id) index, shared with the console's search
        page = service.registry.page(app_name, email=email or None, after=after, limit=limit)
        items = [
            {
                "id": d.id,
                "platform": d.platform,
                "token": d.token,
                "email": d.email,
                "environment": d.environment,
                "language": d.language,
                "time_zone": d.time_zone,
                "app_version": d.app_version,
                "os": d.os,
                "os_version": d.os_version,
                "device_model": d.device_model,
                "active": d.active,
                "retired_reason": d.retired_reason,
                "created_at": d.created_at.isoformat(),
                "last_seen_at": d.last_seen_at.isoformat(),
            }
            for d in page.items
        ]
        nxt = _cursor_encode(str(page.next_after)) if page.next_after is not None else None
        return {"items": items, "next_cursor": nxt}

    # -- notifications -------------------------------------------------------------------------
    app.include_router(notification_routes(service, guards))

    # -- the console: / and /console (server-rendered pages over the same service) --------------
    install_console(app, service)
    return app
