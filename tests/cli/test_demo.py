"""The README's main job: ``pushrelay demo`` on embedded defaults, as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_delivers_the_4d_example_to_both_devices(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pushrelay", "demo", "--json", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    report, received = out["report"], out["received"]
    assert report["success"] is True and report["errors"] == []
    assert [d["outcome"] for d in report["deliveries"]] == ["delivered", "delivered"]
    example = {
        "aps": {"alert": {"title": "This is title", "body": "Here is the content of this notification"}}
    }
    assert list(received.values()) == [[example], [example]]
    assert (tmp_path / "pushrelay.db").exists()  # --dir keeps the demo's files
