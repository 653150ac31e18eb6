"""End to end against the null HTTP/2 APNs of ../shared/bench, everything measured in one run.

    python bench/end_to_end.py --devices 20000 --db sqlite|postgresql [--database-url URL] \
        [--workers K] [--api-seconds 5] [--api-rps 500] [--json]

1. starts the null APNs (nginx, ``../shared/bench/nginx-sink.conf.in``) on a free loopback port;
2. ``raw_per_s``: ``ApnsClient.send_many`` from this process straight to it (successes only);
3. starts ``pushrelay serve`` configured against it (the API and its worker child process;
   ``--workers K`` > 0: ``serve --api-only`` plus K ``pushrelay worker`` processes; the variable
   ``PUSHRELAY_WORKER_PROCESSES=0``: the worker in the API's process) on a fresh database (PostgreSQL: a throw-away database on
   127.0.0.1:5432 unless ``--database-url`` is given);
4. ``register_per_s``: N devices through ``POST /v1/devices:batch``, 1,000 per request;
5. ``e2e_per_s``: one notification to every device (``recipients.all``), from the request to the
   last outcome recorded; ``ratio`` = e2e / raw;
6. ``api_*``: ``POST /v1/notifications`` offered at a fixed rate (open loop: latency is measured
   from when each request was due, so a slow server cannot hide its queue), each to one device,
   while the workers deliver them;
   ``api_baseline_healthz_*``: ``GET /healthz`` at the same rate first, the ceiling of this client
   and the service's HTTP stack on this machine (a Python client shares the cores);
   ``api_cpu_ms_per_request``: CPU of the API process per request (while the load runs);
   ``api_delivery_cpu_ms_per_request``: CPU of the delivering processes per request, until the
   load's last notification is delivered (0 when the worker runs in the API's process);
7. ``peak_rss_mb``: the largest peak RSS (VmHWM) among the service's processes.

During step 5 it also measures what the deliveries cost: ``cpu_ms_per_delivery`` (user + system
CPU of the service's processes and their children, from ``/proc/<pid>/stat``),
``pg_cpu_ms_per_delivery`` (the bench database's PostgreSQL backends, read the same way),
``worker_cpu_s`` (each ``pushrelay worker``) and ``claims_by_worker`` (the share of in-flight
deliveries each worker held, sampled). On PostgreSQL, ``contention`` summarises
``pg_stat_activity`` and ``pg_locks`` sampled every 100 ms: what the active backends were waiting
for, and which lock requests were not granted (a hot row shared by the workers would show up as
``Lock`` waits on ``tuple`` / ``transactionid``).

Prints one JSON object (``--json``) or a summary. Exits non-zero if any delivery did not succeed.
The machine is usually shared: compare figures within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushrelay.apns import ApnsClient, TokenAuth
from pushrelay.db import Database
from pushrelay.notification import Notification
from pushrelay.server.apikeys import ApiKeyStore

HERE = Path(__file__).resolve().parent


def _sink_conf() -> Path:
    """The kit's nginx template: $PUSHRELAY_BENCH_KIT, else ``shared/bench`` next to the checkout
    or next to one of its parents (a worktree lives one level deeper than the main checkout)."""
    if kit := os.environ.get("PUSHRELAY_BENCH_KIT"):
        return Path(kit) / "nginx-sink.conf.in"
    for parent in HERE.parents:
        if (candidate := parent / "shared" / "bench" / "nginx-sink.conf.in").exists():
            return candidate
    return HERE.parent.parent / "shared" / "bench" / "nginx-sink.conf.in"


SINK_CONF = _sink_conf()
PG_ADMIN = os.environ.get("PUSHRELAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
TEAM, BUNDLE = "TEAM123456", "com.sample.bench"
NOTE = {"title": "This is title", "body": "Here is the content of this notification"}


class SinkUnavailable(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tok(i: int) -> str:
    return f"{i + 1:064x}"


def start_sink(tmp: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """nginx in the foreground (so that it is our child and we stop it by its pid)."""
    nginx = next((p for p in ("/usr/sbin/nginx", "/usr/bin/nginx") if Path(p).exists()), None)
    if nginx is None or not SINK_CONF.exists():
        raise SinkUnavailable(f"the null APNs needs nginx and {SINK_CONF} (bash ../shared/bench/setup.sh)")
    d = tmp / "sink"
    (d / "tmp").mkdir(parents=True)
    key = ec.generate_private_key(ec.SECP256R1())
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert = subprocess.run(
        ["openssl", "req", "-x509", "-key", str(d / "key.pem"), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-out", str(d / "cert.pem")],
        capture_output=True, check=False,
    )  # fmt: skip
    if cert.returncode:
        raise SinkUnavailable(f"openssl could not make the sink's certificate: {cert.stderr.decode()[-300:]}")
    port = free_port()
    conf = SINK_CONF.read_text().replace("@DIR@", str(d)).replace("@PORT@", str(port))
    (d / "nginx.conf").write_text(conf)
    with (d / "stderr.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [nginx, "-c", str(d / "nginx.conf"), "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=log
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SinkUnavailable(f"nginx exited: {(d / 'stderr.log').read_text()[-500:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"https://127.0.0.1:{port}", d / "cert.pem"
        time.sleep(0.05)
    proc.kill()
    raise SinkUnavailable("nginx did not start listening")


async def raw_rate(url: str, ca: Path, n: int) -> float:
    auth = TokenAuth(ec.generate_private_key(ec.SECP256R1()), key_id="RAWBENCH01", team_id=TEAM)
    note = Notification.from_dict(NOTE)
    async with ApnsClient(auth, topic=BUNDLE, endpoint=url, ca_file=ca) as client:
        warm = await client.send(note, tok(0))
        if not warm.ok:
            raise SystemExit(f"raw transport warm-up failed: {warm.outcome} {warm.reason}")
        ok = 0
        t0 = time.perf_counter()
        async for result in client.send_many((note, tok(i), None) for i in range(n)):
            ok += result.ok
        seconds = time.perf_counter() - t0
    if ok != n:
        raise SystemExit(f"raw transport: {n - ok} of {n} sends failed")
    return ok / seconds


def spawn(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def with_children(roots: list[int]) -> set[int]:
    """``roots`` and their descendants (``serve`` may run its workers in child processes)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = set(roots), list(roots)
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                todo.append(child)
    return found


def pg_backends(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r[0]) for r in rows]


def _statement(query: str) -> str:
    """What a statement is, by its first words: a claim, a recording, an insert..."""
    q = query.strip()
    if q.startswith("UPDATE outbox_deliveries SET state") and "SKIP LOCKED" in q:
        return "claim deliveries (UPDATE ... SKIP LOCKED)"
    if q.startswith("UPDATE outbox_notifications SET state") and "SKIP LOCKED" in q:
        return "claim expansions (UPDATE ... SKIP LOCKED)"
    return " ".join(q.split()[:4])[:60]


def attempts_in(log: Path) -> int | None:
    """The attempts a stopped ``pushrelay worker`` recorded, from its ``worker.stopped`` line."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if "worker.stopped" in line:
            for field in line.split():
                if field.startswith("attempts="):
                    return int(field.split("=", 1)[1])
    return None


class Sampler(threading.Thread):
    """Samples, every ``every`` seconds until stopped, what the bench database's backends wait for,
    the lock requests not granted, and who holds the in-flight deliveries."""

    def __init__(self, url: str, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.url = url.replace("postgresql+psycopg://", "postgresql://")
        self.every = every
        self.halt = threading.Event()
        self.samples = 0
        self.active = 0
        self.waits: Counter[str] = Counter()
        self.locks: Counter[str] = Counter()
        self.held: Counter[str] = Counter()
        self.lock_queries: Counter[str] = Counter()
        self.phase_samples: Counter[str] = Counter()
        self.backend_cpu: dict[int, float] = {}
        self.phase_locks: Counter[str] = Counter()
        self.error: str | None = None

    def run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                n = 0
                while not self.halt.wait(self.every):
                    n += 1
                    self.samples += 1
                    # the send's phase: still writing deliveries, or only sending the last ones
                    (expanding,) = conn.execute(
                        "SELECT EXISTS (SELECT 1 FROM outbox_notifications WHERE state = 'expanding')"
                    ).fetchone() or (False,)
                    phase = "expanding" if expanding else "draining"
                    self.phase_samples[phase] += 1
                    for (pid,) in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid()"
                    ):
                        # pooled connections come and go (overflow): keep each backend's last
                        # CPU reading, so that one closed before the end still counts
                        self.backend_cpu[int(pid)] = cpu_s(int(pid)) or self.backend_cpu.get(int(pid), 0.0)
                    for state, wtype, wevent, app, query in conn.execute(
                        "SELECT state, wait_event_type, wait_event, application_name, "
                        "regexp_replace(left(query, 200), '\\s+', ' ', 'g') FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND backend_type = 'client backend'"
                    ):
                        if state == "active" and app != "pushrelay-listen":
                            self.active += 1
                            self.waits[f"{wtype}:{wevent}" if wtype else "running"] += 1
                            if wtype == "Lock":
                                self.lock_queries[_statement(query)] += 1
                                self.phase_locks[phase] += 1
                    for locktype, mode, rel in conn.execute(
                        "SELECT l.locktype, l.mode, c.relname FROM pg_locks l "
                        "LEFT JOIN pg_class c ON c.oid = l.relation WHERE NOT l.granted AND l.pid IN "
                        "(SELECT pid FROM pg_stat_activity WHERE datname = current_database())"
                    ):
                        self.locks[f"{locktype}:{mode}:{rel or '-'}"] += 1
                    if n % 5 == 0:  # every 0.5 s: who holds the deliveries in flight
                        for owner, count in conn.execute(
                            "SELECT lease_owner, count(*) FROM outbox_deliveries "
                            "WHERE state = 'in_flight' GROUP BY lease_owner"
                        ):
                            self.held[str(owner).rsplit("-", 1)[0]] += int(count)
        except Exception as exc:  # a sampler problem must not fail the run: say it in the output
            self.error = repr(exc)[:300]

    def summary(self) -> dict[str, Any]:
        active = max(1, self.active)
        total_held = max(1, sum(self.held.values()))
        return {
            "samples": self.samples,
            "active_backends_avg": round(self.active / max(1, self.samples), 2),
            "wait_events_share": {k: round(v / active, 3) for k, v in self.waits.most_common(12)},
            "lock_wait_share": round(
                sum(v for k, v in self.waits.items() if k.startswith("Lock:")) / active, 4
            ),
            "locks_not_granted": dict(self.locks.most_common(10)),
            "lock_waits_by_statement": dict(self.lock_queries.most_common(8)),
            # samples taken while the send was still being expanded / after, and the lock waits seen
            "samples_by_phase": dict(self.phase_samples),
            "lock_waits_by_phase": dict(self.phase_locks),
            "claims_by_worker": {k: round(v / total_held, 3) for k, v in self.held.most_common()},
            **({"error": self.error} if self.error else {}),
        }


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(pred: Any, what: str, timeout: float, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


async def register(base: str, key: str, n: int) -> float:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300) as c:

        async def one(start: int) -> None:
            devices = [
                {"app": "bench", "token": tok(i), "email": f"u{i}@x.com"}
                for i in range(start, min(n, start + 1000))
            ]
            r = await c.post("/v1/devices:batch", json={"devices": devices})
            r.raise_for_status()
            if r.json()["counts"]["failed"]:
                raise SystemExit(f"registration refused devices: {r.text[:500]}")

        t0 = time.perf_counter()
        starts = list(range(0, n, 1000))
        for i in range(0, len(starts), 2):  # two requests at a time
            await asyncio.gather(*(one(s) for s in starts[i : i + 2]))
        return n / (time.perf_counter() - t0)


class _Http1:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams, for the API load only.

    httpx's pool costs milliseconds of this process's CPU per request once hundreds of requests
    are queued: on a shared 2-core machine it measured 120-170 ``GET /healthz`` per second against
    a server that h2load drove at 2,000/s. This client spends a few tens of microseconds per
    request, so the figures describe the service, not the client. It speaks only what the API
    load needs: one request at a time per connection, a ``Content-Length`` response body."""

    def __init__(self, host: str, port: int, headers: dict[str, str], max_connections: int) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(max_connections)
        self.writers: list[asyncio.StreamWriter] = []

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        async with self.slots:
            # uvicorn closes a connection idle for 5 s: one idle longer than 3 s is not reused, or
            # the request would race the server's close
            while self.idle and (self.idle[-1][0].at_eof() or time.monotonic() - self.idle[-1][2] > 3):
                self.idle.pop()[1].close()
            if self.idle:
                reader, writer, _ = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                self.writers.append(writer)
            extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
            writer.write(
                f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}{extra}\r\n".encode() + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            data = await reader.readexactly(length)
            self.idle.append((reader, writer, time.monotonic()))
            return status, data

    async def close(self) -> None:
        for w in self.writers:
            w.close()


async def api_load(
    base: str, key: str, n_devices: int, rps: float, seconds: float, *, baseline: bool = False
) -> dict[str, Any]:
    """``baseline``: ``GET /healthz`` instead, at the same rate: what this client and the service's
    HTTP stack achieve doing no work (on a shared 2-core machine, possibly less than 500/s)."""
    total = int(rps * seconds)
    lat: list[float] = []
    failures: list[str] = []
    ids: list[str] = []
    host, _, port = base.removeprefix("http://").partition(":")
    client = _Http1(host, int(port), {"Authorization": f"Bearer {key}"}, max_connections=256)

    async def one(i: int, due: float) -> None:
        body = json.dumps({"app": "bench", "notification": {"title": f"n{i}"},
                           "recipients": {"device_tokens": [tok(i % n_devices)]}}).encode()  # fmt: skip
        try:
            status, data = await (
                client.request("GET", "/healthz")
                if baseline
                else client.request("POST", "/v1/notifications", body)
            )
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            failures.append(type(exc).__name__)
            return
        if baseline:
            lat.append(time.perf_counter() - due)
            return
        if status != 202:
            failures.append(f"{status} {data[:200]!r}")
            return
        ids.append(json.loads(data)["id"])
        lat.append(time.perf_counter() - due)

    t0 = time.perf_counter()
    tasks = []
    for i in range(total):
        due = t0 + i / rps
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    await client.close()
    if failures:
        raise SystemExit(f"{len(failures)} of {total} API requests failed, e.g. {failures[0]}")
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [lat[0] if lat else 0.0] * 99
    return {
        "api_offered_rps": rps,
        "api_achieved_rps": round(len(lat) / wall, 1),
        "api_p50_ms": round(q[49] * 1000, 1),
        "api_p99_ms": round(q[98] * 1000, 1),
        "api_requests": total,
        "ids": ids,
    }


def pg_database(url: str | None) -> tuple[str, str | None]:
    """(URL, name of a database we created and must drop)."""
    if url:
        return url, None
    import psycopg

    name = f"pushrelay_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", name


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": args.devices, "db": args.db, "workers": args.workers}
    sink, sink_url, ca = start_sink(tmp)
    procs: list[subprocess.Popen[bytes]] = []
    created_db: str | None = None
    try:
        out["raw_per_s"] = round(asyncio.run(raw_rate(sink_url, ca, args.raw or args.devices)), 1)
        if args.db == "sqlite":
            url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
        else:
            url, created_db = pg_database(args.database_url)
        p8 = tmp / "AuthKey_BENCH12345.p8"
        p8.write_bytes(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        cfg = tmp / "pushrelay.toml"
        cfg.write_text(
            f'[database]\nurl = "{url}"\n[apps.bench]\nbundle_id = "{BUNDLE}"\n'
            f'[apps.bench.apns]\nteam_id = "{TEAM}"\nkey_id = "BENCH12345"\nkey_file = "{p8}"\n'
            f'endpoint = "{sink_url}"\nca_file = "{ca}"\n'
        )
        db = Database(url)
        try:
            key = ApiKeyStore(db.engine).create(["admin"])[1]
        finally:
            db.dispose()
        env = {**os.environ, "PUSHRELAY_LOG_LEVEL": "warning",
               "PUSHRELAY_RATE_LIMIT": "1000000", "PUSHRELAY_RATE_BURST": "1000000"}  # fmt: skip
        port = free_port()
        py = sys.executable
        serve = [
            py,
            "-m",
            "pushrelay",
            "serve",
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        procs.append(spawn([*serve, *(["--api-only"] if args.workers else [])], tmp / "serve.log", env))
        for k in range(args.workers):
            # info: its last line, worker.stopped, says how many attempts it recorded
            worker = [py, "-m", "pushrelay", "worker", "--config", str(cfg), "--log-level", "info"]
            procs.append(spawn(worker, tmp / f"worker{k}.log", env))
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if procs[0].poll() is not None:
                raise SystemExit(f"the service exited: {(tmp / 'serve.log').read_text()[-1500:]}")
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200

        wait_for(up, "the service", 60)
        out["register_per_s"] = round(asyncio.run(register(base, key, args.devices)), 1)

        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
            service = with_children([p.pid for p in procs])
            cpu0 = {pid: cpu_s(pid) for pid in service}
            backends0 = {pid: cpu_s(pid) for pid in pg_backends(url)} if args.db == "postgresql" else {}
            sampler = Sampler(url) if args.db == "postgresql" else None
            if sampler is not None:
                sampler.start()
            t0 = time.perf_counter()
            r = c.post(
                "/v1/notifications", json={"app": "bench", "notification": NOTE, "recipients": {"all": True}}
            )
            r.raise_for_status()
            nid = r.json()["id"]
            # A status read counts the notification's deliveries (a scan of up to N rows): polled
            # every 0.25 s, a million-device send spent more database CPU answering this loop than
            # delivering. The interval grows with the time spent (0.5 % of it), so the figure
            # stays within 0.5 % while the reads stay a small load.
            while c.get(f"/v1/notifications/{nid}").json()["state"] != "completed":
                if time.perf_counter() - t0 > 3600:
                    raise SystemExit("timed out waiting for completion")
                time.sleep(max(0.25, (time.perf_counter() - t0) * 0.005))
            wall = time.perf_counter() - t0
            service = with_children([p.pid for p in procs])
            cpu1 = {pid: cpu_s(pid) for pid in service}
            used = sum(cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1)
            out["cpu_ms_per_delivery"] = round(used * 1000 / args.devices, 3)
            out["service_cpu_s"] = round(used, 2)
            out["service_cpu_cores"] = round(used / wall, 2)  # of this machine's os.cpu_count()
            if args.workers:
                out["worker_cpu_s"] = [round(cpu_s(p.pid) - cpu0.get(p.pid, 0.0), 2) for p in procs[1:]]
            if sampler is not None:
                sampler.halt.set()
                sampler.join(5)
                last = {**sampler.backend_cpu, **{pid: cpu_s(pid) for pid in pg_backends(url)}}
                pg_used = sum(cpu - backends0.get(pid, 0.0) for pid, cpu in last.items())
                out["pg_cpu_ms_per_delivery"] = round(pg_used * 1000 / args.devices, 3)
                out["pg_cpu_s"] = round(pg_used, 2)
                out["contention"] = sampler.summary()
            counts = {k: v for k, v in c.get(f"/v1/notifications/{nid}").json()["counts"].items() if v}
            out["e2e_seconds"] = round(wall, 2)
            out["e2e_per_s"] = round(args.devices / wall, 1)
            out["ratio"] = round(out["e2e_per_s"] / out["raw_per_s"], 3)
            out["e2e_counts"] = counts

            idle = asyncio.run(
                api_load(base, key, args.devices, args.api_rps, args.api_seconds, baseline=True)
            )
            out["api_baseline_healthz_rps"] = idle["api_achieved_rps"]
            out["api_baseline_healthz_p99_ms"] = idle["api_p99_ms"]
            # CPU of the API process alone, and of the processes that deliver (its children, or
            # the `pushrelay worker`s), from the first request until the load's last delivery: a
            # cost per request that other tenants of a shared machine do not distort as they do
            # latency
            api_pid = procs[0].pid
            delivering = with_children([p.pid for p in procs]) - {api_pid}
            api0, del0 = cpu_s(api_pid), {pid: cpu_s(pid) for pid in delivering}
            load = asyncio.run(api_load(base, key, args.devices, args.api_rps, args.api_seconds))
            ids = load.pop("ids")
            out.update(load)
            api1 = cpu_s(api_pid)

            def all_done() -> bool:
                return all(c.get(f"/v1/notifications/{i}").json()["state"] == "completed" for i in ids[-20:])

            wait_for(all_done, "the API load's notifications", 600, 0.5)
            del1 = sum(
                cpu_s(pid) - del0.get(pid, 0.0) for pid in with_children([p.pid for p in procs]) - {api_pid}
            )
            out["api_cpu_ms_per_request"] = round((api1 - api0) * 1000 / len(ids), 3)
            out["api_delivery_cpu_ms_per_request"] = round(del1 * 1000 / len(ids), 3)
            bad = 0
            for i in ids:
                got = c.get(f"/v1/notifications/{i}").json()
                if got["state"] != "completed":
                    wait_for(
                        lambda i=i: c.get(f"/v1/notifications/{i}").json()["state"] == "completed",
                        i,
                        600,
                        0.2,
                    )
                    got = c.get(f"/v1/notifications/{i}").json()
                bad += sum(v for k, v in got["counts"].items() if k not in ("delivered", "total"))
            out["api_undelivered"] = bad
        out["peak_rss_mb"] = round(max(vm_hwm_mb(pid) for pid in with_children([p.pid for p in procs])), 1)
        if args.workers:
            for p in procs[1:]:
                stop(p)
            out["attempts_by_worker"] = [attempts_in(tmp / f"worker{k}.log") for k in range(args.workers)]
        out["ok"] = (
            counts.get("delivered") == args.devices
            and bad == 0
            and not [k for k in counts if k not in ("delivered", "total")]
        )
        return out
    finally:
        for p in reversed(procs):
            stop(p)
        stop(sink)
        if created_db:
            drop_pg(created_db)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=20_000)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--database-url", default=None, help="an empty database (default: a throw-away one)")
    p.add_argument("--workers", type=int, default=0, help="pushrelay worker processes (0: in serve)")
    p.add_argument("--raw", type=int, default=0, help="sends for the raw rate (default: --devices)")
    p.add_argument("--api-rps", type=float, default=500.0)
    p.add_argument("--api-seconds", type=float, default=5.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="pushrelay-e2e-") as d:
        try:
            out = run(args, Path(d))
        except SinkUnavailable as exc:
            print(f"null APNs sink unavailable: {exc}", file=sys.stderr)
            sys.exit(3)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>18}: {v}")
    if not out["ok"]:
        sys.exit(
            f"not every delivery succeeded: {out['e2e_counts']}, API load undelivered {out['api_undelivered']}"
        )


if __name__ == "__main__":
    main()
