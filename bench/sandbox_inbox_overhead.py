"""What the inbox costs the APNs sandbox: CPU per request and notifications/s with and without it.

    python bench/sandbox_inbox_overhead.py [--n 20000] [--repeat 3] [--json]

Each round starts the APNs sandbox in a child process (``--serve``), with the inbox attached or not
(alternating, so drift on a shared machine hits both alike), and sends ``--n`` copies of the 4D
example from this process with ``ApnsClient.send_many`` over one HTTP/2 connection. The child reports
its own CPU time while the parent sends: µs per request is the robust figure on a shared machine
(the rates drift with the load). With the inbox on, the parent then times ``GET /`` of the inbox page
(the newest 50 of the 10,000 entries it keeps) and ``GET /feed`` (nothing new). Prints the medians of
each mode and their ratio; with ``--json`` one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from pushrelay.apns import ApnsClient, TokenAuth
from pushrelay.notification import Notification

TEAM, BUNDLE = "TEAM123456", "com.sample.myappname"


async def serve(directory: Path, with_inbox: bool) -> None:
    """The child: an APNs sandbox (and its inbox), described on stdout, until stdin closes."""
    from pushrelay.sandbox import ApnsSandbox
    from pushrelay.sandbox.inbox import Inbox, serve_inbox
    from pushrelay.sandbox.records import InboxLog

    async with ApnsSandbox(directory=directory) as sandbox:
        key_file = sandbox.create_key(TEAM)
        sandbox.add_topic(BUNDLE, TEAM)
        token = sandbox.issue_token(BUNDLE)  # the strict sandbox knows issued tokens only
        info: dict[str, Any] = {
            "url": sandbox.url,
            "ca": str(sandbox.ca_file),
            "key": str(key_file),
            "token": token,
        }
        loop = asyncio.get_running_loop()

        async def measure() -> None:
            # the sandbox's own CPU time while the parent sends: robust on a loaded machine, unlike rates
            cpu = time.process_time()
            await loop.run_in_executor(None, sys.stdin.readline)
            print(json.dumps({"cpu_s": time.process_time() - cpu}), flush=True)
            await loop.run_in_executor(None, sys.stdin.read)

        if with_inbox:
            log = InboxLog()
            sandbox.attach_inbox(log)
            async with serve_inbox(Inbox(log, apns=sandbox)) as inbox_url:
                print(json.dumps({**info, "inbox": inbox_url}), flush=True)
                await measure()
        else:
            print(json.dumps(info), flush=True)
            await measure()


async def send(info: dict[str, Any], n: int) -> float:
    auth = TokenAuth.from_file(info["key"], team_id=TEAM)
    note = Notification(
        title="This is title", body="Here is the content of this notification", sound="default"
    )
    async with ApnsClient(auth, topic=BUNDLE, endpoint=info["url"], ca_file=info["ca"]) as client:
        warm = await client.send(note, info["token"])
        if not warm.ok:
            raise SystemExit(f"warm-up failed: {warm.status} {warm.reason}")
        t0 = time.perf_counter()
        ok = 0
        async for result in client.send_many((note, info["token"], None) for _ in range(n)):
            ok += result.ok
        seconds = time.perf_counter() - t0
    if ok != n:
        raise SystemExit(f"only {ok} of {n} delivered")
    return n / seconds


def page_times(url: str, samples: int = 20) -> dict[str, float]:
    out: dict[str, float] = {}
    with httpx.Client() as http:
        http.get(url).raise_for_status()  # the first request compiles the templates
        for name, path in (("page_ms", ""), ("feed_ms", "feed?after=999999999")):
            times = []
            for _ in range(samples):
                t0 = time.perf_counter()
                r = http.get(url + path)
                times.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            out[name] = round(statistics.median(times), 1)
    return out


def round_trip(n: int, with_inbox: bool) -> tuple[float, float, dict[str, float]]:
    with tempfile.TemporaryDirectory() as directory:
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", directory, *(["--inbox"] if with_inbox else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        try:
            info = json.loads(child.stdout.readline())
            rate = asyncio.run(send(info, n))
            child.stdin.write("sent\n")
            child.stdin.flush()
            cpu_us = json.loads(child.stdout.readline())["cpu_s"] / n * 1e6
            pages = page_times(info["inbox"]) if with_inbox else {}
        finally:
            child.stdin.close()
            child.wait(30)
    return rate, cpu_us, pages


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--inbox", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.inbox))
        return
    rates: dict[str, list[float]] = {"without": [], "with": []}
    cpu: dict[str, list[float]] = {"without": [], "with": []}
    pages: list[dict[str, float]] = []
    for _ in range(args.repeat):
        for mode in ("without", "with"):
            rate, cpu_us, timing = round_trip(args.n, mode == "with")
            rates[mode].append(rate)
            cpu[mode].append(cpu_us)
            if timing:
                pages.append(timing)
    without, with_ = statistics.median(rates["without"]), statistics.median(rates["with"])
    cpu_without, cpu_with = statistics.median(cpu["without"]), statistics.median(cpu["with"])
    result = {
        "sandbox_cpu_us_per_request_without_inbox": round(cpu_without, 1),
        "sandbox_cpu_us_per_request_with_inbox": round(cpu_with, 1),
        "cpu_ratio": round(cpu_with / cpu_without, 3),
        "n": args.n,
        "repeat": args.repeat,
        "without_inbox_rate": round(without, 1),
        "with_inbox_rate": round(with_, 1),
        "ratio": round(with_ / without, 3),
        "rates": {k: [round(r, 1) for r in v] for k, v in rates.items()},
        "cpu_us": {k: [round(c, 1) for c in v] for k, v in cpu.items()},
        "inbox_page_ms": statistics.median(t["page_ms"] for t in pages),
        "inbox_feed_ms": statistics.median(t["feed_ms"] for t in pages),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"APNs sandbox, {args.n} notifications, median of {args.repeat}: "
            f"{result['sandbox_cpu_us_per_request_without_inbox']} µs of sandbox CPU per request without the inbox, "
            f"{result['sandbox_cpu_us_per_request_with_inbox']} µs with it (x{result['cpu_ratio']}); "
            f"{result['without_inbox_rate']:,}/s without the inbox, {result['with_inbox_rate']:,}/s with it "
            f"(x{result['ratio']}); inbox page {result['inbox_page_ms']} ms, empty feed poll {result['inbox_feed_ms']} ms"
        )


if __name__ == "__main__":
    main()
