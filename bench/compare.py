"""pushrelay against the peers, in one run, on the null APNs endpoint of ../shared/bench.

    bash ../shared/bench/setup.sh            # once: nginx + h2load, aioapns, @parse/node-apn, a test key
    python bench/compare.py --n 20000 [--repeat 3] [--sizes 20000,100000,200000]

Starts the null endpoint if needed, runs h2load (the C ceiling), aioapns (1 connection),
@parse/node-apn (4 connections), a minimal asyncio + h2 client (bench/h2_peer.py) and pushrelay (bench/apns_throughput.py) back to back, and prints
notifications/s, pushrelay's peak RSS for each batch size, and the ratios. Figures drift between
runs on a shared machine: compare within one run only (take the median of --repeat runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = (HERE.parent.parent / "shared" / "bench").resolve()
HOME = Path(os.environ.get("BENCH_HOME", "/tmp/pushrelay-bench"))
RATE = re.compile(r"([\d.]+) notifications/s")


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)
    return out.stdout + out.stderr


def peers(n: int, port: int) -> dict[str, float]:
    rates: dict[str, float] = {}
    text = run(["bash", str(SHARED / "peers.sh"), str(n), str(port)])
    for line in text.splitlines():
        m = RATE.search(line)
        if m:
            name = line.split(":")[0].split(" (")[0]
            rates[name] = float(m.group(1))
    return rates


def ours(n: int, port: int, connections: int) -> dict[str, float]:
    text = run(
        [
            sys.executable,
            str(HERE / "apns_throughput.py"),
            "--n",
            str(n),
            "--endpoint",
            f"https://127.0.0.1:{port}",
            "--ca-file",
            str(HOME / "sink" / "cert.pem"),
            "--connections",
            str(connections),
            "--json",
        ]
    )
    return json.loads(text.strip().splitlines()[-1])  # type: ignore[no-any-return]


def h2_peer(n: int, port: int) -> float:
    """The asyncio + h2 baseline (bench/h2_peer.py): what the hand-written HTTP/2 core is measured
    against."""
    text = run([sys.executable, str(HERE / "h2_peer.py"), "--n", str(n), "--endpoint",
                f"https://127.0.0.1:{port}", "--ca-file", str(HOME / "sink" / "cert.pem"), "--json"])  # fmt: skip
    return float(json.loads(text.strip().splitlines()[-1])["rate"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--sizes", default="20000,100000,200000", help="batch sizes for the memory check")
    args = p.parse_args()
    if not (HOME / "AuthKey_TEST123456.p8").exists():
        raise SystemExit(f"run {SHARED / 'setup.sh'} first")
    subprocess.run(
        ["bash", str(SHARED / "sink.sh"), "start", str(args.port)], capture_output=True, check=False
    )
    samples: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for name, rate in peers(args.n, args.port).items():
            samples.setdefault(name, []).append(rate)
        samples.setdefault("asyncio+h2", []).append(h2_peer(args.n, args.port))
        samples.setdefault("pushrelay", []).append(ours(args.n, args.port, args.connections)["rate"])
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"N = {args.n}, median of {args.repeat} runs, notifications/s:")
    for name, rate in sorted(med.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<10} {rate:>10.0f}   ({', '.join(f'{x:.0f}' for x in samples[name])})")
    ref = med["pushrelay"]
    for name in ("node-apn", "aioapns", "asyncio+h2", "h2load"):
        if name in med:
            print(f"  pushrelay / {name}: {ref / med[name]:.2f}x")
    print("memory (pushrelay peak RSS by batch size):")
    for size in (int(s) for s in args.sizes.split(",")):
        r = ours(size, args.port, args.connections)
        print(f"  {size:>8}: {r['peak_rss_mb']:.1f} MB at {r['rate']:.0f}/s ({r['ok']} ok)")


if __name__ == "__main__":
    main()
