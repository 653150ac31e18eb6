"""4D live sync: from a session file written to its device registered, through a real worker.

    python bench/fourd_sync_latency.py [--files 30] [--existing 2000] [--url sqlite:///... | postgresql://...]

1. a 4D app folder is filled with ``--existing`` session files, and one pass of the sync
   (what a restart does) is timed in this process, cold (every file new) and warm (nothing
   changed: one query and a ``stat`` per file);
2. ``pushrelay worker`` is started on that folder; ``--files`` session files are then written one
   at a time (written aside, renamed into place, as 4D's writes appear), and for each the time
   until its device is in the registry is measured by polling the database every 2 ms.

Prints one JSON object: the pass timings and the latency median / p95 / max in milliseconds.
Without ``--url`` it runs on a temporary SQLite file. The figure includes the polling step
(≤ 2 ms) and the watcher's 50 ms quiet period (``step``), which lets a burst of writes be
handled as one batch.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEAM, BUNDLE = "TEAM123456", "com.sample.benchapp"


def session(i: int, token: str) -> str:
    return json.dumps(
        {
            "application": {"id": BUNDLE, "name": "Bench", "version": "1.0"},
            "team": {"id": TEAM},
            "language": {"id": "fr_FR", "code": "fr", "region": "FR"},
            "email": f"user{i}@example.com",
            "device": {
                "description": "iPhone",
                "version": "17.4",
                "id": f"D{i}",
                "os": "iOS",
                "token": token,
            },
            "session": {"id": f"S{i}", "ip": "192.0.2.1"},
            "status": "accepted",
            "token": "auth-token",
        }
    )


def write(folder: Path, name: str, text: str) -> None:
    tmp = folder / f".{name}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(folder / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--existing", type=int, default=2000)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()

    from pushrelay.fourd.sync import FourDSync, WatchedFolder
    from pushrelay.registry import DeviceRegistry

    work = Path(tempfile.mkdtemp(prefix="pushrelay-fourd-bench-"))
    url = args.url or f"sqlite:///{work / 'bench.db'}"
    folder = work / "MobileApps" / f"{TEAM}.{BUNDLE}"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(
        json.dumps({"application": {"id": BUNDLE, "name": "Bench"}, "team": {"id": TEAM}}), encoding="utf-8"
    )
    for i in range(args.existing):
        (folder / f"OLD{i:06d}").write_text(session(i, secrets.token_hex(32)), encoding="utf-8")

    result: dict[str, object] = {"backend": url.split(":", 1)[0], "existing": args.existing}
    with DeviceRegistry(url) as registry:
        wf = WatchedFolder("bench", folder, BUNDLE)
        sync = FourDSync(registry, [wf])
        t = time.perf_counter()
        cold = sync.sync_folder(wf)
        result["cold_pass_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        warm = sync.sync_folder(wf)
        result["warm_pass_s"] = round(time.perf_counter() - t, 3)
        assert cold.created == warm.unchanged == args.existing, (cold, warm)

        config = work / "pushrelay.toml"
        config.write_text(f'[database]\nurl = "{url}"\n\n[apps.bench]\nfourd_folder = "{folder}"\n')
        log = (work / "worker.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pushrelay", "worker", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PUSHRELAY_WORKER_POLL": "1"},
        )
        try:
            deadline = time.monotonic() + 60
            while "fourd.watching" not in (work / "worker.log").read_text():
                assert proc.poll() is None and time.monotonic() < deadline, (work / "worker.log").read_text()
                time.sleep(0.05)
            latencies = []
            for i in range(args.files):
                token = secrets.token_hex(32)
                time.sleep(0.2)  # one write at a time: each file its own event
                t = time.perf_counter()
                write(folder, f"NEW{i:04d}", session(100_000 + i, token))
                while registry.get("bench", token) is None:
                    if time.perf_counter() - t > 30:
                        raise SystemExit(
                            f"file {i} not registered after 30 s: {(work / 'worker.log').read_text()}"
                        )
                    time.sleep(0.002)
                latencies.append((time.perf_counter() - t) * 1000)
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    latencies.sort()
    result |= {
        "files": args.files,
        "latency_ms_median": round(statistics.median(latencies), 1),
        "latency_ms_p95": round(latencies[max(0, int(len(latencies) * 0.95) - 1)], 1),
        "latency_ms_max": round(latencies[-1], 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
