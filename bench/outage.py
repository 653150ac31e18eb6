"""Provider requests per recorded attempt during an APNs outage (not a unit test).

Runs the APNs sandbox (in this process) and ``pushrelay serve`` (a child process, default retry
settings unless told otherwise), makes the sandbox answer every device request with ``503
ServiceUnavailable`` for ``--outage`` seconds, posts ``--notifications`` notifications (one device
each) at the start of it, then lifts the outage and waits until every delivery has its final outcome.
It prints, as JSON, how many requests APNs received, how many attempts the outbox recorded, and
their ratio. With one retry owner (the outbox) the ratio is 1.0: no layer below it retries.

    .venv/bin/python bench/outage.py --notifications 300 --outage 60 [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from pushrelay.db import Database
from pushrelay.queue.models import DeliveryRow
from pushrelay.sandbox import ApnsSandbox
from pushrelay.server.apikeys import ApiKeyStore

TEAM, BUNDLE = "TEAM123456", "com.sample.myappname"
NOTE = {"title": "This is title", "body": "Here is the content of this notification"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notifications", type=int, default=300)
    ap.add_argument("--outage", type=float, default=60.0, help="seconds of 503 answers")
    ap.add_argument("--status", type=int, default=503)
    ap.add_argument("--reason", default="ServiceUnavailable")
    ap.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    ap.add_argument("--retry-base", default=None, help="PUSHRELAY_RETRY_BASE for the service")
    ap.add_argument("--retry-cap", default=None, help="PUSHRELAY_RETRY_CAP for the service")
    args = ap.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp_name,
        ApnsSandbox.running(directory=Path(tmp_name) / "sb") as sb,
    ):
        tmp = Path(tmp_name)
        sb.add_topic(BUNDLE, TEAM)
        key = sb.create_key(TEAM, "OUTAGEKEY1", tmp)
        url = args.database_url or f"sqlite:///{tmp / 'pushrelay.db'}"
        config = tmp / "pushrelay.toml"
        config.write_text(
            f'[database]\nurl = "{url}"\n\n[apps.myapp]\nbundle_id = "{BUNDLE}"\n'
            f'[apps.myapp.apns]\nteam_id = "{TEAM}"\nkey_file = "{key}"\nendpoint = "{sb.url}"\n'
            f'ca_file = "{sb.ca_file}"\n'
        )
        db = Database(url)
        sender = ApiKeyStore(db.engine).create(["send"], ["myapp"])[1]
        env = dict(os.environ)
        if args.retry_base:
            env["PUSHRELAY_RETRY_BASE"] = args.retry_base
        if args.retry_cap:
            env["PUSHRELAY_RETRY_CAP"] = args.retry_cap
        port = free_port()
        with (tmp / "service.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pushrelay", "serve", "--config", str(config), "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            base = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                if proc.poll() is not None:
                    raise SystemExit(f"the service exited: {(tmp / 'service.log').read_text()[-2000:]}")
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(healthy, "the service", 30)
            sb.set_outage(args.status, args.reason)
            started = time.monotonic()
            tokens = [f"{i:064x}" for i in range(1, args.notifications + 1)]
            for token in tokens:  # the strict sandbox knows issued tokens only
                sb.issue_token(BUNDLE, token=token)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {sender}"}, timeout=30) as c:
                for chunk in range(0, len(tokens), 500):
                    body = {
                        "notifications": [
                            {"app": "myapp", "notification": NOTE, "recipients": {"device_tokens": [t]}}
                            for t in tokens[chunk : chunk + 500]
                        ]
                    }
                    r = c.post("/v1/notifications:batch", json=body)
                    if r.status_code != 202:
                        raise SystemExit(f"batch refused: {r.status_code} {r.text}")
            time.sleep(max(0.0, args.outage - (time.monotonic() - started)))
            during = sb.stats.requests
            sb.clear_outage()
            D = DeliveryRow

            def all_delivered() -> bool:
                with db.engine.connect() as conn:
                    n = conn.execute(select(func.count()).where(D.outcome == "delivered")).scalar_one()
                return int(n) == args.notifications

            wait_for(all_delivered, "every delivery after the outage", 600)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        with db.engine.connect() as conn:
            attempts = [int(a) for (a,) in conn.execute(select(D.attempts)).all()]
        db.dispose()
        stats = sb.stats
        recorded = sum(attempts)
        print(
            json.dumps(
                {
                    "notifications": args.notifications,
                    "outage_seconds": args.outage,
                    "outage_answer": f"{args.status} {args.reason}",
                    "provider_requests": stats.requests,
                    "provider_requests_during_outage": during,
                    "refused": dict(stats.rejected),
                    "accepted": stats.accepted,
                    "recorded_attempts": recorded,
                    "max_attempts_per_delivery": max(attempts),
                    "requests_per_notification": round(stats.requests / args.notifications, 2),
                    "requests_per_recorded_attempt": round(stats.requests / recorded, 3),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
