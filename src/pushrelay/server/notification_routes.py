"""``/v1/notifications``: accept (one, or a batch), read, page through deliveries, cancel, list.

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime,
and the key dependency is built from this service's :class:`~.guards.Guards`.
"""

import asyncio
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from ..queue.interface import (
    EnqueueResult,
    IdempotencyConflict,
    NotificationRequest,
    NotificationState,
    NotificationStatus,
)
from ..queue.models import utcnow
from .apikeys import ApiKey
from .errors import ApiError
from .group_commit import GroupCommit
from .guards import Guards, cursor_decode, cursor_encode, int_cursor, iso
from .schemas import ERROR_RESPONSES, BatchBody, SendBody
from .send_requests import request_from
from .service import Service

__all__ = ["notification_routes"]

_TERMINAL = ("completed", "cancelled")


def status_json(st: NotificationStatus) -> dict[str, Any]:
    return {
        "id": st.id,
        "app": st.app,
        "state": st.state,
        "success": st.success,
        "warnings": st.warnings,
        "errors": st.errors,
        "counts": st.counts,
        "created_at": iso(st.created_at),
        "send_at": iso(st.send_at),
        "expires_at": iso(st.expires_at),
        "completed_at": iso(st.completed_at),
        "idempotency_key": st.idempotency_key,
        "surface": st.surface,
        "deliver_at_local": st.deliver_at_local,
        "urgent": st.urgent,
    }


def delivery_json(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in d.items() if k != "_id"}
    out["updated_at"] = iso(d.get("updated_at"))
    out["next_attempt_at"] = iso(d.get("next_attempt_at"))
    out["scheduled_for"] = iso(d.get("scheduled_for"))
    return out


def _state_on_accept(req: NotificationRequest, now: datetime) -> str:
    # the state follows from what was just committed: no second query on the common path
    return "scheduled" if req.send_at is not None and req.send_at > now else "pending"


def notification_routes(service: Service, guards: Guards) -> APIRouter:
    router = APIRouter(tags=["notifications"], responses=ERROR_RESPONSES)  # documented refusals
    outbox = service.outbox

    def load(nid: str, key: ApiKey) -> NotificationStatus:
        st = outbox.status(nid)
        if st is None or not key.allows_app(st.app):
            # an app-restricted key cannot learn that other apps' notifications exist
            raise ApiError(404, "not_found", f"no notification with id {nid}", field="id")
        return st

    group = GroupCommit(outbox.enqueue_many)

    async def commit(requests: list[NotificationRequest], *, prefix: str) -> list[EnqueueResult]:
        try:
            if len(requests) == 1:  # joins the other single requests of the moment (see .group_commit)
                results = [await group.enqueue(requests[0])]
            else:  # a batch is one transaction already, and all or nothing
                results = await asyncio.to_thread(outbox.enqueue_many, requests)
        except IdempotencyConflict as exc:
            where = f"notifications.{exc.index}." if prefix and exc.index is not None else ""
            raise ApiError(409, "idempotency_conflict", str(exc), field=f"{where}idempotency_key") from None
        created = [req.app for req, res in zip(requests, results, strict=True) if res.created]
        for app in created:
            service.metrics.accepted.labels(app).inc()
        if created:
            service.wake_workers()
        return results

    async def wait_for(nid: str, seconds: float) -> NotificationStatus:
        deadline = time.monotonic() + seconds
        delay = 0.02
        while True:
            st = await asyncio.to_thread(outbox.status, nid)
            assert st is not None
            if st.state in _TERMINAL or time.monotonic() >= deadline:
                return st
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)

    @router.post("/v1/notifications", status_code=202)
    async def send(
        body: SendBody,
        key: Annotated[ApiKey, Depends(guards.authenticate)],
        wait: Annotated[float, Query(ge=0, description="seconds to wait for the outcome (max 60)")] = 0,
    ) -> JSONResponse:
        guards.require(key, "send", body.app)
        guards.known_app(body.app)
        now = utcnow()
        req = request_from(body, key_id=key.id, now=now, app=service.app_configs.get(body.app))
        (res,) = await commit([req], prefix="")
        headers = {"Location": f"/v1/notifications/{res.id}"}
        if not res.created:
            headers["Idempotent-Replayed"] = "true"
        if wait <= 0 and res.created:
            body_json = {"id": res.id, "app": body.app, "state": _state_on_accept(req, now)}
            return JSONResponse(body_json, 202, headers=headers)
        st = await wait_for(res.id, min(wait, service.settings.wait_max))
        data = status_json(st)
        if st.state in _TERMINAL and wait > 0:
            page = await asyncio.to_thread(outbox.deliveries, res.id, limit=1000)
            data["deliveries"] = [delivery_json(d) for d in page]
            return JSONResponse(data, 200, headers=headers)
        return JSONResponse(data, 202 if res.created else 200, headers=headers)

    @router.post("/v1/notifications:batch", status_code=202)
    async def send_batch(
        body: BatchBody, key: Annotated[ApiKey, Depends(guards.authenticate)]
    ) -> JSONResponse:
        """Accept up to 1000 notifications in one request and one transaction: all are committed,
        or none (the error names the item, e.g. ``notifications.3.recipients``)."""
        now = utcnow()
        requests = []
        for i, item in enumerate(body.notifications):
            guards.require(key, "send", item.app, field=f"notifications.{i}.app")
            guards.known_app(item.app, field=f"notifications.{i}.app")
            requests.append(
                request_from(
                    item,
                    key_id=key.id,
                    now=now,
                    prefix=f"notifications.{i}.",
                    app=service.app_configs.get(item.app),
                )
            )
        results = await commit(requests, prefix="notifications")
        items = [
            {"id": res.id, "app": req.app, "state": _state_on_accept(req, now)}
            if res.created
            else {"id": res.id, "app": req.app, "idempotent_replayed": True}
            for req, res in zip(requests, results, strict=True)
        ]
        return JSONResponse({"items": items}, 202)

    @router.get("/v1/notifications/{nid}")
    def get_notification(nid: str, key: Annotated[ApiKey, Depends(guards.authenticate)]) -> dict[str, Any]:
        guards.require(key, "send")
        st = load(nid, key)
        data = status_json(st)
        data["notification"] = st.notification
        data["recipients"] = st.recipients
        return data

    @router.get("/v1/notifications/{nid}/deliveries")
    def get_deliveries(
        nid: str,
        key: Annotated[ApiKey, Depends(guards.authenticate)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        guards.require(key, "send")
        load(nid, key)
        page = outbox.deliveries(nid, limit=limit, after=int_cursor(cursor))
        nxt = cursor_encode(str(page.next_cursor)) if page.next_cursor is not None else None
        return {"items": [delivery_json(d) for d in page], "next_cursor": nxt}

    @router.delete("/v1/notifications/{nid}")
    def cancel(nid: str, key: Annotated[ApiKey, Depends(guards.authenticate)]) -> dict[str, Any]:
        guards.require(key, "send")
        st = load(nid, key)
        if st.state == "completed":
            raise ApiError(409, "already_completed", "the notification is already completed", field="id")
        st2 = outbox.cancel(nid)
        assert st2 is not None
        if st2.state != "cancelled":
            raise ApiError(
                409,
                "already_completed",
                "the notification completed before it could be cancelled",
                field="id",
            )
        return status_json(st2)

    @router.get("/v1/notifications")
    def list_notifications(
        key: Annotated[ApiKey, Depends(guards.authenticate)],
        app_name: Annotated[str | None, Query(alias="app")] = None,
        state: NotificationState | None = None,
        surface: Annotated[str | None, Query(pattern="^(api|cli|library)$")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        guards.require(key, "send", app_name)
        before = None
        if cursor:
            ts, _, last = cursor_decode(cursor).partition("|")
            try:
                stamp = datetime.fromisoformat(ts)
                if stamp.tzinfo is not None or not last:  # this API writes naive UTC and an id
                    raise ValueError(ts)
                before = (stamp, last)
            except ValueError:
                raise ApiError(
                    400, "invalid_cursor", "cursor is not one this API returned", field="cursor"
                ) from None
        items = outbox.list_notifications(
            app=app_name,
            apps=key.apps or None,
            state=state.value if state else None,
            surface=surface,
            limit=limit + 1,
            before=before,
        )
        nxt = None
        if len(items) > limit:
            last_item = items[limit - 1]
            nxt = cursor_encode(f"{last_item.created_at.isoformat()}|{last_item.id}")
        return {"items": [status_json(s) for s in items[:limit]], "next_cursor": nxt}

    return router
