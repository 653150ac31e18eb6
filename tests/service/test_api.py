"""The HTTP API end to end: a real service process, the APNs sandbox, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from pushrelay.webhooks import verify

from .conftest import Stack, WebhookReceiver

TOKENS = ["a1" * 32, "b2" * 32, "c3" * 32]
N = {"title": "This is title", "body": "Here is the content of this notification"}


def _err(resp, status: int, code: str, field: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code, err
    if field is not None:
        assert err["field"] == field, err


def test_api_end_to_end(stack: Stack, webhook: WebhookReceiver) -> None:
    stack.service.start()
    sb = stack.sandbox
    with (
        stack.client(stack.registrar) as reg,
        stack.client(stack.sender) as snd,
        stack.client(stack.admin) as adm,
    ):
        # -- devices: a register key can register, not send ---------------------------------
        for i, tok in enumerate(TOKENS):
            r = reg.post(
                "/v1/devices",
                json={
                    "app": "myapp",
                    "token": tok,
                    "email": "test@4d.com" if i < 2 else "x@4d.com",
                    "os": "iOS",
                    "device_model": "iPhone",
                },
            )
            assert r.status_code == 201, r.text
        assert (
            reg.post(
                "/v1/devices", json={"app": "myapp", "token": TOKENS[0], "email": "test@4d.com"}
            ).status_code
            == 200
        )
        _err(
            reg.post(
                "/v1/notifications", json={"app": "myapp", "notification": N, "recipients": {"all": True}}
            ),
            403,
            "forbidden",
        )
        _err(reg.post("/v1/devices", json={"app": "other", "token": "dd" * 32}), 403, "forbidden", "app")
        _err(reg.post("/v1/devices", json={"app": "myapp", "token": "zz"}), 422, "invalid_device", "token")
        # -- pagination of devices ---------------------------------------------------------
        seen, cursor = [], None
        while True:
            page = snd.get(
                "/v1/devices", params={"app": "myapp", "limit": 2, **({"cursor": cursor} if cursor else {})}
            ).json()
            seen += [d["token"] for d in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(TOKENS)
        assert (
            len(snd.get("/v1/devices", params={"app": "myapp", "email": "TEST@4d.com"}).json()["items"]) == 2
        )

        # -- auth errors ---------------------------------------------------------------------
        with stack.client() as anon:
            _err(anon.post("/v1/notifications", json={}), 401, "unauthorized")
            _err(
                anon.get("/v1/notifications", headers={"Authorization": "Bearer pr_000000000000_nope"}),
                401,
                "unauthorized",
            )
            _err(anon.get("/v1/notifications", headers={"Authorization": "Basic abc"}), 401, "unauthorized")
            assert anon.get("/healthz").status_code == 200
            assert anon.get("/openapi.json").json()["info"]["title"] == "pushrelay"
            assert anon.get("/docs").status_code == 200

        # -- send with ?wait=: the 4D result shape plus deliveries ------------------------------
        r = snd.post(
            "/v1/notifications",
            params={"wait": 10},
            json={
                "app": "myapp",
                "notification": N,
                "recipients": {"emails": ["test@4d.com", "nobody@4d.com"]},
            },
        )
        assert r.status_code == 200, r.text
        res = r.json()
        assert res["success"] is True and res["state"] == "completed"
        assert res["warnings"] == ["No session file was found for the following mail address : nobody@4d.com"]
        assert res["counts"] == {"total": 2, "delivered": 2}
        assert r.headers["location"] == f"/v1/notifications/{res['id']}"
        for d in res["deliveries"]:
            got = sb.received(d["token"])
            assert [g.apns_id for g in got] == [d["apns_id"]]
            assert got[0].payload["aps"]["alert"] == {"title": N["title"], "body": N["body"]}

        # -- errors: 400, 404, 409, 413, 422 ------------------------------------------------------
        _err(
            snd.post("/v1/notifications", content=b"{nope", headers={"content-type": "application/json"}),
            400,
            "invalid_json",
        )
        _err(
            snd.post(
                "/v1/notifications",
                json={"app": "myapp", "notification": {"titel": "x"}, "recipients": {"all": True}},
            ),
            422,
            "invalid_notification",
            "notification.titel",
        )
        _err(
            snd.post("/v1/notifications", json={"app": "myapp", "notification": N, "recipients": {}}),
            422,
            "no_recipient",
            "recipients",
        )
        _err(
            snd.post(
                "/v1/notifications",
                json={"app": "myapp", "notification": N, "recipients": {"all": True}, "colour": 1},
            ),
            422,
            "invalid_request",
            "colour",
        )
        _err(
            snd.post(
                "/v1/notifications", json={"app": "other", "notification": N, "recipients": {"all": True}}
            ),
            403,
            "forbidden",
            "app",
        )
        _err(
            adm.post(
                "/v1/notifications", json={"app": "nope", "notification": N, "recipients": {"all": True}}
            ),
            422,
            "unknown_app",
            "app",
        )
        _err(snd.get("/v1/notifications/does-not-exist"), 404, "not_found")
        big = {"app": "myapp", "notification": N, "recipients": {"emails": ["a" * 60 + "@x.com"] * 20000}}
        _err(snd.post("/v1/notifications", json=big), 413, "body_too_large")

        # -- idempotency -------------------------------------------------------------------------
        body = {
            "app": "myapp",
            "notification": N,
            "recipients": {"emails": ["x@4d.com"]},
            "idempotency_key": "order-42",
        }
        first = snd.post("/v1/notifications", json=body)
        again = snd.post("/v1/notifications", json=body)
        assert first.status_code == 202 and again.status_code == 200
        assert first.json()["id"] == again.json()["id"] and again.headers["idempotent-replayed"] == "true"
        _err(
            snd.post("/v1/notifications", json={**body, "notification": {"title": "other"}}),
            409,
            "idempotency_conflict",
            "idempotency_key",
        )

        # -- a batch: many notifications, one request, one transaction ---------------------------
        one = {"app": "myapp", "notification": N, "recipients": {"device_tokens": [TOKENS[0]]}}
        r = snd.post(
            "/v1/notifications:batch",
            json={
                "notifications": [one, {**one, "idempotency_key": "b-1"}, {**body, "idempotency_key": "b-2"}]
            },
        )
        assert r.status_code == 202, r.text
        items = r.json()["items"]
        assert [i["state"] for i in items] == ["pending"] * 3 and len({i["id"] for i in items}) == 3
        assert snd.get(f"/v1/notifications/{items[1]['id']}").json()["app"] == "myapp"
        again = snd.post(
            "/v1/notifications:batch", json={"notifications": [{**one, "idempotency_key": "b-1"}]}
        )
        assert again.json()["items"] == [{"id": items[1]["id"], "app": "myapp", "idempotent_replayed": True}]
        conflict = {
            "notifications": [{**one, "idempotency_key": "b-3"}, {**one, "idempotency_key": "order-42"}]
        }
        _err(
            snd.post("/v1/notifications:batch", json=conflict),
            409,
            "idempotency_conflict",
            "notifications.1.idempotency_key",
        )
        # all or nothing: the first item of the refused batch was not committed
        assert snd.post("/v1/notifications", json={**one, "idempotency_key": "b-3"}).status_code == 202
        bad = {"notifications": [one, {**one, "recipients": {}}]}
        _err(snd.post("/v1/notifications:batch", json=bad), 422, "no_recipient", "notifications.1.recipients")
        bad = {"notifications": [one, one, {"notification": N, "recipients": {"all": True}}]}
        _err(snd.post("/v1/notifications:batch", json=bad), 422, "invalid_request", "notifications.2.app")
        _err(
            snd.post("/v1/notifications:batch", json={"notifications": []}),
            422,
            "invalid_request",
            "notifications",
        )
        bad = {"notifications": [one, {**one, "app": "other"}]}
        _err(snd.post("/v1/notifications:batch", json=bad), 403, "forbidden", "notifications.1.app")
        _err(
            adm.post("/v1/notifications:batch", json={"notifications": [{**one, "app": "nope"}]}),
            422,
            "unknown_app",
            "notifications.0.app",
        )

        # -- scheduling and cancellation -----------------------------------------------------------
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        sched = snd.post(
            "/v1/notifications",
            json={"app": "myapp", "notification": N, "recipients": {"all": True}, "send_at": later},
        ).json()
        assert sched["state"] == "scheduled"
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        timed = snd.post(
            "/v1/notifications",
            json={
                "app": "myapp",
                "notification": {"title": "timed"},
                "recipients": {"device_tokens": [TOKENS[2]]},
                "send_at": soon,
            },
        ).json()
        cancelled = snd.delete(f"/v1/notifications/{sched['id']}")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        _err(snd.delete(f"/v1/notifications/{res['id']}"), 409, "already_completed")
        deadline = time.monotonic() + 15
        while snd.get(f"/v1/notifications/{timed['id']}").json()["state"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert any(g.payload["aps"]["alert"] == {"title": "timed"} for g in sb.received(TOKENS[2]))

        # -- deliveries pagination and listing -----------------------------------------------------
        allr = snd.post(
            "/v1/notifications?wait=10", json={"app": "myapp", "notification": N, "recipients": {"all": True}}
        ).json()
        assert allr["counts"] == {"total": 3, "delivered": 3}
        toks, cursor = [], None
        while True:
            page = snd.get(
                f"/v1/notifications/{allr['id']}/deliveries",
                params={"limit": 2, **({"cursor": cursor} if cursor else {})},
            ).json()
            toks += [d["token"] for d in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(toks) == sorted(TOKENS)
        listed = snd.get("/v1/notifications", params={"limit": 2}).json()
        assert len(listed["items"]) == 2 and listed["next_cursor"]
        rest = snd.get("/v1/notifications", params={"limit": 50, "cursor": listed["next_cursor"]}).json()
        ids = [i["id"] for i in listed["items"] + rest["items"]]
        assert len(ids) == len(set(ids)) >= 5 and allr["id"] in ids
        assert (
            snd.get("/v1/notifications", params={"state": "cancelled"}).json()["items"][0]["id"]
            == sched["id"]
        )

        # -- a dead token is retired and reported by webhook -------------------------------------------
        sb.script(TOKENS[2], "unregistered")
        dead = snd.post(
            "/v1/notifications?wait=10",
            json={"app": "myapp", "notification": N, "recipients": {"device_tokens": [TOKENS[2]]}},
        ).json()
        assert dead["counts"] == {"total": 1, "token_dead": 1}
        assert dead["deliveries"][0]["reason"] == "Unregistered"
        devs = {d["token"]: d for d in snd.get("/v1/devices", params={"app": "myapp"}).json()["items"]}
        assert devs[TOKENS[2]]["active"] is False

        metrics = adm.get("/metrics").text
        assert (
            'pushrelay_deliveries_total{app="myapp",outcome="delivered",platform="ios",reason=""}' in metrics
        )
        assert "pushrelay_queue_depth" in metrics and "pushrelay_send_latency_seconds_bucket" in metrics
        assert adm.get("/readyz").json()["status"] == "ready"

    # -- webhooks: signed, batched, retried after the receiver's two 500s --------------------------
    deadline = time.monotonic() + 20
    while not any(e["type"] == "token.retired" for e in webhook.events()):
        assert time.monotonic() < deadline, webhook.posts
        time.sleep(0.1)
    assert [s for _, _, s in webhook.posts][:3] == [500, 500, 200]
    for headers, body_bytes, _ in webhook.posts:
        assert verify(
            "s3cret", headers["x-pushrelay-timestamp"], body_bytes, headers["x-pushrelay-signature"]
        )
        assert not verify(
            "wrong", headers["x-pushrelay-timestamp"], body_bytes, headers["x-pushrelay-signature"]
        )
    events = webhook.events()
    retired = [e for e in events if e["type"] == "token.retired"]
    assert retired[0]["token"] == TOKENS[2] and retired[0]["reason"] == "Unregistered"
    completed = {e["id"] for e in events if e["type"] == "notification.completed"}
    assert allr["id"] in completed and json.dumps(events)  # JSON-ready
    assert stack.service.stop() == 0  # graceful shutdown on SIGTERM


def test_revoked_key_is_refused(stack: Stack) -> None:
    from pushrelay.db import Database
    from pushrelay.server.apikeys import ApiKeyStore

    db = Database(stack.db_url, migrate=False)
    try:
        store = ApiKeyStore(db.engine)
        _, text = store.create(["send"])
        assert store.authenticate(text) is not None
        assert store.revoke(text.split("_")[1])
        assert ApiKeyStore(db.engine).authenticate(text) is None
    finally:
        db.dispose()
