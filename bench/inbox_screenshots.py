"""The sandbox inbox screenshots of the docs (docs/images/sandbox-inbox*.png), taken in headless Chromium.

    python bench/inbox_screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]

Runs ``pushrelay demo --keep-running``, opens the printed inbox URL (the 4D example on the four demo
devices), then scripts the iPhone "unregistered" from the page, sends the example again through the
HTTP API and shows the iPhone's page with the refusal and its raw request opened.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

EXAMPLE = {"title": "This is title", "body": "Here is the content of this notification"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/images"))
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="pushrelay-shots-")
    demo = subprocess.Popen(
        [sys.executable, "-m", "pushrelay", "demo", "--keep-running", "--dir", work],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert demo.stdout is not None
    lines: list[str] = []
    for line in demo.stdout:
        lines.append(line.rstrip("\n"))
        if len(lines) >= 2 and lines[-2].startswith("Sandbox inbox"):
            break
    inbox = lines[-1]
    text = "\n".join(lines)
    api = re.search(r"The service stays up at (\S+)", text)
    key = re.search(r"Bearer (pr_[A-Za-z0-9_-]+)", text)
    assert api and key, text
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(inbox)
            page.screenshot(path=str(args.out / "sandbox-inbox.png"), full_page=True)
            page.get_by_role("link", name="iPhone15,2").first.click()
            page.get_by_label("Answer").select_option("unregistered")
            page.get_by_label("For how many requests").fill("1")
            page.get_by_role("button", name="Script the device").click()
            page.get_by_role("status").filter(has_text="unregistered (1 more)").wait_for()
            body = {"app": "myapp", "notification": EXAMPLE, "recipients": {"emails": ["test@4d.com"]}}
            request = urllib.request.Request(
                f"{api.group(1).rstrip('.')}/v1/notifications?wait=10",
                data=json.dumps(body).encode(),
                headers={"authorization": f"Bearer {key.group(1)}", "content-type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=30).read()
            page.locator("li.entry.refused").first.wait_for()
            page.locator("li.entry.refused summary").first.click()
            page.screenshot(path=str(args.out / "sandbox-inbox-device.png"), full_page=True)
            browser.close()
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(30)
    print(f"wrote {args.out / 'sandbox-inbox.png'} and {args.out / 'sandbox-inbox-device.png'}")


if __name__ == "__main__":
    main()
