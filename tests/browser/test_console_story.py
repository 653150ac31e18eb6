"""Issue 10's whole story in one headless Chromium, on what a new user runs: ``pushrelay demo
--keep-running``. From its printed lines only (console URL, admin key, inbox URL): refused without a
session; sign in; find the devices of an e-mail; send from the composer; watch the notification
complete and its per-device outcomes; see it rendered on the four devices of the sandbox inbox;
create and revoke a key; sign out. Then accessibility: every page is checked for labels and contrast,
and the sign-in and composer forms are filled from the keyboard alone."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

EMAIL = "test@4d.com"
DEVICES = ["Browser", "Pixel 8", "iPad13,4", "iPhone15,2"]  # as the inbox names them


@dataclass
class Demo:
    console: str  # http://127.0.0.1:<port>/console/
    key: str
    inbox: str
    base: str


def _read_until_inbox(process: subprocess.Popen[str], timeout: float) -> list[str]:
    """The demo's stdout up to the inbox URL, read in a thread so that a stuck demo fails the test
    after ``timeout`` instead of hanging it."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"pushrelay demo printed no inbox URL within {timeout}s: {seen}")
        if line is None:
            pytest.fail(f"pushrelay demo ended early: {seen}")
        seen.append(line)
        if len(seen) >= 2 and seen[-2].startswith("Sandbox inbox"):
            return seen


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    work: Path = tmp_path_factory.mktemp("story")
    process = subprocess.Popen(
        [sys.executable, "-m", "pushrelay", "demo", "--keep-running", "--dir", str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a narrow, non-terminal output: the URLs must still come whole, one per line
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "40"},
    )
    try:
        lines = _read_until_inbox(process, 90)
        console = lines[lines.index("Console (sign in with the admin API key below):") + 1]
        key = lines[lines.index("Admin API key:") + 1]
        inbox = lines[-1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/console/", console), lines
        assert re.fullmatch(r"pr_\w+_\S+", key), lines
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", inbox), lines
        yield Demo(console, key, inbox, console.removesuffix("/console/"))
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert "Traceback" not in err, err


def _sign_in(page: Any, demo: Demo) -> None:
    page.goto(demo.console)
    page.get_by_label("Admin API key").fill(demo.key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(demo.console)


def test_the_whole_story(demo: Demo, page: Any, browser: Any) -> None:
    # refused without a session: every page sends to the sign-in form, and shows nothing
    for path in ("", "devices", "notifications", "compose", "keys"):
        page.goto(f"{demo.console}{path}")
        assert page.url == f"{demo.console}login", path
        assert EMAIL not in page.content()

    _sign_in(page, demo)
    nav = page.get_by_role("navigation", name="Console")

    # find the devices of an e-mail: the demo's four
    nav.get_by_role("link", name="Devices").click()
    page.get_by_label("E-mail or token prefix").fill(EMAIL)
    page.get_by_role("button", name="Search").click()
    names = page.locator("table.devices tbody tr td:first-child").all_inner_texts()
    assert sorted(names) == ["Pixel 8", "Web", "iPad13,4", "iPhone15,2"]
    page.get_by_role("link", name="iPhone15,2").click()
    assert EMAIL in page.locator("dl.facts").inner_text()
    # the demo's own notification is among its recent deliveries
    assert "delivered" in page.locator("main table tbody").inner_text()

    # send from the composer, with the preview first
    nav.get_by_role("link", name="Composer").click()
    page.get_by_label("Recipients").fill(EMAIL)
    page.get_by_label("Title", exact=True).fill("Sent from the console")
    page.get_by_label("Body").fill("The whole story, in a browser")
    page.get_by_label("Badge").fill("2")
    page.locator("#preview").get_by_text('"badge": 2').first.wait_for()
    assert "Sent from the console" in page.get_by_role("region", name="APNs payload").inner_text()
    page.get_by_role("button", name="Send").click()

    # watch it complete (the page polls its live part), then its per-device outcomes
    page.wait_for_url(re.compile(r".*/console/notifications/[0-9a-f-]+$"))
    page.locator("#state", has_text="completed").wait_for(timeout=30_000)
    rows = page.locator("table.deliveries tbody tr")
    assert rows.count() == 4
    platforms = sorted(t.split(" ")[0] for t in rows.locator("td:first-child").all_inner_texts())
    assert platforms == ["android", "ios", "ios", "web"]
    assert page.locator("table.deliveries td.outcome").all_inner_texts() == ["delivered"] * 4
    # and in the history, newest first, with its counts
    nav.get_by_role("link", name="Notifications").click()
    first = page.locator("table.notifications tbody tr").first.locator("td").all_inner_texts()
    assert "Sent from the console" in first and "completed" in first
    assert first[-3:] == ["4", "0", "0"]  # delivered, failed, open

    # the same notification, rendered on the four devices of the sandbox inbox
    inbox = page.context.new_page()
    inbox.goto(demo.inbox)
    sent = inbox.locator("li.entry.accepted", has_text="Sent from the console")
    for platform, count in (("apns", 2), ("fcm", 1), ("webpush", 1)):
        entries = sent.and_(inbox.locator(f"li.entry.{platform}"))
        assert entries.count() == count, platform
        for i in range(count):
            assert entries.nth(i).locator(".n-title").inner_text() == "Sent from the console"
            assert entries.nth(i).locator(".n-body").inner_text() == "The whole story, in a browser"
    # each of the four devices, by its name, shows it on its own page
    for name in DEVICES:
        inbox.goto(demo.inbox)
        inbox.locator("#devices a", has_text=name).click()
        inbox.wait_for_url(re.compile(r".*\?device="))
        newest = inbox.locator("li.entry").first
        assert newest.locator(".n-title").inner_text() == "Sent from the console", name
    inbox.close()

    # create a key, see its secret once, revoke it: the API refuses it at once
    nav.get_by_role("link", name="Keys").click()
    page.get_by_label("Name").fill("story")
    page.get_by_label("send", exact=True).check()
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("New API key").input_value()
    api = httpx.get(
        f"{demo.base}/v1/devices", params={"app": "myapp"}, headers={"authorization": f"Bearer {secret}"}
    )
    assert api.status_code == 200
    key_id = secret[3:15]
    page.locator(f"#key-{key_id}").get_by_role("button", name=f"Revoke key {key_id}").click()
    assert "revoked" in page.locator(f"#key-{key_id}").inner_text()
    api = httpx.get(
        f"{demo.base}/v1/devices", params={"app": "myapp"}, headers={"authorization": f"Bearer {secret}"}
    )
    assert api.status_code == 401

    # sign out: refused again
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{demo.console}notifications")
    assert page.url == f"{demo.console}login"


# -- accessibility ---------------------------------------------------------------------------------

# Every visible form control has a label, and every text meets WCAG AA contrast against the
# background it is drawn on (4.5:1, or 3:1 for large text), computed from the rendered styles.
_AUDIT = """() => {
  const rgba = (s) => { const m = s.match(/[\\d.]+/g) || []; return m.map(Number).concat([1]).slice(0, 4); };
  const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const over = (top, under) => { const a = top[3]; return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]); };
  const background = (el) => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) layers.push(c); if (c[3] >= 1) break; }
    return layers.reduceRight((under, top) => over(top, under), [255, 255, 255, 1]); };
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 1 && r.height > 1 && s.visibility !== "hidden" && s.display !== "none" && !el.closest("[hidden],details:not([open]) > :not(summary)"); };
  const problems = [];
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!visible(el)) continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
      problems.push("no label: " + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !visible(el)) continue;
    const s = getComputedStyle(el);
    const bg = background(el); const fg = over(rgba(s.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a); const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(s.fontSize); const bold = Number(s.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) problems.push(`contrast ${ratio.toFixed(2)} < ${need}: ${el.tagName} "${el.textContent.trim().slice(0, 40)}" ${s.color} on rgb(${bg.slice(0, 3).map(Math.round)})`);
  }
  return problems;
}"""


def test_labels_and_contrast_on_every_page(demo: Demo, page: Any) -> None:
    page.goto(demo.console)
    problems = {"login": page.evaluate(_AUDIT)}
    _sign_in(page, demo)
    for path in ("apps", f"devices?app=myapp&q={EMAIL}", "notifications", "compose", "keys"):
        page.goto(f"{demo.console}{path}")
        page.wait_for_load_state("networkidle")
        problems[path] = page.evaluate(_AUDIT)
    page.goto(f"{demo.console}notifications")
    page.locator("table.notifications tbody a").first.click()
    problems["notification"] = page.evaluate(_AUDIT)
    page.goto(demo.inbox)
    problems["inbox"] = page.evaluate(_AUDIT)
    assert {k: v for k, v in problems.items() if v} == {}


def _focus(page: Any) -> str:
    """What has the keyboard focus: its id, or its type and value (radios and checkboxes)."""
    return str(
        page.evaluate(
            "(() => { const e = document.activeElement;"
            " return e.id || (e.name ? e.name + '=' + e.value : e.tagName + ':' + e.textContent.trim()); })()"
        )
    )


def test_sign_in_and_send_from_the_keyboard_alone(demo: Demo, page: Any) -> None:
    page.goto(demo.console)
    page.keyboard.press("Tab")
    assert _focus(page) == "A:Skip to content"
    # Tab on to the key field, type it, Enter
    for _ in range(5):
        if _focus(page) == "api_key":
            break
        page.keyboard.press("Tab")
    assert _focus(page) == "api_key"
    page.keyboard.type(demo.key)
    page.keyboard.press("Enter")
    page.wait_for_url(demo.console)

    page.goto(f"{demo.console}compose")
    # the composer's controls come in reading order, each reachable by Tab, with a visible focus ring
    order: list[str] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        now = _focus(page)
        if now.startswith("BUTTON:Send"):
            break
        order.append(now)
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("none", ""), now
    expected = ["c-app", "to=emails", "c-recipients", "targets=ios", "targets=android", "targets=web",
                "c-title", "c-subtitle", "c-body", "c-badge", "c-sound", "c-category", "c-url", "c-image",
                "c-userinfo"]  # fmt: skip
    assert order[-len(expected) :] == expected, order
    # fill it and send with the keyboard: focus the recipients, type, Tab to the title...
    page.focus("#c-recipients")
    page.keyboard.type(EMAIL)
    page.focus("#c-title")
    page.keyboard.type("Typed, not clicked")
    page.locator("#preview").get_by_text("Typed, not clicked").first.wait_for()
    page.focus("#c-userinfo")
    page.keyboard.press("Tab")
    assert _focus(page).startswith("BUTTON:Send")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/console/notifications/[0-9a-f-]+$"))
    page.locator("#state", has_text="completed").wait_for(timeout=30_000)
