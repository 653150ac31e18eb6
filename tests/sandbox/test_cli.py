"""``pushrelay sandbox`` as a real subprocess: start, read the endpoint, use it, stop with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

from .h2client import H2TestClient


def start(directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pushrelay", "sandbox", "--port", "0", "--dir", str(directory), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def read_banner(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return lines
    raise AssertionError(
        f"the sandbox exited early: {lines} {process.stderr.read() if process.stderr else ''}"
    )


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)
    return out, err


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    directory = tmp_path / "sb"
    process = start(directory, "--team-id", "TEAM123456", "--bundle-id", "com.sample.myappname")
    try:
        banner = read_banner(process)
        match = re.search(r"listening on (https://127\.0\.0\.1:\d+)", banner[0])
        assert match, banner
        url = match.group(1)
        snippet = "\n".join(banner[banner.index("Configuration for pushrelay.toml:") + 2 : -2])
        config = tomllib.loads(snippet)
        app = config["apps"]["myappname"]
        assert app["bundle_id"] == "com.sample.myappname"
        assert app["apns"]["endpoint"] == url and app["apns"]["team_id"] == "TEAM123456"
        key_file, ca_file = Path(app["apns"]["key_file"]), Path(app["apns"]["ca_file"])
        assert key_file.parent == directory.resolve() and re.fullmatch(
            r"AuthKey_[A-Z0-9]{10}\.p8", key_file.name
        )
        assert ca_file == directory.resolve() / "apns-ca-bundle.pem" and key_file.is_file()
        # the bundle trusts both APNs sandboxes (production here, development on the other port)
        assert (directory / "ca.pem").read_bytes() in ca_file.read_bytes()

        async def stats() -> dict[str, object]:
            client = await H2TestClient.connect(url, ca_file)
            try:
                return dict((await client.request("GET", "/_sandbox/stats")).json)
            finally:
                await client.close()

        assert asyncio.run(stats())["requests"] == 0
    finally:
        out, err = stop(process)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "Stopped." in out

    # A second run in the same directory reuses the key, so pasted configuration stays valid.
    again = start(directory)
    try:
        assert any(
            key_file.name.removeprefix("AuthKey_").removesuffix(".p8") in line for line in read_banner(again)
        )
    finally:
        stop(again)
    assert again.returncode == 0


def test_cli_rejects_bad_options(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pushrelay", "sandbox", "--dir", str(tmp_path), "--team-id", "not a team!"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--team-id" in result.stderr and "TEAM123456" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_reports_a_busy_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pushrelay", "sandbox", "--dir", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
