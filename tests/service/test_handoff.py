"""Deliveries inserted already leased by the worker that expands them, over real sockets, on SQLite
and PostgreSQL: real ``pushrelay`` processes against the APNs sandbox.

A trigger logs every row version of ``outbox_deliveries`` (insert or update: the state before and
after, the lease owner before and after), so that the tests see what each delivery went through,
not only where it ended.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pushrelay.db import Database
from pushrelay.sandbox import ApnsSandbox

from .conftest import Stack, register_and_send_all, wait_until

DEVICES = 3000

_SQLITE_LOG = [
    "CREATE TABLE delivery_log (id INTEGER, old_state TEXT, new_state TEXT, old_owner TEXT, new_owner TEXT)",
    "CREATE TRIGGER delivery_log_insert AFTER INSERT ON outbox_deliveries BEGIN "
    "INSERT INTO delivery_log VALUES (NEW.id, NULL, NEW.state, NULL, NEW.lease_owner); END",
    "CREATE TRIGGER delivery_log_update AFTER UPDATE ON outbox_deliveries BEGIN "
    "INSERT INTO delivery_log VALUES (NEW.id, OLD.state, NEW.state, OLD.lease_owner, NEW.lease_owner); END",
]
_PG_LOG = [
    "CREATE TABLE delivery_log (id bigint, old_state varchar, new_state varchar, old_owner varchar, "
    "new_owner varchar)",
    "CREATE FUNCTION delivery_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'INSERT' THEN INSERT INTO delivery_log VALUES (NEW.id, NULL, NEW.state, NULL, NEW.lease_owner); "
    "ELSE INSERT INTO delivery_log VALUES (NEW.id, OLD.state, NEW.state, OLD.lease_owner, NEW.lease_owner); "
    "END IF; RETURN NULL; END $$",
    "CREATE TRIGGER delivery_log AFTER INSERT OR UPDATE ON outbox_deliveries "
    "FOR EACH ROW EXECUTE FUNCTION delivery_log()",
]


def _log_deliveries(url: str) -> None:
    db = Database(url)  # migrated: the table exists
    try:
        with db.engine.begin() as conn:
            for sql in _PG_LOG if db.engine.dialect.name == "postgresql" else _SQLITE_LOG:
                conn.exec_driver_sql(sql)
    finally:
        db.dispose()


def _query(url: str, sql: str, **params: Any) -> list[Any]:
    db = Database(url, migrate=False)
    try:
        with db.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())
    finally:
        db.dispose()


def _wait_completed(stack: Stack, nid: str, timeout: float = 120) -> dict[str, int]:
    with stack.client(stack.admin) as c:
        wait_until(
            lambda: c.get(f"/v1/notifications/{nid}").json()["state"] == "completed", timeout, "the send"
        )
        return dict(c.get(f"/v1/notifications/{nid}").json()["counts"])


class _Workers:
    """``pushrelay worker`` processes of ``stack``, started one at a time."""

    def __init__(self, stack: Stack, tmp: Path, env: dict[str, str]) -> None:
        self.stack, self.tmp, self.env = stack, tmp, {**os.environ, **stack.service.env, **env}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []

    def start(self) -> subprocess.Popen[bytes]:
        path = self.tmp / f"worker{len(self.procs)}.log"
        self.logs.append(path.open("wb"))
        cmd = [sys.executable, "-m", "pushrelay", "worker", "--config", str(self.stack.config)]
        proc = subprocess.Popen(cmd, stdout=self.logs[-1], stderr=subprocess.STDOUT, env=self.env)
        self.procs.append(proc)
        wait_until(lambda: "worker.started" in path.read_text(), 60, "the worker to start")
        return proc

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for log in self.logs:
            log.close()


def test_one_worker_inserts_a_large_send_leased_and_writes_each_delivery_twice(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    stack = Stack(database_url, sandbox, tmp_path, None)
    _log_deliveries(database_url)
    # a long lease: the expansion waits up to a tenth of it for room in its own loops, and a busy
    # machine must not turn that wait into rows left pending
    stack.service.env["PUSHRELAY_WORKER_LEASE"] = "60"
    stack.service.start()
    try:
        tokens = [f"{i:064x}" for i in range(DEVICES)]
        nid = register_and_send_all(stack, tokens)
        assert _wait_completed(stack, nid) == {"total": DEVICES, "delivered": DEVICES}
    finally:
        stack.service.stop()
    per_id = Counter(r.apns_id for r in sandbox.all_received())
    assert len(per_id) == DEVICES and set(per_id.values()) == {1}
    log = _query(database_url, "SELECT id, old_state, new_state, old_owner, new_owner FROM delivery_log")
    inserts = [r for r in log if r.old_state is None]
    assert len(inserts) == DEVICES
    # never pending: inserted in flight, leased to the worker that expanded them...
    assert {(r.new_state, r.new_owner is not None) for r in inserts} == {("in_flight", True)}
    # ...so never claimed: the one update of each (heartbeats aside) is its outcome
    updates = [
        r for r in log if r.old_state is not None and (r.old_state, r.new_state) != ("in_flight", "in_flight")
    ]
    assert {(r.old_state, r.new_state) for r in updates} == {("in_flight", "done")}
    assert Counter(r.id for r in updates) == Counter({r.id: 1 for r in inserts})
    assert _query(database_url, "SELECT DISTINCT attempts FROM outbox_deliveries") == [(1,)]


# several worker processes share one database on PostgreSQL (the deployment that scales out);
# SQLite's one-worker hand-off and its crash recovery are covered by the other tests here
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_worker_started_mid_send_gets_a_share_of_what_was_left_pending(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    stack = Stack(database_url, sandbox, tmp_path, None)
    _log_deliveries(database_url)
    tokens = [f"{i:064x}" for i in range(DEVICES)]
    # each first attempt answered after 6 s: the first worker's loops stay busy with its first
    # chunk while its expansion waits for room (alone); the second worker, once alive, stops that
    # wait at once and the rest is inserted pending (or at the latest after the next 6 s)
    for t in tokens:
        sandbox.script(t, "delay", times=1, seconds=6)
    # room for 2 x 500 in flight; the expansion reads 1,000 devices at a time
    workers = _Workers(stack, tmp_path, {"PUSHRELAY_WORKER_CHUNK": "500", "PUSHRELAY_WORKER_CONCURRENCY": "2",
                                         "PUSHRELAY_WORKER_LEASE": "60"})  # fmt: skip
    stack.service.start("--api-only")
    try:
        workers.start()
        nid = register_and_send_all(stack, tokens)
        # the first worker has leased what its loops can take and waits for room (it is alone)
        wait_until(
            lambda: (
                _query(database_url, "SELECT count(*) FROM delivery_log WHERE old_state IS NULL")[0][0]
                >= 1000
            ),
            60,
            "the first worker to insert a chunk leased",
        )
        workers.start()
        assert _wait_completed(stack, nid) == {"total": DEVICES, "delivered": DEVICES}
    finally:
        workers.close()
        stack.service.stop()
    per_id = Counter(r.apns_id for r in sandbox.all_received())
    assert len(per_id) == DEVICES and set(per_id.values()) == {1}  # each once, none twice
    assert len(Counter(r.connection_id for r in sandbox.all_received())) >= 2  # both workers sent
    log = _query(database_url, "SELECT id, old_state, new_state, old_owner, new_owner FROM delivery_log")
    leased = {r.new_owner for r in log if r.old_state is None and r.new_state == "in_flight"}
    claimers = {r.new_owner for r in log if (r.old_state, r.new_state) == ("pending", "in_flight")}
    assert len(leased) == 1, leased  # the first worker inserted its share leased
    assert claimers - leased, "the second worker claimed none of the pending remainder"
    assert _query(database_url, "SELECT DISTINCT attempts FROM outbox_deliveries") == [(1,)]


def test_rows_inserted_leased_by_a_killed_worker_are_recovered(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    stack = Stack(database_url, sandbox, tmp_path, None)
    _log_deliveries(database_url)
    tokens = [f"{i:064x}" for i in range(DEVICES)]
    for t in tokens:  # answered after 2 s the first time: the kill lands with rows in flight
        sandbox.script(t, "delay", times=1, seconds=2)
    workers = _Workers(stack, tmp_path, {"PUSHRELAY_WORKER_LEASE": "3"})
    stack.service.start("--api-only")
    try:
        first = workers.start()
        nid = register_and_send_all(stack, tokens)
        wait_until(
            lambda: (
                _query(
                    database_url,
                    "SELECT count(*) FROM delivery_log WHERE old_state IS NULL AND new_state = 'in_flight'",
                )[0][0]
                >= 1000
            ),
            60,
            "rows inserted leased",
        )
        first.kill()
        first.wait(10)
        victim = _query(database_url, "SELECT new_owner FROM delivery_log WHERE old_state IS NULL LIMIT 1")[
            0
        ][0]
        held = {
            r.id
            for r in _query(database_url, "SELECT id FROM outbox_deliveries WHERE lease_owner = :o", o=victim)
        }
        assert held, "the killed worker held nothing: the test proves nothing"
        workers.start()
        assert _wait_completed(stack, nid) == {"total": DEVICES, "delivered": DEVICES}
    finally:
        workers.close()
        stack.service.stop()
    rows = {
        r.id: r
        for r in _query(database_url, "SELECT id, token, apns_id, attempts, outcome FROM outbox_deliveries")
    }
    assert {r.outcome for r in rows.values()} == {"delivered"}
    log = _query(database_url, "SELECT id, old_state, new_state, old_owner, new_owner FROM delivery_log")
    # each delivery ended final exactly once
    assert Counter(r.id for r in log if r.new_state == "done") == Counter(set(rows))
    # what the killed worker held was taken over once its lease ran out, as a claimed row is:
    # claimed again by the other worker (the attempt counted again), and recorded by it
    taken_over = {r.id for r in log if r.old_owner == victim and r.new_owner not in (None, victim)}
    assert taken_over == held
    assert {rows[i].attempts for i in held} == {2}
    # nothing lost; resent only what was in flight at the kill, with the apns-id it was created with
    received = sandbox.all_received()
    by_token: dict[str, set[str]] = {}
    for rec in received:
        by_token.setdefault(rec.token, set()).add(rec.apns_id)
    assert set(by_token) == set(tokens)
    assert all(by_token[r.token] == {r.apns_id} for r in rows.values())
    assert len(received) - DEVICES <= len(held)
