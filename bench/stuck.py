"""Notifications left unfinished under concurrent load (not a unit test).

Runs the APNs sandbox (in this process) and ``pushrelay serve`` (a child process, default
settings, the per-key rate limit lifted), then ``--clients`` threads post notifications (1 to 3
devices each) as fast as they can for ``--seconds``. After a ``--grace`` period it counts the
accepted notifications that are not ``completed``: each one is stuck (``pending``, ``expanding`` or
``sending`` with nothing left to do). Every device of this run is reachable, so every notification
should complete within a few seconds of the last post.

    .venv/bin/python bench/stuck.py --clients 50 --seconds 60 [--database sqlite]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from collections import Counter

import httpx
from sqlalchemy import func, select

from _serve import NOTE, Serve, issue_tokens, sandbox_stack
from pushrelay.queue.models import NotificationRow

N = NotificationRow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--grace", type=float, default=60.0, help="seconds after the last post")
    ap.add_argument("--database", choices=["sqlite", "postgresql"], default="postgresql")
    args = ap.parse_args()

    with sandbox_stack(args.database) as stack:
        sb, db = stack.sb, stack.db
        service = Serve(
            stack.config,
            stack.tmp / "service.log",
            {"PUSHRELAY_RATE_LIMIT": "100000", "PUSHRELAY_RATE_BURST": "100000"},
        )
        service.start()
        pool = issue_tokens(sb, 3000)
        answers: Counter[int] = Counter()
        lock = threading.Lock()
        counter = itertools.count(1)
        end = time.monotonic() + args.seconds

        def client() -> None:
            with httpx.Client(
                base_url=service.url, headers={"Authorization": f"Bearer {stack.sender}"}, timeout=60
            ) as c:
                while time.monotonic() < end:
                    n = next(counter)
                    tokens = [pool[(n * 3 + k) % len(pool)] for k in range(1 + n % 3)]
                    body = {"app": "myapp", "notification": NOTE, "recipients": {"device_tokens": tokens}}
                    try:
                        status = c.post("/v1/notifications", json=body).status_code
                    except httpx.HTTPError:
                        status = 0
                    with lock:
                        answers[status] += 1

        try:
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            time.sleep(args.grace)
            with db.engine.connect() as conn:
                states = dict(conn.execute(select(N.state, func.count()).group_by(N.state)).all())
        finally:
            service.stop()
        accepted = sum(int(v) for v in states.values())
        print(
            json.dumps(
                {
                    "database": args.database,
                    "clients": args.clients,
                    "seconds": args.seconds,
                    "grace_seconds": args.grace,
                    "answers": {str(k): v for k, v in sorted(answers.items())},
                    "accepted": accepted,
                    "states_after_grace": {str(k): int(v) for k, v in states.items()},
                    "not_final_after_grace": accepted - int(states.get("completed", 0)),
                    "sandbox_accepted": sb.stats.accepted,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
