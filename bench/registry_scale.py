"""How the device registry scales: a million devices in SQLite.

    python bench/registry_scale.py [--devices 1000000] [--emails 10000] [--url sqlite:///...]

1. fills the registry (bulk INSERTs, ~1.6 devices per user, a mix of iOS and Android);
2. resolves ``--emails`` random addresses (mixed case) with ``DeviceRegistry.for_emails``;
3. streams every device of the app with ``DeviceRegistry.stream``.

Steps 2 and 3 each run in a fresh process so that their peak RSS is their own. Prints one JSON
object per step. Run it on an idle machine (``nice`` helps when it is not).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

APP = "bench-app"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kB


def email_of(user: int) -> str:
    return f"user{user}@example.com"


def fill(url: str, devices: int) -> dict[str, object]:
    import sqlalchemy as sa

    from pushrelay.db import Database
    from pushrelay.registry.models import Device

    db = Database(url)
    table = Device.__table__
    now = datetime.now(UTC)
    users = int(devices / 1.6)
    rng = random.Random(1)
    started = time.perf_counter()
    batch: list[dict[str, object]] = []
    with db.engine.begin() as conn:
        for n in range(devices):
            android = n % 5 == 0
            token = f"fcm:{n:0150x}" if android else f"{n:064x}"
            user = n % users if n < users else rng.randrange(users)
            email = email_of(user)
            batch.append({
                "app": APP, "platform": "android" if android else "ios", "token": token,
                "token_hash": hashlib.sha256(token.encode()).hexdigest(), "environment": None,
                "email": email, "email_norm": email, "simulator": False, "created_at": now,
                "last_seen_at": now, "active": True,
            })  # fmt: skip
            if len(batch) == 10_000:
                conn.execute(sa.insert(table), batch)
                batch.clear()
        if batch:
            conn.execute(sa.insert(table), batch)
    elapsed = time.perf_counter() - started
    db.dispose()
    return {"step": "fill", "devices": devices, "users": users, "seconds": round(elapsed, 2),
            "devices_per_second": round(devices / elapsed)}  # fmt: skip


def resolve(url: str, emails: int, users: int) -> dict[str, object]:
    from pushrelay.registry import DeviceRegistry

    rng = random.Random(2)
    wanted = [
        email_of(rng.randrange(users)).upper() if i % 2 else email_of(rng.randrange(users))
        for i in range(emails)
    ]
    with DeviceRegistry(url) as registry:
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        found = sum(1 for _ in registry.for_emails(APP, wanted))
        elapsed = time.perf_counter() - started
    return {"step": "resolve", "emails": emails, "devices_found": found, "seconds": round(elapsed, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1), "rss_at_start_mb": round(rss_before, 1)}  # fmt: skip


def stream(url: str) -> dict[str, object]:
    from pushrelay.registry import DeviceRegistry

    with DeviceRegistry(url) as registry:
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        count = sum(1 for _ in registry.stream(APP))
        elapsed = time.perf_counter() - started
    return {"step": "stream", "devices": count, "seconds": round(elapsed, 2),
            "devices_per_second": round(count / elapsed), "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_at_start_mb": round(rss_before, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--url", default=None, help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--step", choices=["resolve", "stream"], help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step == "resolve":
        print(json.dumps(resolve(args.url, args.emails, args.users)))
        return
    if args.step == "stream":
        print(json.dumps(stream(args.url)))
        return

    with tempfile.TemporaryDirectory(prefix="pushrelay-bench-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        filled = fill(url, args.devices)
        print(json.dumps(filled), flush=True)
        if url.startswith("sqlite:///"):
            size = os.path.getsize(url.removeprefix("sqlite:///"))
            print(json.dumps({"step": "size", "database_mb": round(size / 2**20, 1)}), flush=True)
        for step in ("resolve", "stream"):
            cmd = [sys.executable, __file__, "--step", step, "--url", url, "--emails", str(args.emails),
                   "--users", str(filled["users"])]  # fmt: skip
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
