"""Throughput of pushrelay's FCM client against the FCM sandbox (HTTP/2 over TLS on 127.0.0.1).

    python bench/fcm_throughput.py --n 3000 [--concurrency 200] [--json]

The sandbox (FCM v1 + its OAuth endpoint) runs in a child process so that it does not share the
client's interpreter; N copies of the 4D example notification go through
:meth:`pushrelay.fcm.FcmClient.send_many` to distinct tokens. The sandbox validates every message
and bearer token, so the figure is a lower bound of the client alone. FCM's own quota is 600,000
messages per minute per project (10,000/s). With ``--json`` it prints one JSON object:
{"sent", "ok", "seconds", "rate", "peak_rss_mb"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from multiprocessing.connection import Connection

from pushrelay.fcm import FcmClient, ServiceAccount
from pushrelay.notification import Notification

# the rest of an FCM-shaped registration token (<instance id>:APA91b<...>): the sandbox refuses others
_BODY = "b" * 130


def serve(conn: Connection, directory: str) -> None:
    from pushrelay.sandbox.fcm import FcmSandbox

    async def main() -> None:
        async with FcmSandbox() as sb:
            key = sb.create_service_account(directory, project_id="bench")
            # The CA file stays in place while the sandbox runs, i.e. for the whole measurement.
            conn.send((sb.url, str(sb.ca_file), str(key)))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
            conn.send(len(sb.all_received()))

    asyncio.run(main())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def run(args: argparse.Namespace, url: str, ca_file: str, key_file: str) -> dict[str, float | int]:
    note = Notification(
        title="This is title", body="Here is the content of this notification", sound="default"
    )
    account = ServiceAccount.from_file(key_file, ca_file=ca_file)
    async with FcmClient(account, base_url=url, ca_file=ca_file, concurrency=args.concurrency) as client:
        # Warm up: the OAuth token and the connection, outside the measurement.
        assert (await client.send(note, f"warmup{0:018d}:APA91b{_BODY}")).ok
        start = time.perf_counter()
        ok = 0
        async for result in client.send_many(
            (note, f"bench{i:017d}:APA91b{_BODY}", i) for i in range(args.n)
        ):
            ok += result.ok
        seconds = time.perf_counter() - start
    # successes only: a refused or failed send is not throughput
    return {"sent": args.n, "ok": ok, "seconds": round(seconds, 3), "rate": round(ok / seconds),
            "peak_rss_mb": round(peak_rss_mb(), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        parent, child = mp.Pipe()
        process = mp.get_context("spawn").Process(target=serve, args=(child, directory), daemon=True)
        process.start()
        try:
            url, ca_file, key_file = parent.recv()
            stats = asyncio.run(run(args, url, ca_file, key_file))
            parent.send("stop")
            stats["sandbox_received"] = parent.recv()
        finally:
            process.join(10)
            if process.is_alive():
                process.terminate()
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"{stats['ok']}/{stats['sent']} accepted in {stats['seconds']} s: "
              f"{stats['rate']} notifications/s (peak RSS {stats['peak_rss_mb']} MB)")  # fmt: skip
    if stats["ok"] != stats["sent"]:
        sys.exit(f"{stats['sent'] - stats['ok']} of {stats['sent']} sends failed: not a valid measurement")


if __name__ == "__main__":
    main()
