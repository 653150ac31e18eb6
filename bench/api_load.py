"""Load test of the service (not a unit test), against the APNs sandbox, in one run:

1. the raw transport: ``ApnsClient.send_many`` from this process straight to the sandbox (what
   ``bench/apns_throughput.py`` measures, with the sandbox's key so that the sandbox accepts it);
2. ``POST /v1/notifications``: requests/s and p50 / p99 latency, one small notification per request;
3. ``POST /v1/notifications:batch``: notifications/s accepted with 500 per request;
4. end to end: one notification to every one of N registered devices (``recipients.all``), from the
   request to the last outcome recorded.

Three processes: the sandbox (``pushrelay sandbox``), the service (``pushrelay serve``), and this
one (the clients).

    .venv/bin/python bench/api_load.py --devices 100000 --requests 2000 --concurrency 16 [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushrelay.apns import ApnsClient, TokenAuth
from pushrelay.db import Database
from pushrelay.notification import Notification
from pushrelay.registry.devices import DeviceInfo, DeviceRegistry
from pushrelay.server.apikeys import ApiKeyStore

TEAM, BUNDLE = "TEAM123456", "com.sample.myappname"
NOTE = {"title": "This is title", "body": "Here is the content of this notification"}


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_for(pred: Any, what: str, timeout: float = 60, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except (httpx.HTTPError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def own_key(control: httpx.Client) -> TokenAuth:
    """A key of its own for the raw transport: two processes minting tokens for one key within 20
    minutes get 429 TooManyProviderTokenUpdates from APNs (and from the sandbox), and the service
    is the other one."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    r = control.post("/_sandbox/keys", json={"team_id": TEAM, "key_id": "RAWBENCH01", "public_key": public})
    r.raise_for_status()
    return TokenAuth(private, key_id="RAWBENCH01", team_id=TEAM)


async def raw_transport(url: str, ca: Path, auth: TokenAuth, n: int) -> float:
    note = Notification.from_dict(NOTE)
    async with ApnsClient(auth, topic=BUNDLE, endpoint=url, ca_file=ca) as client:
        warm = await client.send(note, "ab" * 32)  # connect; the sandbox then raises the stream limit
        if not warm.ok:
            raise SystemExit(f"warm-up failed: {warm.outcome} {warm.reason}")
        t0 = time.perf_counter()
        ok = 0
        async for result in client.send_many((note, f"{i + 1:064x}", None) for i in range(n)):
            ok += result.ok
        rate = n / (time.perf_counter() - t0)
    if ok != n:
        raise SystemExit(f"raw transport: {n - ok} of {n} failed")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=2_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--raw", type=int, default=100_000, help="notifications for the raw transport rate")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--no-batch", action="store_true", help="skip the batch endpoint (older versions)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pushrelay-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    py = sys.executable
    # --lenient: tens of thousands of made-up devices, not issued one by one through the control API
    sandbox_cmd = [py, "-m", "pushrelay", "sandbox", "--port", "0", "--dir", str(tmp / "sb"), "--lenient"]
    sandbox = start(sandbox_cmd, tmp / "sandbox.log")
    service: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: "listening on https://" in (tmp / "sandbox.log").read_text(), "the sandbox")
        sb_url = re.search(r"APNs sandbox \S+ listening on (https://\S+)", (tmp / "sandbox.log").read_text())
        assert sb_url is not None
        sb = sb_url.group(1)
        ca, key_file = tmp / "sb" / "ca.pem", next((tmp / "sb").glob("AuthKey_*.p8"))
        # the sandbox speaks HTTP/2 only, like APNs
        control = httpx.Client(
            base_url=sb, verify=ssl.create_default_context(cafile=ca), timeout=30, http2=True
        )

        # 1. raw transport
        rate = asyncio.run(raw_transport(sb, ca, own_key(control), args.raw))
        print(f"raw APNs transport (ApnsClient.send_many, 1 connection): {rate:,.0f} notifications/s")

        cfg = tmp / "pushrelay.toml"
        cfg.write_text(
            f'[database]\nurl = "{url}"\n'
            f'[apps.bench]\nbundle_id = "{BUNDLE}"\n'
            f'[apps.bench.apns]\nteam_id = "{TEAM}"\nkey_file = "{key_file}"\nendpoint = "{sb}"\nca_file = "{ca}"\n'
        )
        db = Database(url)
        key = ApiKeyStore(db.engine).create(["admin"])[1]
        t0 = time.perf_counter()
        DeviceRegistry(db).register_many(
            DeviceInfo(app="bench", token=f"{i + 1:064x}", email=f"u{i}@x.com") for i in range(args.devices)
        )
        print(f"registered {args.devices:,} devices in {time.perf_counter() - t0:.1f} s")
        db.dispose()
        port = free_port()
        env = {
            **os.environ,
            "PUSHRELAY_LOG_LEVEL": "warning",
            "PUSHRELAY_RATE_LIMIT": "1000000",
            "PUSHRELAY_RATE_BURST": "1000000",
        }
        service = start(
            [py, "-m", "pushrelay", "serve", "--config", str(cfg), "--port", str(port)],
            tmp / "service.log",
            env,
        )
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, "the service")
        limits = httpx.Limits(max_connections=args.concurrency)
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=limits
        ) as c:

            def idle() -> bool:
                """Every notification accepted so far is completed: nothing left to compete with."""
                busy = ("scheduled", "pending", "expanding", "sending")
                return not any(
                    c.get("/v1/notifications", params={"state": s, "limit": 1}).json()["items"] for s in busy
                )

            # 2. accepting, one notification per request
            def post(i: int) -> float:
                s = time.perf_counter()
                body = {"app": "bench", "notification": {"title": f"n{i}"},
                        "recipients": {"emails": [f"u{i % args.devices}@x.com"]}}  # fmt: skip
                r = c.post("/v1/notifications", json=body)
                assert r.status_code == 202, r.text
                return time.perf_counter() - s

            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                lat = sorted(pool.map(post, range(args.requests)))
            wall = time.perf_counter() - t0
            p = statistics.quantiles(lat, n=100)
            print(
                f"POST /v1/notifications: {args.requests / wall:,.0f} req/s, p50 {p[49] * 1000:.1f} ms, "
                f"p99 {p[98] * 1000:.1f} ms ({args.requests} requests, {args.concurrency} connections)"
            )
            wait_for(idle, "the queue to drain", 600)

            # 3. accepting in batches
            def post_batch(i: int) -> None:
                items = [{"app": "bench", "notification": {"title": f"b{i}"},
                          "recipients": {"device_tokens": [f"{(i * 500 + j) % args.devices + 1:064x}"]}}
                         for j in range(500)]  # fmt: skip
                r = c.post("/v1/notifications:batch", json={"notifications": items})
                assert r.status_code == 202, r.text

            batches = 0 if args.no_batch else max(1, args.requests // 100)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(post_batch, range(batches)))
            wall = time.perf_counter() - t0
            if batches:
                print(f"POST /v1/notifications:batch: {batches * 500 / wall:,.0f} notifications/s accepted "
                      f"({batches} requests of 500, 4 connections)")  # fmt: skip
            wait_for(idle, "the queue to drain", 600)
            time.sleep(1)

            # 4. end to end: every device
            before = control.get("/_sandbox/stats").json()["accepted"]
            t0 = time.perf_counter()
            r = c.post(
                "/v1/notifications", json={"app": "bench", "notification": NOTE, "recipients": {"all": True}}
            )
            nid = r.json()["id"]
            # polled twice a second: a status counts the outcomes of every delivery, work taken from
            # the service being measured
            wait_for(
                lambda: c.get(f"/v1/notifications/{nid}").json()["state"] == "completed",
                "completion",
                3600,
                0.5,
            )
            wall = time.perf_counter() - t0
            got = control.get("/_sandbox/stats").json()["accepted"] - before
            counts = c.get(f"/v1/notifications/{nid}").json()["counts"]
            print(
                f"end to end: {args.devices:,} devices accepted -> recorded in {wall:.1f} s = "
                f"{args.devices / wall:,.0f} deliveries/s (sandbox accepted {got:,}; counts {counts})"
            )
            print(f"end to end / raw transport: {args.devices / wall / rate:.2f}")
    finally:
        if service is not None:
            stop(service)
        stop(sandbox)


if __name__ == "__main__":
    main()
