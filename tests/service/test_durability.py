"""Nothing accepted is lost: kill -9 mid-delivery, and Apple down for a while."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from pushrelay.db import Database
from pushrelay.queue.models import DeliveryRow

from .conftest import Stack

N = {"title": "crash", "body": "test"}


def _wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_kill_9_mid_delivery_loses_nothing(stack: Stack) -> None:
    count = 5000
    tokens = [f"{i:064x}" for i in range(1, count + 1)]
    sb = stack.sandbox
    # the chunks in flight at the crash are sent again once their lease runs out: a short one
    stack.service.env["PUSHRELAY_WORKER_LEASE"] = "4"
    # 5,000 notifications of one device each, 500 per request on 4 connections: accepted in
    # about a second, while delivering them takes several, so the kill lands mid-delivery
    stack.service.start()
    with stack.client(stack.sender) as snd:

        def post(part: list[str]) -> list[str]:
            one = {"app": "myapp", "notification": N}
            batch = [{**one, "recipients": {"device_tokens": [tok]}} for tok in part]
            r = snd.post("/v1/notifications:batch", json={"notifications": batch})
            assert r.status_code == 202, r.text
            return [str(i["id"]) for i in r.json()["items"]]

        with ThreadPoolExecutor(4) as pool:
            ids = [
                i
                for part in pool.map(post, [tokens[i : i + 500] for i in range(0, count, 500)])
                for i in part
            ]
    assert len(set(ids)) == count
    _wait(lambda: len(sb.all_received()) >= count // 4, 60, "a quarter of the deliveries")
    stack.service.kill9()
    at_crash = len(sb.all_received())
    assert at_crash < count, "everything was delivered before the kill; the test proves nothing"

    stack.service.start()
    db = Database(stack.db_url, migrate=False)
    try:

        def open_left() -> int:
            with db.engine.connect() as c:
                return int(
                    c.scalar(select(func.count()).where(DeliveryRow.state.in_(["pending", "in_flight"]))) or 0
                )

        _wait(
            lambda: open_left() == 0 and len({r.token for r in sb.all_received()}) == count,
            90,
            "all deliveries",
        )
        with db.engine.connect() as c:
            rows = c.execute(select(DeliveryRow.token, DeliveryRow.apns_id, DeliveryRow.outcome)).all()
    finally:
        db.dispose()
    assert len(rows) == count
    assert {r.outcome for r in rows} == {"delivered"}
    by_token = {r.token: r.apns_id for r in rows}
    received = sb.all_received()
    per_token: dict[str, list[str]] = {}
    for rec in received:
        per_token.setdefault(rec.token, []).append(rec.apns_id)
    assert set(per_token) == set(tokens)  # none lost
    duplicates = 0
    for tok, ids_ in per_token.items():
        assert set(ids_) == {by_token[tok]}, "a resend must carry the original apns-id"
        duplicates += len(ids_) - 1
    # duplicates only for what was in flight at the crash: at most the claimed chunks (4 x 500)
    assert duplicates <= 2000
    assert len(received) == count + duplicates


def test_apple_down_then_recovers(stack: Stack) -> None:
    sb = stack.sandbox
    tokens = [f"{i:064x}" for i in range(1, 21)]
    stack.service.start()
    sb.set_outage(503, "ServiceUnavailable")
    with stack.client(stack.sender) as snd:
        nid = snd.post(
            "/v1/notifications",
            json={"app": "myapp", "notification": N, "recipients": {"device_tokens": tokens}},
        ).json()["id"]

        def retried() -> bool:
            text = snd.get("/metrics").text
            return (
                'pushrelay_delivery_retries_total{app="myapp",platform="ios",reason="ServiceUnavailable"}'
                in text
            )

        def all_failed_once() -> bool:
            # every delivery came back from the provider with the outage's answer at least once
            items = snd.get(f"/v1/notifications/{nid}/deliveries").json()["items"]
            return len(items) == 20 and all(d["reason"] == "ServiceUnavailable" for d in items)

        _wait(retried, 30, "retries during the outage")
        _wait(all_failed_once, 30, "every delivery to be retried")
        assert sb.all_received() == []
        assert snd.get(f"/v1/notifications/{nid}").json()["state"] == "sending"
        sb.clear_outage()
        try:
            _wait(lambda: snd.get(f"/v1/notifications/{nid}").json()["state"] == "completed", 30, "recovery")
        except AssertionError:  # say where each delivery stands
            items = snd.get(f"/v1/notifications/{nid}/deliveries").json()["items"]
            states = [(d["state"], d["attempts"], d["reason"], d["updated_at"]) for d in items]
            raise AssertionError(f"not recovered: {states}; sandbox {sb.stats}") from None
        st = snd.get(f"/v1/notifications/{nid}").json()
        assert st["counts"] == {"total": 20, "delivered": 20}
        deliveries = snd.get(f"/v1/notifications/{nid}/deliveries").json()["items"]
        assert all(d["attempts"] >= 2 for d in deliveries)
        assert {r.token for r in sb.all_received()} == set(tokens)
        for d in deliveries:
            assert [r.apns_id for r in sb.received(d["token"])] == [d["apns_id"]]
        # the counters add up to the recorded attempts (the worker adds them per batch)
        text = snd.get("/metrics").text
        delivered = 'pushrelay_deliveries_total{app="myapp",outcome="delivered",platform="ios",reason=""} '
        assert f"{delivered}20.0" in text
        retried_line = (
            'pushrelay_delivery_retries_total{app="myapp",platform="ios",reason="ServiceUnavailable"} '
        )
        retries = float(text.split(retried_line, 1)[1].split()[0])
        assert retries == sum(d["attempts"] - 1 for d in deliveries)
