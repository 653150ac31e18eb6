"""The screenshots of docs/console.md and the README, taken in headless Chromium from a real
``pushrelay demo --keep-running`` (its four devices and the 4D example).

    python bench/console_screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright


def start_demo(work: Path) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushrelay", "demo", "--keep-running", "--dir", str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("API documentation:"):
            console = lines[lines.index("Console (sign in with the admin API key below):") + 1]
            key = lines[lines.index("Admin API key:") + 1]
            return proc, console.removesuffix("/console/"), key
    proc.kill()
    raise SystemExit("the demo did not print its console URL:\n" + "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("docs/images"))
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pushrelay-shots-"))
    proc, url, key = start_demo(work)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()

            def shot(name: str) -> None:
                page.screenshot(path=str(args.out / f"console-{name}.png"), full_page=False)
                print(args.out / f"console-{name}.png")

            page.goto(f"{url}/console/login")
            shot("sign-in")
            page.get_by_label("Admin API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{url}/console/")
            shot("apps")
            page.goto(f"{url}/console/devices?app=myapp&q=test@4d.com")
            shot("devices")
            page.goto(f"{url}/console/compose")
            page.get_by_label("Recipients").fill("test@4d.com")
            page.get_by_label("Title", exact=True).fill("Your order has shipped")
            page.get_by_label("Body").fill("It arrives on Tuesday")
            page.get_by_label("Badge").fill("1")
            page.get_by_label("Deep link (url)").fill("https://example.com/orders/42")
            page.locator("#preview").get_by_text('"badge": 1').first.wait_for()
            shot("composer")
            page.get_by_role("button", name="Send").click()
            page.wait_for_url(f"{url}/console/notifications/*")
            page.locator("#state", has_text="completed").wait_for(timeout=30_000)
            shot("notification")
            page.goto(f"{url}/console/notifications")
            shot("notifications")
            page.goto(f"{url}/console/keys")
            shot("keys")
            page.goto(f"{url}/docs")
            page.locator(".swagger-ui .info .title").wait_for()
            page.screenshot(path=str(args.out / "api-docs-offline.png"))
            print(args.out / "api-docs-offline.png")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
