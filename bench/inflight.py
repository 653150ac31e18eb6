"""The APNs in-flight limit against a slow APNs: fixed 2,000 vs adaptive, same run, interleaved.

    python bench/inflight.py [--n 60000] [--delays-ms 54] [--connections 1,2,4] [--reps 3]
        [--port 8453] [--json]

It starts its own null APNs (nginx, as ``../shared/bench/sink.sh``: HTTP/2 over TLS, 1,000 streams a
connection, every request answered 200) on ``--port``, and for each delay a
``bench/delay_proxy.py`` in front of it on the next ports, which hands the client what nginx sends
``delay`` ms late: an APNs that far away. For each repetition, and within it for each delay and
number of connections, it runs ``bench/apns_throughput.py`` with ``--in-flight 2000`` then
``--in-flight adaptive`` (adjacent, so that the machine's load is alike), and h2load with the same
connections and 1,000 streams each: what the slow sink gives an efficient C client, which shows
whether the sink was the bottleneck. Then fixed vs adaptive against nginx directly (no delay). It
prints medians (min, max) over the repetitions, the CPU the sink (nginx + proxy) spent per request,
and the per-repetition ratios adaptive / fixed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOKEN = "0123456789abcdef" * 4
BODY = b'{"aps":{"alert":{"title":"This is title","body":"Here is the content of this notification"},"sound":"default"}}'

CONF = """worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp;
  proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp; uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  map $http_apns_id $reply_apns_id {{ "" $request_id; default $http_apns_id; }}
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  http2_max_concurrent_streams 1000;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    location /3/device/ {{
      add_header apns-id $reply_apns_id always;
      return 200;
    }}
    location / {{ return 404; }}
  }}
}}
"""


def start_sink(directory: Path, port: int) -> int:
    """The null APNs on ``port``; returns nginx's master pid."""
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")),
        ],
        check=True,
        capture_output=True,
    )
    conf = directory / "nginx.conf"
    conf.write_text(CONF.format(dir=directory, port=port))
    subprocess.run(["nginx", "-c", str(conf)], check=True)
    pid_file = directory / "nginx.pid"
    for _ in range(50):
        if pid_file.exists() and pid_file.read_text().strip():
            return int(pid_file.read_text())
        time.sleep(0.1)
    raise SystemExit("nginx did not start")


def start_proxy(listen: int, upstream: int, delay_ms: int) -> subprocess.Popen[bytes]:
    proxy = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "delay_proxy.py"),
            "--listen",
            str(listen),
            "--upstream",
            str(upstream),
            "--delay-ms",
            str(delay_ms),
        ]
    )
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", listen), timeout=1).close()
            return proxy
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the delay proxy did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sink_cpu_seconds(master: int, proxies: list[int]) -> float:
    """CPU time of nginx's worker(s) and the proxies so far: the sink's share of the machine."""
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sum(cpu_seconds(int(pid)) for pid in workers) + sum(cpu_seconds(pid) for pid in proxies)


def pushrelay(
    args: argparse.Namespace, port: int, ca: Path, connections: int, in_flight: str
) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "apns_throughput.py"),
            "--n",
            str(args.n),
            "--json",
            "--endpoint",
            f"https://127.0.0.1:{port}",
            "--ca-file",
            str(ca),
            "--connections",
            str(connections),
            "--in-flight",
            in_flight,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def h2load(args: argparse.Namespace, port: int, body: Path, connections: int) -> float:
    out = subprocess.run(
        [
            "h2load",
            "-n",
            str(args.n),
            "-c",
            str(connections),
            "-m",
            "1000",
            "-d",
            str(body),
            "-H",
            "apns-topic: com.example.app",
            f"https://127.0.0.1:{port}/3/device/{TOKEN}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    ok = re.search(r"(\d+) succeeded", out)
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    if not ok or not rate or int(ok.group(1)) != args.n:
        raise SystemExit(f"h2load failed:\n{out}")
    return float(rate.group(1))


def summary(values: list[float], digits: int = 1) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60000, help="notifications per run")
    p.add_argument("--delays-ms", default="54", help="comma-separated answer delays of the slow APNs")
    p.add_argument("--connections", default="1,2,4")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--port", type=int, default=8453, help="first of the sink's ports (one per delay + 1)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    for tool in ("nginx", "h2load", "openssl"):  # as ../shared/bench/setup.sh installs them
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (see ../shared/bench/setup.sh)")
    delays = [int(d) for d in args.delays_ms.split(",")]
    conns = [int(c) for c in args.connections.split(",")]
    with tempfile.TemporaryDirectory(prefix="pushrelay-inflight-") as tmp:
        directory = Path(tmp)
        master = start_sink(directory, args.port)
        ports = {0: args.port}
        proxies = []
        for i, delay in enumerate(delays, 1):
            ports[delay] = args.port + i
            proxies.append(start_proxy(ports[delay], args.port, delay))
        proxy_pids = [p.pid for p in proxies]
        body = directory / "body.json"
        body.write_bytes(BODY)
        ca = directory / "cert.pem"
        runs: dict[str, list[dict[str, Any]]] = {}

        def record(key: str, value: dict[str, Any]) -> None:
            runs.setdefault(key, []).append(value)
            if not args.json:
                print(key, json.dumps(value), file=sys.stderr, flush=True)

        try:
            for _rep in range(args.reps):
                for delay in delays:
                    for c in conns:
                        for mode in ("2000", "adaptive"):
                            before = sink_cpu_seconds(master, proxy_pids)
                            res = pushrelay(args, ports[delay], ca, c, mode)
                            res["sink_cpu_us_per_request"] = round(
                                (sink_cpu_seconds(master, proxy_pids) - before) * 1e6 / (args.n + 1), 1
                            )
                            record(f"{delay}ms c{c} {mode}", res)
                        record(f"{delay}ms c{c} h2load", {"rate": h2load(args, ports[delay], body, c)})
                for mode in ("2000", "adaptive"):
                    record(f"0ms c1 {mode}", pushrelay(args, ports[0], ca, 1, mode))
        finally:
            for proxy in proxies:
                proxy.terminate()
                proxy.wait()
            os.kill(master, signal.SIGTERM)
    report: dict[str, Any] = {"n": args.n, "reps": args.reps, "cases": {}}
    for key, values in runs.items():
        case: dict[str, Any] = {"rate": summary([v["rate"] for v in values])}
        for field in ("cpu_us_per_ok", "peak_in_flight", "limit", "sink_cpu_us_per_request"):
            if field in values[0]:
                case[field] = summary([v[field] for v in values])
        report["cases"][key] = case
    ratios: dict[str, Any] = {}
    for delay in [*delays, 0]:
        for c in conns if delay else [1]:
            fixed, adaptive = runs[f"{delay}ms c{c} 2000"], runs[f"{delay}ms c{c} adaptive"]
            per_rep = [a["rate"] / f["rate"] for f, a in zip(fixed, adaptive, strict=True)]
            entry: dict[str, Any] = {"adaptive_over_fixed": summary(per_rep, 2)}
            if delay:
                ref = runs[f"{delay}ms c{c} h2load"]
                entry["adaptive_over_h2load"] = summary(
                    [a["rate"] / h["rate"] for a, h in zip(adaptive, ref, strict=True)], 2
                )
                # what the streams allow at this latency, and what 2,000 in flight allow
                entry["bound_streams_per_s"] = round(c * 1000 / (delay / 1000))
                entry["bound_fixed_2000_per_s"] = round(2000 / (delay / 1000))
            ratios[f"{delay}ms c{c}"] = entry
    report["ratios"] = ratios
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
