"""``pushrelay demo --keep-running`` prints the inbox URL whole on its own line, and the page shows the
4D example on the demo's four devices, by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def test_demo_inbox_shows_four_devices(page: Any, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pushrelay", "demo", "--keep-running", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "40"},
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if len(lines) >= 2 and lines[-2].startswith("Sandbox inbox"):
                break
        url = lines[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/"), lines
        page.goto(url)
        names = page.locator("#devices .device-name").all_inner_texts()
        assert sorted(names) == ["Browser", "Pixel 8", "iPad13,4", "iPhone15,2"]
        for platform, count in (("apns", 2), ("fcm", 1), ("webpush", 1)):
            entries = page.locator(f"li.entry.{platform}.accepted")
            assert entries.count() == count
            for i in range(count):
                assert entries.nth(i).locator(".n-title").inner_text() == "This is title"
                assert (
                    entries.nth(i).locator(".n-body").inner_text()
                    == "Here is the content of this notification"
                )
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert "Traceback" not in err, err
