"""One delivery path (issue 8): ``pushrelay send`` and ``PushNotification.send()`` record in the
outbox and share the provider state with every process on the database. Real processes, the APNs
sandbox over TLS/HTTP2, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from pushrelay.config import load_config
from pushrelay.db import Database
from pushrelay.providers.models import DeferralRow, ProviderTokenRow
from pushrelay.push import PushNotification
from pushrelay.registry import DeviceRegistry
from pushrelay.sandbox import ApnsSandbox

from .conftest import BUNDLE, TEAM, Stack

N = {"title": "Hello", "body": "from one path"}
PHONE, PAD = "a1" * 32, "b2" * 32


@pytest.fixture
def sandbox() -> Iterator[ApnsSandbox]:
    """The strict APNs sandbox: the phone and the iPad are the only devices it issued for the app."""
    with ApnsSandbox.running() as sb:
        sb.add_topic(BUNDLE, TEAM)
        for token in (PHONE, PAD):
            sb.issue_token(BUNDLE, token=token)
        yield sb


def send_process(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """``pushrelay send`` in a process of its own, as a user runs it twice in a row."""
    return subprocess.run(
        [sys.executable, "-m", "pushrelay", "send", "--config", str(stack.config), "--app", "myapp", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PUSHRELAY_RETRY_BASE": "0.2", "PUSHRELAY_RETRY_CAP": "1"},
    )


def register(stack: Stack, *tokens: str) -> None:
    with DeviceRegistry(stack.db_url) as registry:
        for token in tokens:
            registry.register("myapp", token, email="test@4d.com")


def scalar(stack: Stack, query: Any) -> Any:
    db = Database(stack.db_url, migrate=False)
    try:
        with db.engine.connect() as conn:
            return conn.scalar(query)
    finally:
        db.dispose()


def test_two_cli_processes_in_a_row_share_one_provider_token(stack: Stack) -> None:
    register(stack, PHONE)
    first = send_process(stack, "--to", "test@4d.com", "--title", "one", "--json")
    assert first.returncode == 0, first.stderr
    minted = scalar(stack, select(ProviderTokenRow.minted_at))
    second = send_process(stack, "--to", "test@4d.com", "--title", "two", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["deliveries"][0]["outcome"] == "delivered"
    # before: the second process minted its own token and APNs answered TooManyProviderTokenUpdates
    assert stack.sandbox.stats.rejected == {}
    assert [r.payload["aps"]["alert"]["title"] for r in stack.sandbox.received(PHONE)] == ["one", "two"]
    assert scalar(stack, select(func.count()).select_from(ProviderTokenRow)) == 1
    assert scalar(stack, select(ProviderTokenRow.minted_at)) == minted  # reused, not replaced

    listed = stack.cli("notifications", "list", "--surface", "cli", "--json")
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert [i["id"] for i in items] == [json.loads(o.stdout)["notification_id"] for o in (second, first)]
    assert {(i["surface"], i["state"], i["counts"].get("delivered")) for i in items} == {
        ("cli", "completed", 1)
    }


def test_a_library_send_is_visible_to_the_api(stack: Stack) -> None:
    register(stack, PHONE, PAD)
    with DeviceRegistry(stack.db_url) as registry:
        push = PushNotification("myapp", config=load_config(stack.config), registry=registry)
        result = push.send(N, ["test@4d.com", "nobody@4d.com"])
    assert result.success and len(result.deliveries) == 2 and result.notification_id is not None
    assert result.warnings == ["No session file was found for the following mail address : nobody@4d.com"]

    stack.service.start()
    with stack.client(stack.sender) as http:
        page = http.get("/v1/notifications", params={"surface": "library"}).json()
        (item,) = page["items"]
        assert (item["id"], item["surface"], item["state"]) == (
            result.notification_id,
            "library",
            "completed",
        )
        assert item["counts"]["delivered"] == 2 and item["warnings"] == result.warnings
        everything = http.get("/v1/notifications").json()["items"]
        assert result.notification_id in [i["id"] for i in everything]  # beside the API's own
        deliveries = http.get(f"/v1/notifications/{result.notification_id}/deliveries").json()
        assert sorted(d["token"] for d in deliveries["items"]) == sorted([PHONE, PAD])
        assert {d["outcome"] for d in deliveries["items"]} == {"delivered"}
        bad = http.get("/v1/notifications", params={"surface": "fax"})
        assert bad.status_code in (400, 422) and "surface" in bad.text


def test_a_target_under_retry_after_is_not_contacted_by_a_second_process(stack: Stack) -> None:
    register(stack, PHONE, PAD)
    stack.sandbox.script(PHONE, "rate_limited")  # 429 TooManyRequests, for as long as it is asked
    first = send_process(stack, "--to", "test@4d.com", "--title", "one", "--timeout", "2", "--json")
    assert first.returncode == 0, first.stderr  # the iPad got it
    phone = next(d for d in json.loads(first.stdout)["deliveries"] if d["token"] == PHONE)
    assert phone["outcome"] == "expired" and phone["deferred_until"] is not None
    assert scalar(stack, select(func.count()).select_from(DeferralRow)) == 1
    requests = stack.sandbox.stats.requests

    second = send_process(stack, "--to", "test@4d.com", "--title", "two", "--timeout", "2")
    assert second.returncode == 0, second.stderr
    assert stack.sandbox.stats.requests == requests + 1  # the iPad only: the phone was left alone
    assert [r.payload["aps"]["alert"]["title"] for r in stack.sandbox.received(PAD)] == ["one", "two"]
    assert "deferred: ios a1a1a1…a1a1 until " in second.stdout and "not sent" in second.stdout
