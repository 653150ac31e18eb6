"""An unexpected exception answers a JSON 500 without a traceback, is logged, and the keep-alive
connection survives it (a real uvicorn server on a real socket)."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from pushrelay.db import Database
from pushrelay.server.app import create_app
from pushrelay.server.service import Service

from .conftest import free_port, wait_until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    service = Service(Database(f"sqlite:///{tmp_path / 'p.db'}"), providers={}, with_worker=False)
    app = create_app(service)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret-ish detail that must stay in the log")

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve()), daemon=True)
    thread.start()
    wait_until(lambda: srv.started, 20, "uvicorn to start")
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(10)
        service.close()


def test_unexpected_exception_is_a_json_500_and_the_connection_survives(
    server: int, caplog: pytest.LogCaptureFixture
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    with caplog.at_level(logging.ERROR, logger="pushrelay.server"):
        conn.request("GET", "/boom")
        sock = conn.sock
        resp = conn.getresponse()
        body = resp.read().decode()
    assert resp.status == 500
    assert resp.getheader("content-type") == "application/json"
    assert json.loads(body)["error"]["code"] == "internal_error"
    assert "Traceback" not in body and "secret-ish" not in body and "RuntimeError" not in body
    logged = [r for r in caplog.records if r.name == "pushrelay.server" and r.exc_info]
    assert logged and "GET /boom" in logged[0].getMessage()
    # the same connection answers the next request
    conn.request("GET", "/healthz")
    assert conn.sock is sock
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read()) == {"status": "ok"}
    conn.close()
