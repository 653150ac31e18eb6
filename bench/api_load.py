"""Load test of the service (not a unit test): POST /v1/notifications rate and latency, and the
end-to-end rate from acceptance to recorded delivery for N devices, against the APNs sandbox.

    .venv/bin/python bench/api_load.py --devices 20000 --requests 2000 --concurrency 16 [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from pushrelay.db import Database
from pushrelay.registry.devices import DeviceInfo, DeviceRegistry
from pushrelay.sandbox import ApnsSandbox
from pushrelay.server.apikeys import ApiKeyStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=2_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pushrelay-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    with ApnsSandbox.running() as sb:
        sb.add_topic("com.bench.app", "TEAM123456")
        key_file = sb.create_key("TEAM123456", "ABC123DEFG", tmp)
        cfg = tmp / "pushrelay.toml"
        cfg.write_text(
            f'[database]\nurl = "{url}"\n[apps.bench]\nbundle_id = "com.bench.app"\n'
            f'[apps.bench.apns]\nteam_id = "TEAM123456"\nkey_file = "{key_file}"\n'
            f'endpoint = "{sb.url}"\nca_file = "{sb.ca_file}"\n'
        )
        db = Database(url)
        key = ApiKeyStore(db.engine).create(["admin"])[1]
        reg = DeviceRegistry(db)
        t0 = time.perf_counter()
        reg.register_many(
            DeviceInfo(app="bench", token=f"{i + 1:064x}", email=f"u{i}@x.com") for i in range(args.devices)
        )
        print(f"registered {args.devices} devices in {time.perf_counter() - t0:.1f} s")
        db.dispose()
        env = {
            **os.environ,
            "PUSHRELAY_RATE_LIMIT": "1000000",
            "PUSHRELAY_RATE_BURST": "1000000",
            "PUSHRELAY_LOG_LEVEL": "warning",
        }
        port = 18080
        proc = subprocess.Popen(
            [sys.executable, "-m", "pushrelay", "serve", "--config", str(cfg), "--port", str(port)], env=env
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(
                base_url=base,
                headers=headers,
                timeout=60,
                limits=httpx.Limits(max_connections=args.concurrency),
            ) as c:
                # 1. accepting: one small notification per request
                def post(i: int) -> float:
                    s = time.perf_counter()
                    r = c.post(
                        "/v1/notifications",
                        json={
                            "app": "bench",
                            "notification": {"title": f"n{i}"},
                            "recipients": {"emails": [f"u{i % args.devices}@x.com"]},
                        },
                    )
                    assert r.status_code == 202, r.text
                    return time.perf_counter() - s

                t0 = time.perf_counter()
                with ThreadPoolExecutor(args.concurrency) as pool:
                    lat = sorted(pool.map(post, range(args.requests)))
                wall = time.perf_counter() - t0
                p = statistics.quantiles(lat, n=100)
                print(
                    f"POST /v1/notifications: {args.requests / wall:.0f} req/s, p50 {p[49] * 1000:.1f} ms, "
                    f"p99 {p[98] * 1000:.1f} ms (concurrency {args.concurrency})"
                )
                while c.get("/metrics").text.find('pushrelay_queue_depth{state="pending"} 0.0') < 0:
                    time.sleep(0.2)
                time.sleep(1)
                # 2. end to end: one notification to every device
                before = len(sb.all_received())
                t0 = time.perf_counter()
                nid = c.post(
                    "/v1/notifications",
                    json={"app": "bench", "notification": {"title": "all"}, "recipients": {"all": True}},
                ).json()["id"]
                while c.get(f"/v1/notifications/{nid}").json()["state"] != "completed":
                    time.sleep(0.1)
                wall = time.perf_counter() - t0
                got = len(sb.all_received()) - before
                print(
                    f"end to end: {args.devices} devices accepted -> recorded in {wall:.1f} s = "
                    f"{args.devices / wall:.0f} deliveries/s (sandbox received {got})"
                )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
