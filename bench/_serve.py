"""What bench/recovery.py and bench/stuck.py share: a scratch database (a SQLite file, or a fresh
PostgreSQL database dropped afterwards), the APNs sandbox's app in ``pushrelay.toml``, and a
``pushrelay serve`` child process; :func:`sandbox_stack` puts the first two together with a send key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from pushrelay.db import Database
from pushrelay.sandbox import ApnsSandbox
from pushrelay.server.apikeys import ApiKeyStore

TEAM, BUNDLE = "TEAM123456", "com.sample.myappname"
NOTE = {"title": "This is title", "body": "Here is the content of this notification"}
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], object], what: str, timeout: float, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


@contextmanager
def scratch_database(kind: str, tmp: Path) -> Iterator[str]:
    """``sqlite``: a file in ``tmp``; ``postgresql``: a new database on 127.0.0.1:5432, dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'pushrelay.db'}"
        return
    import psycopg

    name = f"pushrelay_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_config(tmp: Path, sb: ApnsSandbox, url: str) -> Path:
    key = sb.create_key(TEAM, "BENCHKEY01", tmp)
    config = tmp / "pushrelay.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n\n[apps.myapp]\nbundle_id = "{BUNDLE}"\n'
        f'[apps.myapp.apns]\nteam_id = "{TEAM}"\nkey_file = "{key}"\nendpoint = "{sb.url}"\n'
        f'ca_file = "{sb.ca_file}"\n'
    )
    return config


def issue_tokens(sb: ApnsSandbox, count: int) -> list[str]:
    """``count`` device tokens of myapp (the sandbox is strict, as APNs: it accepts only those it issued)."""
    return [sb.issue_token(BUNDLE, token=f"{i:064x}") for i in range(1, count + 1)]


@dataclass(frozen=True)
class Stack:
    tmp: Path
    sb: ApnsSandbox
    config: Path  # pushrelay.toml: myapp on the sandbox, the scratch database
    db: Database
    sender: str  # an API key with the send scope for myapp


@contextmanager
def sandbox_stack(database: str) -> Iterator[Stack]:
    """A temporary directory, the APNs sandbox with myapp's topic, a scratch ``database``
    (``sqlite`` or ``postgresql``), its ``pushrelay.toml`` and a send key; all gone afterwards."""
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        ApnsSandbox.running(directory=Path(tmp_name) / "sb") as sb,
        scratch_database(database, Path(tmp_name)) as url,
    ):
        tmp = Path(tmp_name)
        sb.add_topic(BUNDLE, TEAM)
        config = write_config(tmp, sb, url)
        db = Database(url)
        try:
            sender = ApiKeyStore(db.engine).create(["send"], ["myapp"])[1]
            yield Stack(tmp, sb, config, db, sender)
        finally:
            db.dispose()  # before the scratch PostgreSQL database is dropped


class Serve:
    """``pushrelay serve`` as a child process, default settings unless ``env`` says otherwise."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> Serve:
        """``args``: more options for ``pushrelay serve`` (``--api-only``...)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pushrelay",
                    "serve",
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        wait_for(self._healthy, "the service", 60)
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise SystemExit(f"the service exited: {self.log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
