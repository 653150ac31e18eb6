"""4D code calling pushrelay over HTTP: the exact requests clients/4d/PushRelay.4dm sends (kept in
clients/4d/requests.json), replayed against a real service and the APNs sandbox."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
CLASS = (ROOT / "clients" / "4d" / "PushRelay.4dm").read_text(encoding="utf-8")
FIXTURE: dict[str, Any] = json.loads((ROOT / "clients" / "4d" / "requests.json").read_text(encoding="utf-8"))

MINE = ["a1" * 32, "b2" * 32]  # test@4d.com's two iPhones
OTHER = "c3" * 32  # a@4d.com
RAW = "d4" * 32  # a token no session holds


def test_the_fixture_is_what_the_class_sends() -> None:
    """The fixture's method, URL, headers and body keys are the ones the class builds."""
    path, _, query = FIXTURE["path"].partition("?")
    assert f'"{path}?{query.split("=")[0]}="+String(This.wait)' in CLASS
    assert f"This.wait:={query.split('=')[1]}" in CLASS
    assert FIXTURE["method"] == "POST" and "HTTP Request(HTTP POST method;" in CLASS
    for name, value in FIXTURE["headers"].items():
        assert f'"{name}"' in CLASS
        assert value.replace("$apiKey", '"+This.apiKey').removeprefix("Bearer ") in CLASS or value in CLASS
    assert 'New object("app"; This.app; "notification"; $notification; "recipients"; $recipients)' in CLASS
    assert '"recipients"; New object("all"; True))' in CLASS
    for call in FIXTURE["requests"]:
        assert list(call["body"]) == ["app", "notification", "recipients"]
        assert re.match(r"\$response:=\$push\.(send|sendAll|open)\(", call["call"])


def test_the_requests_of_the_4d_class(stack: Stack) -> None:
    stack.service.start()
    sb = stack.sandbox
    with stack.client(stack.registrar) as reg, stack.client(stack.sender) as snd:
        for tok, email in [(MINE[0], "test@4d.com"), (MINE[1], "test@4d.com"), (OTHER, "a@4d.com")]:
            r = reg.post("/v1/devices", json={"app": "myapp", "token": tok, "email": email, "os": "iOS"})
            assert r.status_code == 201, r.text
        expected = [
            sorted(MINE),  # an e-mail
            [RAW],  # a token
            sorted([OTHER, RAW]),  # a list mixing both
            sorted([*MINE, RAW]),  # {mails, deviceTokens}
            sorted([*MINE, OTHER]),  # sendAll: the registered devices
            sorted(MINE),  # open a list
            sorted(MINE),  # open a record
        ]
        assert len(expected) == len(FIXTURE["requests"])
        for call, tokens in zip(FIXTURE["requests"], expected, strict=True):
            before = {t: len(sb.received(t)) for t in [*MINE, OTHER, RAW]}
            r = snd.request(
                FIXTURE["method"],
                FIXTURE["path"],
                content=json.dumps(call["body"]),
                headers={"Content-Type": FIXTURE["headers"]["Content-Type"]},
            )
            assert r.status_code == 200, (call["call"], r.text)
            res = r.json()
            # the component's answer, plus one delivery per device
            assert res["success"] is True and res["errors"] == [], (call["call"], res)
            assert isinstance(res["warnings"], list)
            assert sorted(d["token"] for d in res["deliveries"]) == tokens, call["call"]
            assert all(d["outcome"] == "delivered" for d in res["deliveries"])
            for tok in tokens:
                got = sb.received(tok)
                assert len(got) == before[tok] + 1, call["call"]
                p = got[-1].payload
                assert p["aps"]["alert"] == {"title": "New order", "body": "Order 1042 is waiting"}
                assert p["aps"]["badge"] == 3 and p["aps"]["mutable-content"] == 1
                assert p["data"]["media-url"] == "https://example.com/order.png"
                for key, value in call["body"]["notification"]["userInfo"].items():
                    assert p[key] == value  # userInfo at the top level, as 4D's apps read it
        raw = snd.post(FIXTURE["path"], json=FIXTURE["requests"][1]["body"]).json()
        assert raw["warnings"] == [
            "The device token d4d4d4…d4d4 is not registered for app myapp; sent anyway"
        ]
        assert [d["email"] for d in raw["deliveries"]] == [None]

        # what 4D cannot mean is refused, naming the field
        bad: list[tuple[dict[str, Any], str]] = [
            ({"notification": {"title": "x", "badge": 3.5}}, "notification.badge"),
            ({"recipients": 42}, "recipients"),
            ({"recipients": {"mails": ["test@4d.com"], "phones": ["x"]}}, "recipients"),
            ({"recipients": ["test@4d.com", 7]}, "recipients"),
        ]
        for change, field in bad:
            body = {**FIXTURE["requests"][0]["body"], **change}
            r = snd.post(FIXTURE["path"], json=body)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["field"] == field, r.text
        r = snd.post(FIXTURE["path"], json={**FIXTURE["requests"][0]["body"], "recipients": {"mails": []}})
        assert r.status_code == 422 and r.json()["error"]["message"] == (
            "Both mails and deviceTokens collections are empty"
        )
