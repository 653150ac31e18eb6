"""A minimal APNs sender on asyncio + the ``h2`` library: the baseline the hand-written HTTP/2 core
of pushrelay has to beat to be worth its code (issue 11).

    python bench/h2_peer.py --n 20000 --endpoint https://127.0.0.1:8443 --ca-file cert.pem [--json]

One TLS connection, as many concurrent streams as the server allows, one ``POST /3/device/<token>``
per notification with a JWT bearer (made up: the null APNs checks nothing), the same 4D payload as
``apns_throughput.py``. Counts only 200 answers; exits non-zero if any send failed. It is written
the straightforward way (no batching of writes beyond one flush per event-loop turn), like a
developer would with ``h2``'s documentation at hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events

TOKEN = "0123456789abcdef" * 4
PAYLOAD = json.dumps(
    {"aps": {"alert": {"title": "This is title", "body": "Here is the content of this notification"},
             "sound": "default"}}, separators=(",", ":"),
).encode()  # fmt: skip


async def run(n: int, endpoint: str, ca_file: str | None) -> dict[str, float | int]:
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    headers = [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", host),
        (":path", f"/3/device/{TOKEN}"),
        ("authorization", "bearer eyJhbGciOiJFUzI1NiIsImtpZCI6IkJFTkNIIn0.e30.c2ln"),
        ("apns-topic", "com.example.app"),
        ("apns-push-type", "alert"),
    ]
    statuses: dict[int, int] = {}
    done = asyncio.Event()
    room = asyncio.Event()
    finished = ok = sent = 0

    def limit() -> int:
        return int(conn.remote_settings.max_concurrent_streams or 100)

    async def read() -> None:
        nonlocal finished, ok
        while finished < n:
            data = await reader.read(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = {str(k): str(v) for k, v in event.headers or []}.get(":status", "0")
                    statuses[event.stream_id] = int(status)
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                    room.set()
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    finished += 1
                    ok += statuses.pop(event.stream_id, 0) == 200
                    room.set()
            writer.write(conn.data_to_send())
        done.set()

    reader_task = asyncio.create_task(read())
    t0 = time.perf_counter()
    while sent < n:
        # stream limit, and the connection's flow-control window (nginx keeps it at 64 KiB until
        # its WINDOW_UPDATEs arrive)
        while sent < n and sent - finished < limit() and conn.outbound_flow_control_window >= len(PAYLOAD):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, headers)
            conn.send_data(sid, PAYLOAD, end_stream=True)
            sent += 1
        writer.write(conn.data_to_send())
        await writer.drain()
        if sent < n:
            room.clear()
            await room.wait()
    await done.wait()
    seconds = time.perf_counter() - t0
    reader_task.cancel()
    writer.close()
    return {"sent": n, "ok": ok, "seconds": round(seconds, 3), "rate": round(ok / seconds, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--endpoint", default="https://127.0.0.1:8443")
    p.add_argument("--ca-file", default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out = asyncio.run(run(args.n, args.endpoint, args.ca_file))
    print(
        json.dumps(out) if args.json else f"asyncio + h2: {out['rate']:.0f} notifications/s ({out['ok']} ok)"
    )
    if out["ok"] != out["sent"]:
        sys.exit(f"{int(out['sent']) - int(out['ok'])} sends failed")


if __name__ == "__main__":
    main()
