"""``pushrelay sandbox`` serves FCM and Web Push too: the printed configuration works as is, the
control APIs drive them from another process, and a second run in the same folder keeps the
credentials (so a pasted configuration stays valid)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import ssl
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tokenshapes import fcm_token

from pushrelay import Notification
from pushrelay.fcm import FcmSettings
from pushrelay.webpush import WebPushSettings

PHONE = fcm_token("a-phone")  # the FCM sandbox refuses tokens FCM never issues


@dataclass
class Run:
    banner: list[str]
    farewell: str = ""  # what it printed after SIGTERM


@contextlib.contextmanager
def sandbox_cli(directory: Path) -> Iterator[Run]:
    """``pushrelay sandbox`` in a child process, stopped with SIGTERM (and checked to stop cleanly)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pushrelay", "sandbox", "--port", "0", "--dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    run = Run([])
    try:
        for line in process.stdout:
            run.banner.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        yield run
    finally:
        process.send_signal(signal.SIGTERM)
        run.farewell, err = process.communicate(timeout=20)
    assert process.returncode == 0 and "Traceback" not in err, (run.banner, err)


def tables(lines: list[str]) -> dict[str, Any]:
    snippet = "\n".join(lines[lines.index("Configuration for pushrelay.toml:") + 2 : -2])
    app: dict[str, Any] = tomllib.loads(snippet)["apps"]["myappname"]
    return app


def control(url: str, ca_file: str, method: str, path: str, **body: Any) -> Any:
    context = ssl.create_default_context(cafile=ca_file)
    with httpx.Client(verify=context) as http:  # HTTP/1.1: curl-style use works too
        r = http.request(method, f"{url}/_sandbox/{path}", json=body if method == "POST" else None)
    assert r.status_code in (200, 201), r.text
    return r.json()


async def send_both(app: dict[str, Any], config: Path, token: str, subscription: dict[str, Any]) -> None:
    fcm = FcmSettings.from_mapping(app["fcm"], file=config)
    web = WebPushSettings.from_mapping(app["webpush"], file=config)
    note = Notification(title="hello", body="from the sandbox", user_info={"n": 1})
    async with fcm.client() as fcm_client, web.client() as web_client:
        assert (await fcm_client.send(note, token)).ok
        result = await web_client.send(note, subscription)
        assert result.ok, result


def test_sandbox_serves_fcm_and_web_push_with_working_configuration(tmp_path: Path) -> None:
    directory = tmp_path / "sb"
    config = tmp_path / "pushrelay.toml"
    with sandbox_cli(directory) as first:
        lines = first.banner
        assert re.search(r"FCM sandbox listening on https://127\.0\.0\.1:\d+", "\n".join(lines))
        app = tables(lines)
        assert set(app) == {"bundle_id", "apns", "fcm", "webpush"}
        fcm_url, fcm_ca = app["fcm"]["base_url"], app["fcm"]["ca_file"]
        web_ca = app["webpush"]["ca_file"]
        web_url = "https://" + app["webpush"]["allowed_hosts"][0]
        assert (
            Path(app["fcm"]["service_account_file"]) == directory.resolve() / "firebase-service-account.json"
        )
        public_key = re.search(r"public key\s+: (\S+)", "\n".join(lines))
        assert public_key is not None

        browser = control(
            web_url, web_ca, "POST", "subscriptions", application_server_key=public_key.group(1)
        )
        assert browser["endpoint"].startswith(web_url + "/wp/")
        control(fcm_url, fcm_ca, "POST", "script", target="gone-phone", behaviour="unregistered")
        asyncio.run(send_both(app, config, PHONE, browser))

        (android,) = control(fcm_url, fcm_ca, "GET", f"received?target={PHONE}")["received"]
        assert android["message"]["data"]["title"] == "hello"
        (pushed,) = control(web_url, web_ca, "GET", "received")["received"]
        assert pushed["payload"]["notification"] == {"title": "hello", "body": "from the sandbox"}
        assert (
            control(fcm_url, fcm_ca, "GET", "scripts")["scripts"]["gone-phone"]["behaviour"] == "unregistered"
        )
        assert control(fcm_url, fcm_ca, "GET", "stats")["tokens_issued"] == 1
    assert "FCM: 1 requests; Web Push: 1 requests." in first.farewell

    # a second run in the same folder: same service account and VAPID key, new ports
    with sandbox_cli(directory) as second:
        app2 = tables(second.banner)
        assert app2["fcm"]["service_account_file"] == app["fcm"]["service_account_file"]
        assert app2["webpush"]["vapid_private_key_file"] == app["webpush"]["vapid_private_key_file"]
        web_url2 = "https://" + app2["webpush"]["allowed_hosts"][0]
        browser2 = control(web_url2, app2["webpush"]["ca_file"], "POST", "subscriptions")
        asyncio.run(send_both(app2, config, PHONE, browser2))  # the old key file still signs


def test_control_api_errors_name_the_problem(tmp_path: Path) -> None:
    with sandbox_cli(tmp_path / "sb") as run:
        app = tables(run.banner)
        context = ssl.create_default_context(cafile=app["webpush"]["ca_file"])
        web_url = "https://" + app["webpush"]["allowed_hosts"][0]
        with httpx.Client(verify=context, base_url=f"{web_url}/_sandbox/") as http:
            r = http.post("script", json={"endpoint": f"{web_url}/wp/unknown", "behaviour": "gone"})
            assert r.status_code == 400 and "not a subscription of this sandbox" in r.json()["error"]
            r = http.post("subscriptions", content=b"[1]")
            assert r.status_code == 400 and r.json()["error"] == "body: expected a JSON object"
            r = http.get("subscriptions")
            assert r.status_code == 405 and "POST" in r.json()["error"]
            r = http.get("nope")
            assert r.status_code == 404 and "subscriptions" in r.json()["error"]
