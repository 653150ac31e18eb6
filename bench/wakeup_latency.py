"""Wake-up latency: a notification accepted by the API → its first attempt reaching APNs.

    python bench/wakeup_latency.py [--db postgresql|sqlite] [--sends 40] [--gap 0.4] [--listen on|off]

``pushrelay serve --api-only`` and one ``pushrelay worker`` process (PostgreSQL), or one
``pushrelay serve`` (SQLite: the API wakes the workers of its own process), against the APNs
sandbox running in this process. ``--sends`` notifications to one device each, one at a time,
``--gap`` seconds apart so that the worker is idle when each arrives. The latency of each is
from just before its ``POST /v1/notifications`` to the sandbox's clock when the request arrived
(both ``time.time()`` on this machine).

``--listen off`` sets ``worker_listen = false``: the workers poll every ``worker_poll`` (0.25 s),
as before LISTEN/NOTIFY. Prints one JSON object: median / p90 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _serve import NOTE, Serve, scratch_database, wait_for, write_config
from pushrelay.db import Database
from pushrelay.sandbox import ApnsSandbox
from pushrelay.server.apikeys import ApiKeyStore

BUNDLE = "com.sample.myappname"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="postgresql")
    p.add_argument("--sends", type=int, default=40)
    p.add_argument("--gap", type=float, default=0.4)
    p.add_argument("--listen", choices=("on", "off"), default="on")
    args = p.parse_args()
    env = {"PUSHRELAY_WORKER_LISTEN": "true" if args.listen == "on" else "false",
           "PUSHRELAY_LOG_LEVEL": "warning"}  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="pushrelay-wakeup-"))
    with ApnsSandbox.running() as sb, scratch_database(args.db, tmp) as url:
        sb.add_topic(BUNDLE, "TEAM123456")
        tokens = [sb.issue_token(BUNDLE) for _ in range(args.sends + 1)]
        config = write_config(tmp, sb, url)
        db = Database(url)
        try:
            key = ApiKeyStore(db.engine).create(["admin"])[1]
        finally:
            db.dispose()
        split = args.db == "postgresql"
        api = Serve(config, tmp / "serve.log", env)
        worker: subprocess.Popen[bytes] | None = None
        try:
            api.start(*(["--api-only"] if split else []))
            if split:
                with (tmp / "worker.log").open("ab") as log:
                    worker = subprocess.Popen(
                        [sys.executable, "-m", "pushrelay", "worker", "--config", str(config),
                         "--log-level", "info"],
                        stdout=log, stderr=subprocess.STDOUT, env=api.env,
                    )  # fmt: skip
            lat: list[float] = []
            with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:

                def send(token: str) -> float:
                    t0 = time.time()
                    r = c.post("/v1/notifications", json={"app": "myapp", "notification": NOTE,
                                                          "recipients": {"device_tokens": [token]}})  # fmt: skip
                    r.raise_for_status()
                    wait_for(lambda: sb.received(token), f"the push to {token[-4:]}", 60, 0.002)
                    return sb.received(token)[0].at - t0

                send(tokens[-1])  # warm-up: the worker's APNs connection and provider token
                for token in tokens[: args.sends]:
                    time.sleep(args.gap)
                    lat.append(send(token))
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(30)
            api.stop()
    ms = sorted(x * 1000 for x in lat)
    print(json.dumps({
        "db": args.db, "listen": args.listen, "processes": "serve --api-only + 1 worker" if split else "serve",
        "sends": args.sends, "gap_s": args.gap,
        "latency_ms_median": round(statistics.median(ms), 1),
        "latency_ms_p90": round(ms[int(len(ms) * 0.9) - 1], 1),
        "latency_ms_max": round(ms[-1], 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
