"""POST /v1/devices:batch on a real service process, SQLite and PostgreSQL."""

from __future__ import annotations

from .conftest import Stack


def tok(n: int) -> str:
    return f"{n:064x}"


def test_batch_registers_each_item_and_reports_bad_ones_by_index(stack: Stack) -> None:
    stack.service.start()
    with stack.client(stack.registrar) as reg, stack.client(stack.sender) as snd:
        devices = [{"app": "myapp", "token": tok(i), "email": f"u{i}@x.com"} for i in range(1000)]
        devices[3] = {"app": "myapp", "token": "zz"}  # not an APNs token
        devices[7] = {"app": "myapp", "token": tok(7), "platform": "windows"}  # schema
        devices[9] = {"app": "other", "token": tok(9)}  # the key is for myapp only
        devices[11] = "not an object"
        devices[12] = {"app": "myapp", "token": tok(12), "colour": "red"}  # unknown field
        r = reg.post("/v1/devices:batch", json={"devices": devices})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["counts"] == {"created": 995, "updated": 0, "unchanged": 0, "failed": 5}
        results = body["results"]
        assert [x["index"] for x in results] == list(range(1000))
        errors = {x["index"]: x["error"] for x in results if x["status"] == "error"}
        assert {i: (e["status"], e["code"], e["field"]) for i, e in errors.items()} == {
            3: (422, "invalid_device", "devices.3.token"),
            7: (422, "invalid_request", "devices.7.platform"),
            9: (403, "forbidden", "devices.9.app"),
            11: (422, "invalid_request", "devices.11"),
            12: (422, "invalid_request", "devices.12.colour"),
        }
        assert errors[3]["message"].startswith("devices.3.token: an iOS token must be 64")
        assert results[0]["status"] == "created" and results[0]["device"]["token"] == tok(0)
        assert "web_auth" not in results[0]["device"]

        # idempotent: the same batch again changes nothing that was stored
        again = reg.post("/v1/devices:batch", json={"devices": devices[:3]}).json()
        assert [x["status"] for x in again["results"]] == ["updated"] * 3  # last_seen_at moves
        assert [x["device"]["id"] for x in again["results"]] == [x["device"]["id"] for x in results[:3]]
        listed = snd.get("/v1/devices", params={"app": "myapp", "limit": 1000}).json()["items"]
        assert len(listed) == 995

        # the batch as a whole: its size and shape are checked like any body
        too_many = reg.post("/v1/devices:batch", json={"devices": devices + devices[:1]})
        assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "devices"
        assert reg.post("/v1/devices:batch", json={"devices": []}).status_code == 422
        assert snd.post("/v1/devices:batch", json={"devices": devices[:1]}).status_code == 403
