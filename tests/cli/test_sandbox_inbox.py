"""``pushrelay sandbox`` serves the inbox page on 127.0.0.1 and prints its URL whole on its own line;
``--no-inbox`` leaves it out; a busy ``--inbox-port`` is a one-line error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx


def run_sandbox(directory: Path, *args: str) -> tuple[list[str], subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pushrelay", "sandbox", "--port", "0", "--dir", str(directory), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "20"},
    )
    assert process.stdout is not None
    banner = []
    for line in process.stdout:
        banner.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            break
    return banner, process


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 0 and "Traceback" not in err, err


def test_sandbox_serves_the_inbox(tmp_path: Path) -> None:
    banner, process = run_sandbox(tmp_path)
    try:
        url = banner[banner.index("Inbox (every device and what it received, in your browser):") + 1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        r = httpx.get(url)
        assert r.status_code == 200 and "pushrelay sandbox inbox" in r.text
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert httpx.get(url + "assets/htmx.min.js").text.startswith("var htmx=")
    finally:
        stop(process)


def test_no_inbox(tmp_path: Path) -> None:
    banner, process = run_sandbox(tmp_path, "--no-inbox")
    try:
        assert not any(line.startswith("Inbox") for line in banner)
    finally:
        stop(process)


def test_busy_inbox_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pushrelay", "sandbox", "--port", "0", "--dir", str(tmp_path),
             "--inbox-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"--inbox-port: cannot listen on 127.0.0.1:{port} for the inbox" in result.stderr
    assert "Traceback" not in result.stderr
