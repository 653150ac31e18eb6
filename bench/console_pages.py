"""Console page load times with a large registry (not a unit test).

    python bench/console_pages.py [--devices 1000000] [--notifications 20000] [--runs 15]
                                  [--database-url URL]

1. bulk-inserts ``--devices`` devices (random hex tokens, ~1.6 devices per e-mail) and
   ``--notifications`` completed notifications with 5 deliveries each, straight into the tables;
2. starts ``pushrelay serve --api-only`` on that database, signs in to the console with an admin key;
3. loads each page ``--runs`` times over HTTP and prints, per page, the median and the slowest
   time from request to the last byte (server-rendered HTML: that is the page).

Without ``--database-url`` it uses a temporary SQLite file. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from pushrelay.db import Database
from pushrelay.queue.models import DeliveryRow, NotificationRow
from pushrelay.registry.models import Device
from pushrelay.server.apikeys import ApiKeyStore

APP = "bench-app"
BATCH = 10_000


def token_of(n: int) -> str:
    return hashlib.sha256(f"device-{n}".encode()).hexdigest()


def fill(db: Database, devices: int, notifications: int) -> dict[str, float]:
    aware = datetime.now(UTC)  # the registry's columns take aware times, the outbox's naive UTC
    now = aware.replace(tzinfo=None)
    users = max(1, int(devices / 1.6))
    rng = random.Random(1)
    started = time.perf_counter()
    with db.engine.begin() as conn:
        batch: list[dict[str, Any]] = []
        for n in range(devices):
            token = token_of(n)
            email = f"user{n % users if n < users else rng.randrange(users)}@example.com"
            batch.append({
                "app": APP, "platform": "ios", "token": token,
                "token_hash": hashlib.sha256(token.encode()).hexdigest(), "environment": None,
                "email": email, "email_norm": email, "language": "en", "os": "iOS", "simulator": False,
                "created_at": aware, "last_seen_at": aware, "active": True,
            })  # fmt: skip
            if len(batch) == BATCH:
                conn.execute(sa.insert(Device.__table__), batch)
                batch.clear()
        if batch:
            conn.execute(sa.insert(Device.__table__), batch)
    devices_s = time.perf_counter() - started
    started = time.perf_counter()
    with db.engine.begin() as conn:
        notes: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        for i in range(notifications):
            nid = str(uuid.UUID(int=rng.getrandbits(128)))
            created = now - timedelta(seconds=(notifications - i) * 5)
            notes.append({
                "id": nid, "app": APP, "state": "completed", "payload": {"title": f"note {i}", "body": "bench"},
                "recipients": {"emails": [f"user{i}@example.com"]}, "targets": [], "created_at": created,
                "send_at": None, "expires_at": created + timedelta(days=1), "due_at": created,
                "completed_at": created, "warnings": [], "errors": [], "request_hash": "0" * 64,
            })  # fmt: skip
            for k in range(5):
                outcome = "delivered" if k else "unregistered"
                deliveries.append({
                    "notification_id": nid, "app": APP, "platform": "ios", "environment": None,
                    "token": token_of((i * 5 + k) % max(devices, 1)), "email": None,
                    "apns_id": str(uuid.UUID(int=rng.getrandbits(128))), "state": "done",
                    "next_attempt_at": created, "expires_at": created + timedelta(days=1), "attempts": 1,
                    "outcome": outcome, "status": 200 if k else 410, "reason": None if k else "Unregistered",
                    "created_at": created, "updated_at": created,
                })  # fmt: skip
            if len(notes) >= 2000:
                conn.execute(sa.insert(NotificationRow.__table__), notes)
                conn.execute(sa.insert(DeliveryRow.__table__), deliveries)
                notes.clear()
                deliveries.clear()
        if notes:
            conn.execute(sa.insert(NotificationRow.__table__), notes)
            conn.execute(sa.insert(DeliveryRow.__table__), deliveries)
    if db.backend == "postgresql":
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
    else:
        with db.engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    return {
        "devices_insert_s": round(devices_s, 1),
        "notifications_insert_s": round(time.perf_counter() - started, 1),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1_000_000)
    ap.add_argument("--notifications", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pushrelay-console-bench-"))
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    db = Database(url)
    try:
        filled = fill(db, args.devices, args.notifications)
        admin = ApiKeyStore(db.engine).create(["admin"], name="bench")[1]
        with db.engine.connect() as conn:
            nid = conn.execute(
                sa.select(NotificationRow.id).order_by(NotificationRow.created_at.desc())
            ).scalar()
    finally:
        db.dispose()
    config = work / "pushrelay.toml"
    config.write_text(f'[database]\nurl = "{url}"\n\n[apps.{APP}]\nbundle_id = "com.example.bench"\n')
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(work / "service.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pushrelay",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--api-only",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit((work / "service.log").read_text()[-2000:])
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=60) as http:
            form = http.get("/console/login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None
            assert (
                http.post("/console/login", data={"csrf": token.group(1), "api_key": admin}).status_code
                == 303
            )
            users = max(1, int(args.devices / 1.6))
            pages = {
                "devices: first page": f"/console/devices?app={APP}",
                "devices: page after id 90%": f"/console/devices?app={APP}&after={int(args.devices * 0.9)}",
                "devices: search e-mail": f"/console/devices?app={APP}&q=USER{users // 2}@example.com",
                "devices: search token prefix (4 hex, ~1M/65536 hits)": f"/console/devices?app={APP}&q={token_of(7)[:4]}",
                "devices: search token prefix (1 hex, ~1M/16 hits)": f"/console/devices?app={APP}&q={token_of(7)[:1]}",
                "devices: search token prefix (no match)": f"/console/devices?app={APP}&q=zz",
                "device: details + recent deliveries": "/console/devices/8",
                "notifications: first page": "/console/notifications",
                "notifications: state=completed, app": f"/console/notifications?app={APP}&state=completed",
                "notifications: state=pending (none)": "/console/notifications?state=pending",
                "notification: details": f"/console/notifications/{nid}",
                "apps": "/console/apps",
            }
            results: dict[str, Any] = {}
            for name, path in pages.items():
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    r = http.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, (path, r.status_code, r.text[:500])
                results[name] = {
                    "median_ms": round(statistics.median(times), 1),
                    "max_ms": round(max(times), 1),
                }
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
        if args.database_url is None:  # the SQLite file of a million devices is half a gigabyte
            shutil.rmtree(work, ignore_errors=True)
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(json.dumps({"backend": backend, "devices": args.devices, "notifications": args.notifications,
                      "runs": args.runs, **filled, "pages": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
