"""A real pushrelay service process (``python -m pushrelay serve``) against the APNs sandbox, or the
same service in this process (:func:`running_service`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from pushrelay.cli import cli
from pushrelay.config import Config, config_from_dict
from pushrelay.db import Database
from pushrelay.queue import RetryPolicy, SqlOutbox
from pushrelay.queue.sql_base import outcome_counts
from pushrelay.sandbox import ApnsSandbox
from pushrelay.server.apikeys import ApiKeyStore
from pushrelay.server.runtime import run_service
from pushrelay.server.service import Service, ServiceSettings
from pushrelay.server.wiring import build_service

TEAM = "TEAM123456"
BUNDLE = "com.sample.myappname"

FAST_ENV = {
    "PUSHRELAY_RETRY_BASE": "0.2",
    "PUSHRELAY_RETRY_CAP": "1",
    "PUSHRELAY_WORKER_POLL": "0.05",
    "PUSHRELAY_SWEEP_EVERY": "0.5",
    "PUSHRELAY_WORKER_LEASE": "10",
    "PUSHRELAY_WEBHOOK_RETRY_BASE": "0.2",
    "PUSHRELAY_WEBHOOK_RETRY_CAP": "1",
}


def wait_until(pred: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``pred`` until it is true; ``timeout`` is generous, the tests assert no timing."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    def __init__(self, config: Path, tmp: Path, env: dict[str, str]) -> None:
        self.config = config
        self.tmp = tmp
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "service.log"
        self._log_fh: Any = None

    def start(self, *args: str, port_from_config: bool = False) -> ServiceProcess:
        """``port_from_config``: no ``--port``, the configuration must give ``self.port``."""
        self._log_fh = open(self.log, "ab")  # noqa: SIM115 - closed in stop/kill
        port = [] if port_from_config else ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pushrelay", "serve", "--config", str(self.config), *port, *args],
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + 60  # a loaded 2-core machine can take >20 s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"service did not start: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close()

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close()
        return int(self.proc.returncode)

    def _close(self) -> None:
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None


def sandbox_config(url: str, sandbox: ApnsSandbox, tmp: Path) -> Config:
    """``myapp`` on the APNs sandbox over TLS (a provider key of its own, written in ``tmp``)."""
    key = sandbox.create_key(TEAM, "ABC123DEFG", tmp)
    apns = {"team_id": TEAM, "key_file": str(key), "endpoint": sandbox.url, "ca_file": str(sandbox.ca_file)}
    return config_from_dict(
        {"database": {"url": url}, "apps": {"myapp": {"bundle_id": BUNDLE, "apns": apns}}}
    )


@asynccontextmanager
async def running_service(config: Config, settings: ServiceSettings) -> AsyncIterator[Service]:
    """The service of ``config`` in this process (workers and sweeper, no API) while the block runs;
    stopped as ``pushrelay serve`` stops, then closed."""
    service = build_service(config, settings=settings)
    service.use_config(config)
    stop = asyncio.Event()
    running = asyncio.create_task(run_service(service, api=False, stop=stop))
    try:
        yield service
    finally:
        stop.set()
        await running
        service.close()


class WebhookReceiver:
    """A local HTTP endpoint that records webhook posts and fails the first ``fail_first`` of them."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.posts: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = 500 if len(receiver.posts) < receiver.fail_first else 200
                receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [e for h, b, s in self.posts if s == 200 for e in json.loads(b)["events"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# The made-up iOS tokens the service tests register: f"{i:064x}" and pairs of hex digits.
_PAIRS = ("a1", "a2", "aa", "ab", "b1", "b2", "c1", "c2", "c3", "cd", "d1", "d4", "dd", "de", "e5", "ef")


def issue_devices(sandbox: ApnsSandbox, count: int = 5001) -> None:
    """The strict sandbox knows only the tokens it issued: issue the tests' tokens for the app."""
    for i in range(count):
        sandbox.issue_token(BUNDLE, token=f"{i:064x}")
    for pair in _PAIRS:
        sandbox.issue_token(BUNDLE, token=pair * 32)


@pytest.fixture
def sandbox() -> Iterator[ApnsSandbox]:
    with ApnsSandbox.running() as sb:
        sb.add_topic(BUNDLE, TEAM)
        issue_devices(sb)
        yield sb


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(fail_first=2)
    try:
        yield r
    finally:
        r.close()


class Stack:
    def __init__(self, url: str, sandbox: ApnsSandbox, tmp: Path, webhook: WebhookReceiver | None) -> None:
        self.db_url = url
        self.sandbox = sandbox
        self.tmp = tmp
        self.webhook = webhook
        self.config = tmp / "pushrelay.toml"
        self.write_config(sandbox.create_key(TEAM, "ABC123DEFG", tmp))
        db = Database(url)
        try:
            store = ApiKeyStore(db.engine)
            self.admin = store.create(["admin"])[1]
            self.sender = store.create(["send"], ["myapp"])[1]
            self.registrar = store.create(["register"], ["myapp"])[1]
        finally:
            db.dispose()
        self.service = ServiceProcess(self.config, tmp, dict(FAST_ENV))

    def write_config(self, key_file: Path, extra: str = "") -> None:
        """(Re)write pushrelay.toml: myapp on the sandbox with ``key_file``, and an app without
        credentials; ``extra`` is appended (a [service] table...)."""
        hook = f'webhook_url = "{self.webhook.url}"\nwebhook_secret = "s3cret"\n' if self.webhook else ""
        sb = self.sandbox
        self.config.write_text(
            f'[database]\nurl = "{self.db_url}"\n\n'
            f'[apps.myapp]\nbundle_id = "{BUNDLE}"\n{hook}'
            f'[apps.myapp.apns]\nteam_id = "{TEAM}"\nkey_file = "{key_file}"\nendpoint = "{sb.url}"\n'
            f'ca_file = "{sb.ca_file}"\n\n'
            f'[apps.other]\nbundle_id = "com.sample.other"\n{extra}'
        )

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.service.url, headers=headers, timeout=30)

    def cli(self, *args: str) -> Result:
        """Run ``pushrelay ARGS --config <this stack's file>`` (in this process: the command's code
        and the database are real, a child process would only add its start-up time)."""
        return CliRunner().invoke(cli, [*args, "--config", str(self.config)], catch_exceptions=False)


def post_to_tokens(stack: Stack, tokens: list[str], notification: dict[str, Any]) -> str:
    """``POST /v1/notifications`` to these device tokens as the sender; returns the id."""
    with stack.client(stack.sender) as snd:
        r = snd.post(
            "/v1/notifications",
            json={"app": "myapp", "notification": notification, "recipients": {"device_tokens": tokens}},
        )
        assert r.status_code == 202, r.text
        return str(r.json()["id"])


def register_and_send_all(stack: Stack, tokens: list[str]) -> str:
    """Register ``tokens`` for ``myapp`` through the batch endpoint, then send one notification to
    ``recipients.all``; its id."""
    with stack.client(stack.admin) as c:
        for i in range(0, len(tokens), 1000):
            batch = [{"app": "myapp", "token": t} for t in tokens[i : i + 1000]]
            r = c.post("/v1/devices:batch", json={"devices": batch})
            assert r.status_code == 200 and not r.json()["counts"]["failed"], r.text
        r = c.post("/v1/notifications", json={"app": "myapp", "notification": {"title": "all"},
                                              "recipients": {"all": True}})  # fmt: skip
        assert r.status_code == 202, r.text
        return str(r.json()["id"])


def notification_state(stack: Stack, nid: str) -> str:
    with stack.client(stack.sender) as snd:
        return str(snd.get(f"/v1/notifications/{nid}").json()["state"])


def assert_counts_add_up(url: str) -> None:
    """Every notification's counts (the sums of ``outbox_counts``, what its status reports) are
    those of its delivery rows: a path that moved a delivery without its count shows here."""
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            real: dict[str, dict[str, int]] = {}
            for nid, state, outcome, n in conn.exec_driver_sql(
                "SELECT notification_id, state, outcome, count(*) FROM outbox_deliveries "
                "GROUP BY notification_id, state, outcome"
            ):
                c = real.setdefault(nid, {"total": 0})
                name = str(outcome if state == "done" else state)
                c[name] = c.get(name, 0) + int(n)
                c["total"] += int(n)
            ids = list(conn.exec_driver_sql("SELECT id FROM outbox_notifications").scalars())
            kept = outcome_counts(conn, ids)
        assert kept == {nid: real.get(nid, {"total": 0}) for nid in ids}
    finally:
        db.dispose()


@pytest.fixture
def outbox(database_url: str) -> Iterator[SqlOutbox]:
    """An outbox on the test database with a fast retry policy (tests of the queue itself); the
    counts must add up once the test is over, whatever it did."""
    db = Database(database_url)
    try:
        yield SqlOutbox(db.engine, retry=RetryPolicy(base=0.01, cap=0.05))
    finally:
        db.dispose()
    assert_counts_add_up(database_url)


@pytest.fixture
def stack(
    database_url: str, sandbox: ApnsSandbox, tmp_path: Path, webhook: WebhookReceiver
) -> Iterator[Stack]:
    s = Stack(database_url, sandbox, tmp_path, webhook)
    try:
        yield s
    finally:
        s.service.stop()
    assert_counts_add_up(database_url)
