"""Crash recovery of ``pushrelay serve`` (not a unit test): time to final, lost and duplicated.

Runs the APNs sandbox (in this process) and ``pushrelay serve`` (a child process, default
settings: a 30 s lease), posts ``--devices`` notifications of one device each, and ``kill -9``s the
service once the sandbox has accepted ``--kill-at`` of them (mid-delivery). It restarts the service
at once and measures the time from the kill until every delivery is final. The sandbox's log of
what it accepted says what was lost (a device that never got its notification) and duplicated (a
device that got it more than once; the duplicates carry the same apns-id).

    .venv/bin/python bench/recovery.py --devices 5000 [--database postgresql]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import httpx
from sqlalchemy import func, select

from _serve import NOTE, Serve, issue_tokens, sandbox_stack, wait_for
from pushrelay.queue.interface import DeliveryState
from pushrelay.queue.models import DeliveryRow

D = DeliveryRow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=5000)
    ap.add_argument(
        "--kill-at", type=int, default=None, help="accepted by the sandbox (default: devices / 5)"
    )
    ap.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = ap.parse_args()
    kill_at = args.kill_at or args.devices // 5

    with sandbox_stack(args.database) as stack:
        sb, db = stack.sb, stack.db
        service = Serve(stack.config, stack.tmp / "service.log").start()
        tokens = issue_tokens(sb, args.devices)
        try:
            with httpx.Client(
                base_url=service.url, headers={"Authorization": f"Bearer {stack.sender}"}, timeout=60
            ) as c:
                for i in range(0, len(tokens), 500):
                    body = {
                        "notifications": [
                            {"app": "myapp", "notification": NOTE, "recipients": {"device_tokens": [t]}}
                            for t in tokens[i : i + 500]
                        ]
                    }
                    r = c.post("/v1/notifications:batch", json=body)
                    if r.status_code != 202:
                        raise SystemExit(f"batch refused: {r.status_code} {r.text}")
            wait_for(lambda: sb.stats.accepted >= kill_at, "the first deliveries", 300, every=0.005)
            service.kill9()
            killed = time.monotonic()
            accepted_at_kill = sb.stats.accepted
            with db.engine.connect() as conn:
                in_flight_at_kill = conn.execute(
                    select(func.count()).where(D.state == DeliveryState.IN_FLIGHT.value)
                ).scalar_one()
                recorded_at_kill = conn.execute(
                    select(func.count()).where(D.state == DeliveryState.DONE.value)
                ).scalar_one()
            service.start()

            def all_final() -> bool:
                with db.engine.connect() as conn:
                    done = conn.execute(
                        select(func.count()).where(D.state == DeliveryState.DONE.value)
                    ).scalar_one()
                return int(done) == args.devices

            wait_for(all_final, "every delivery to be final", 600, every=0.1)
            seconds = time.monotonic() - killed
        finally:
            service.stop()
        received = sb.all_received()
        per_token = Counter(r.token for r in received)
        ids = {}
        for r in received:
            ids.setdefault(r.token, set()).add(r.apns_id)
        with db.engine.connect() as conn:
            outcomes = dict(conn.execute(select(D.outcome, func.count()).group_by(D.outcome)).all())
        print(
            json.dumps(
                {
                    "database": args.database,
                    "devices": args.devices,
                    "accepted_at_kill": accepted_at_kill,
                    "recorded_at_kill": int(recorded_at_kill),
                    "in_flight_at_kill": int(in_flight_at_kill),
                    "seconds_from_kill_to_all_final": round(seconds, 1),
                    "outcomes": {str(k): int(v) for k, v in outcomes.items()},
                    "lost": sum(1 for t in tokens if per_token[t] == 0),
                    "duplicated": sum(n - 1 for n in per_token.values() if n > 1),
                    "duplicates_with_another_apns_id": sum(1 for s in ids.values() if len(s) > 1),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
