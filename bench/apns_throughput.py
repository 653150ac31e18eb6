"""Throughput of pushrelay's APNs transport against an APNs-compatible endpoint.

    python bench/apns_throughput.py --n 20000 --endpoint https://127.0.0.1:8443 --ca-file PATH \
        [--connections K] [--in-flight M|adaptive] [--json]

Sends N copies of the 4D example notification through :class:`pushrelay.apns.ApnsClient.send_many`
(one device token, one result per notification) and prints notifications/s and the peak RSS. It makes
its own throw-away .p8 key: the null endpoint of ``../shared/bench`` checks nothing. With ``--json``
it prints exactly one JSON object: {"sent", "ok", "seconds", "rate", "cpu_us_per_ok", "peak_rss_mb",
"limit", "peak_in_flight"}; ``rate`` counts successes only, and any failed send makes the exit status non-zero.
``--in-flight`` is a fixed cap, or ``adaptive`` (the default: the client's adaptive limit);
``limit`` is the in-flight limit at the end, ``peak_in_flight`` the most requests seen on streams
(sampled every 500 results). ``bench/inflight.py`` runs it against a sink with added latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time

from cryptography.hazmat.primitives.asymmetric import ec

from pushrelay.apns import ApnsClient, TokenAuth
from pushrelay.notification import Notification

TOKEN = "0123456789abcdef" * 4


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def run(args: argparse.Namespace) -> dict[str, float | int]:
    auth = TokenAuth(ec.generate_private_key(ec.SECP256R1()), key_id="BENCH12345", team_id="TEAM123456")
    note = Notification(
        title="This is title", body="Here is the content of this notification", sound="default"
    )
    async with ApnsClient(
        auth,
        topic="com.example.app",
        endpoint=args.endpoint,
        ca_file=args.ca_file,
        connections=args.connections,
        max_in_flight=None if args.in_flight == "adaptive" else int(args.in_flight),
    ) as client:
        warm = await client.send(note, TOKEN)  # connect, and let APNs raise the stream limit
        if not warm.ok:
            raise SystemExit(f"warm-up failed: {warm.outcome} {warm.status} {warm.reason}")
        items = ((note, TOKEN, None) for _ in range(args.n))  # a generator: nothing is pre-built
        ok = seen = peak = 0
        pool = client.pool
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        async for result in client.send_many(items):
            ok += result.ok
            seen += 1
            if seen % 500 == 0:
                peak = max(peak, pool.in_flight)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        limit = client.in_flight_limit
    return {
        "sent": args.n,
        "ok": ok,
        "seconds": round(seconds, 3),
        # successes only: a refused or failed send is not throughput
        "rate": round(ok / seconds, 1),
        # this process's CPU per success: on a shared machine, steadier than the rate
        "cpu_us_per_ok": round(cpu * 1e6 / max(ok, 1), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "limit": limit,
        "peak_in_flight": peak,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--endpoint", default="https://127.0.0.1:8443")
    p.add_argument("--ca-file", default=None)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--in-flight", default="adaptive", help="a fixed cap, or 'adaptive' (default)")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.loop == "uvloop":
        import uvloop

        out = uvloop.run(run(args))
    else:
        out = asyncio.run(run(args))
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"pushrelay: {out['sent']} sent, {out['ok']} ok, {out['seconds']}s, "
            f"{out['rate']:.0f} notifications/s, peak RSS {out['peak_rss_mb']} MB",
            file=sys.stdout,
        )
    if out["ok"] != out["sent"]:
        sys.exit(
            f"{int(out['sent']) - int(out['ok'])} of {out['sent']} sends failed: not a valid measurement"
        )


if __name__ == "__main__":
    main()
