"""A refused configuration pauses the app: nothing sent, nothing lost, reported, resumed.

A real service process and the APNs sandbox; the provider key is one the sandbox does not know,
so APNs answers 403 InvalidProviderToken.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushrelay.config import config_from_dict
from pushrelay.config.model import ServiceConfig
from pushrelay.queue import NotificationRequest, Recipients
from pushrelay.server.service import ServiceSettings

from .conftest import BUNDLE, TEAM, Stack, running_service, wait_until

TOKENS = [f"{i:064x}" for i in range(1, 4)]
N = {"title": "paused", "body": "kept"}
UNKNOWN_KEY_ID = "NEWKEY1234"


def _unknown_key(directory: Path, key_id: str) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    """A valid .p8 key that the sandbox does not know (yet)."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / f"AuthKey_{key_id}.p8"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path, key


def _send(client: httpx.Client, tokens: list[str]) -> str:
    r = client.post(
        "/v1/notifications", json={"app": "myapp", "notification": N, "recipients": {"device_tokens": tokens}}
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _counts(client: httpx.Client, nid: str) -> dict[str, int]:
    return dict(client.get(f"/v1/notifications/{nid}").json()["counts"])


def _paused_metric(client: httpx.Client, app: str) -> str | None:
    prefix = f'pushrelay_app_paused{{app="{app}"}} '
    lines = [ln for ln in client.get("/metrics").text.splitlines() if ln.startswith(prefix)]
    return lines[0].removeprefix(prefix) if lines else None


def test_refused_key_pauses_the_app_until_resumed(stack: Stack) -> None:
    sb = stack.sandbox
    stack.write_config(_unknown_key(stack.tmp, "BADKEY0001")[0])
    stack.service.start()
    with stack.client(stack.sender) as snd, stack.client(stack.admin) as adm:
        first = _send(snd, TOKENS)
        wait_until(lambda: _counts(snd, first) == {"total": 3, "paused": 3}, 30, "the deliveries to be kept")

        ready = adm.get("/readyz")
        assert ready.status_code == 200  # accepting still works: the API stays in the load balancer
        body = ready.json()
        assert body["status"] == "degraded"
        (pause,) = body["paused_apps"]
        assert pause["app"] == "myapp" and pause["reason"] == "403 InvalidProviderToken"
        assert pause["platform"] == "ios" and pause["resume"] == "pushrelay apps resume myapp"
        assert body["checks"]["apps"] == "paused: myapp (403 InvalidProviderToken)"
        assert _paused_metric(adm, "myapp") == "1.0" and _paused_metric(adm, "other") == "0.0"
        log = stack.service.log.read_text()
        assert "error app.paused app=myapp platform=ios" in log and "pushrelay apps resume myapp" in log

        # accepted while paused: kept as well, and Apple is not asked again and again
        second = _send(snd, [TOKENS[0]])
        wait_until(lambda: _counts(snd, second) == {"total": 1, "paused": 1}, 30, "the second to be kept")
        requests = sb.stats.requests
        time.sleep(0.6)  # a dozen claim cycles (poll 0.05 s) and a sweep (0.5 s)
        assert sb.stats.requests == requests
        assert sb.all_received() == []
        assert sb.stats.rejected["InvalidProviderToken"] >= 1
    assert stack.service.stop() == 0

    # other credentials at the next start resume the app by themselves; Apple refuses these too
    unknown, key = _unknown_key(stack.tmp, UNKNOWN_KEY_ID)
    stack.write_config(unknown)
    stack.service.start()
    with stack.client(stack.sender) as snd, stack.client(stack.admin) as adm:
        wait_until(
            lambda: "app.paused app=myapp" in stack.service.log.read_text().split("app.resumed")[-1],
            30,
            "re-pause",
        )
        log = stack.service.log.read_text()
        assert "app.resumed app=myapp deliveries=4" in log and "the credentials changed" in log
        wait_until(lambda: _counts(snd, first) == {"total": 3, "paused": 3}, 30, "the deliveries to be kept")
        out = stack.cli("apps", "list")
        assert (
            out.exit_code == 0
            and "myapp  PAUSED since" in out.output
            and "403 InvalidProviderToken" in out.output
        )

        # the operator enables the key at Apple, then resumes the app without a restart
        sb.register_key(TEAM, UNKNOWN_KEY_ID, key.public_key())
        out = stack.cli("apps", "resume", "myapp")
        assert out.exit_code == 0, out.output
        assert out.output.strip() == "myapp resumed: 4 kept deliveries are due now"

        for nid in (first, second):
            wait_until(
                lambda nid=nid: snd.get(f"/v1/notifications/{nid}").json()["state"] == "completed",
                30,
                "delivery",
            )  # type: ignore[misc]
        assert _counts(snd, first) == {"total": 3, "delivered": 3}
        for d in snd.get(f"/v1/notifications/{first}/deliveries").json()["items"]:
            assert [r.apns_id for r in sb.received(d["token"])].count(d["apns_id"]) == 1
        assert len(sb.all_received()) == 4  # each kept delivery sent once: nothing lost, nothing twice
        assert adm.get("/readyz").json() == {
            "status": "ready",
            "checks": {"database": "ok", "credentials": "ok"},
            "paused_apps": [],
        }
        assert _paused_metric(adm, "myapp") == "0.0"
    assert stack.cli("apps", "resume", "myapp").output.strip() == "myapp was not paused"
    assert stack.webhook is not None
    wait_until(
        lambda: {"app.paused", "app.resumed"} <= {e["type"] for e in stack.webhook.events()}, 30, "hooks"
    )  # type: ignore[union-attr]
    assert stack.service.stop() == 0


async def test_an_unreadable_key_file_pauses_the_app_too(sqlite_url: str, tmp_path: Path) -> None:
    """Credentials are loaded when the first delivery needs them: a key file that is gone by then
    is the operator's to fix, like a key Apple refuses (in-process service, no API)."""
    missing = tmp_path / "AuthKey_GONE123456.p8"
    config = config_from_dict(
        {
            "database": {"url": sqlite_url},
            "apps": {"myapp": {"bundle_id": BUNDLE, "apns": {"team_id": TEAM, "key_file": str(missing)}}},
        }
    )
    settings = ServiceSettings.from_config(ServiceConfig(worker_poll=0.05))
    async with running_service(config, settings) as service:
        request = NotificationRequest("myapp", N, Recipients(device_tokens=(TOKENS[0],)))
        nid = (await asyncio.to_thread(service.outbox.enqueue, request)).id
        for _ in range(600):
            if await asyncio.to_thread(service.outbox.paused_apps):
                break
            await asyncio.sleep(0.05)
        (pause,) = service.outbox.paused_apps()
        assert pause.app == "myapp" and pause.platform == "ios" and str(missing) in pause.reason
        assert pause.fingerprint == service.fingerprints["myapp"]
        for _ in range(600):
            status = await asyncio.to_thread(service.outbox.status, nid)
            if status is not None and status.counts == {"total": 1, "paused": 1}:
                break
            await asyncio.sleep(0.05)
        assert status is not None and status.counts == {"total": 1, "paused": 1}
