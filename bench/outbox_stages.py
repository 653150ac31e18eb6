"""CPU per delivery of each database stage of a send to every device, in one process, no HTTP.

    python bench/outbox_stages.py --devices 20000 --db sqlite|postgresql [--database-url URL] [--json]

Registers N devices, then drives the outbox and the worker's audience the way a worker does:
``stream`` (the expansion reads the registry), ``insert`` (it writes the delivery rows, 1,000 a
transaction), ``claim`` (500 at a time), ``record`` (200 ``delivered`` answers at a time, the last
batch completes the notification), and ``status`` (one status read with its counts, in µs a read).
Then the same send again the way a lone worker's expansion does it now, handing its rows to its
own loops (``Handoff``): ``insert_leased`` (inserted in flight, no claim) and ``record_leased``.
``--leased-first``: that path first, on the empty table (the second send finds the first's rows).

Each figure is the CPU time of this (single) thread per delivery, in µs: SQLite's own work is in it,
PostgreSQL's is reported apart (``*_pg``: the CPU of the database's server processes for this
database, read from ``/proc``, so only for a PostgreSQL on this machine). CPU time, unlike rates,
changes little when the machine is shared; still compare figures of runs made one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pushrelay.config import config_from_dict
from pushrelay.db import Database
from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue import Handoff, NotificationRequest, Recipients, SqlOutbox
from pushrelay.registry import DeviceRegistry
from pushrelay.registry.devices import DeviceInfo
from pushrelay.worker.registry_audience import RegistryAudience

PG_ADMIN = os.environ.get("PUSHRELAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
HZ = os.sysconf("SC_CLK_TCK")


def _pg_cpu(admin: str, name: str | None) -> float:
    """Seconds of CPU used so far by the server processes connected to database ``name``."""
    if name is None:
        return 0.0
    import psycopg

    with psycopg.connect(admin) as conn:
        pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / HZ
        except OSError:  # not on this machine, or gone
            pass
    return total


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    n = args.devices
    created: str | None = None
    if args.db == "sqlite":
        url = args.database_url or f"sqlite:///{tmp / 'stages.db'}"
    elif args.database_url:
        url = args.database_url
    else:
        import psycopg

        created = f"pushrelay_stages_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{created}"')
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{created}"
    pg_name = url.rsplit("/", 1)[1].split("?")[0] if args.db == "postgresql" else None
    db = Database(url)
    try:
        config = config_from_dict(
            {
                "database": {"url": url},
                "apps": {"bench": {"bundle_id": "com.sample.bench", "apns": {"team_id": "TEAM123456",
                         "key_file": str(tmp / "AuthKey_ABC123DEFG.p8")}}},
            }
        )  # fmt: skip
        registry = DeviceRegistry(db)
        registry.register_many(
            [DeviceInfo(app="bench", token=f"{i + 1:064x}", email=f"u{i}@x.com") for i in range(n)]
        )
        outbox = SqlOutbox(db.engine)
        audience = RegistryAudience(registry, config.app)
        out: dict[str, Any] = {"devices": n, "db": args.db}

        def stage(name: str, work: Callable[[], Any], per: int = n) -> Any:
            pg0, t0 = _pg_cpu(PG_ADMIN, pg_name), time.thread_time()
            result = work()
            out[name] = round(1e6 * (time.thread_time() - t0) / per, 1)
            if pg_name is not None:
                out[f"{name}_pg"] = round(1e6 * (_pg_cpu(PG_ADMIN, pg_name) - pg0) / per, 1)
            return result

        request = NotificationRequest(
            app="bench", notification={"title": "t"}, recipients=Recipients(all=True)
        )

        def expanding() -> str:
            nid = outbox.enqueue(request).id
            [job] = outbox.claim_expansions("bench", limit=10, lease=30)
            if "stream" not in out:
                out["_chunks"] = stage("stream", lambda: list(audience.expand(job, chunk=1000).chunks))
            return nid

        def delivered(claimed: list[Any]) -> list[Any]:
            return [(c, DeliveryResult(c.token, Outcome.DELIVERED, 200)) for c in claimed]

        def record(nid: str, answers: list[Any]) -> list[str]:
            return [
                done
                for i in range(0, len(answers), 200)
                for done in outbox.record("bench", answers[i : i + 200]).completed
            ]

        def claimed_path() -> bool:
            """insert pending, claim, record: what a delivery cost before the hand-off, and what
            it costs still when the expansion's worker has no room for it (another worker claims)."""
            nid = expanding()

            def insert() -> None:
                for devices, cursor in out["_chunks"]:
                    outbox.add_deliveries(nid, devices, cursor=cursor, worker_id="bench", lease=30)
                outbox.finish_expansion(nid, warnings=[], errors=[])

            stage("insert", insert)

            def claim() -> list[Any]:
                got = []
                while chunk := outbox.claim("bench", limit=500, lease=30):
                    got += chunk
                return got

            answers = delivered(stage("claim", claim))
            completed = stage("record", lambda: record(nid, answers))
            statuses = stage("status", lambda: [outbox.status(nid) for _ in range(20)], per=20)
            return completed == [nid] and statuses[0].counts == {"total": n, "delivered": n}

        def leased_path() -> bool:
            """The expansion inserts the deliveries leased to its own worker (``Handoff``, room for
            all of them here): no claim, one row version less."""
            nid = expanding()

            def insert_leased() -> list[Any]:
                got = []
                for devices, cursor in out["_chunks"]:
                    handoff = Handoff(room=len(devices), lease=30)
                    outbox.add_deliveries(
                        nid, devices, cursor=cursor, worker_id="bench", lease=30, handoff=handoff
                    )
                    got += handoff.taken
                outbox.finish_expansion(nid, warnings=[], errors=[])
                return got

            answers = delivered(stage("insert_leased", insert_leased))
            completed = stage("record_leased", lambda: record(nid, answers))
            return completed == [nid] and len(answers) == n

        paths = [leased_path, claimed_path] if args.leased_first else [claimed_path, leased_path]
        out["ok"] = all([path() for path in paths])
        del out["_chunks"]
        return out
    finally:
        db.dispose()
        if created:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--devices", type=int, default=20_000)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--database-url", default=None, help="an empty database (default: a throw-away one)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--leased-first", action="store_true", help="the leased path on the empty table")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="pushrelay-stages-") as d:
        out = run(args, Path(d))
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>10}: {v}")
    if not out["ok"]:
        raise SystemExit("the send did not complete with every delivery recorded")


if __name__ == "__main__":
    main()
