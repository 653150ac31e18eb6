"""The README's main job: ``pushrelay demo`` on embedded defaults, as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_delivers_the_4d_example_to_every_device(tmp_path: Path) -> None:
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
    assert [(d["platform"], d["outcome"]) for d in report["deliveries"]] == [
        ("ios", "delivered"),
        ("ios", "delivered"),
        ("android", "delivered"),
        ("web", "delivered"),
    ]
    title, body = "This is title", "Here is the content of this notification"
    iphone, ipad, android, browser = received.values()
    # the two iOS devices: the APNs payload of 4D
    example = {"aps": {"alert": {"title": title, "body": body}}}
    assert [iphone, ipad] == [[example], [example]]
    # the Android phone built by 4D reads FCM's data map
    assert android == [{"title": title, "body": body, "android_channel_id": "qmobile_channel_id"}]
    # the browser: what the Web Push sandbox decrypted with the subscription's private key
    assert browser == [{"notification": {"title": title, "body": body}}]
    tokens = [d["token"] for d in report["deliveries"]]
    assert list(received) == tokens and tokens[3].startswith("https://127.0.0.1:")
    assert (tmp_path / "pushrelay.db").exists()  # --dir keeps the demo's files
    assert (tmp_path / "sandbox" / "firebase-service-account.json").exists()
