"""Headless Chromium for the browser tests (the console, the sandbox inbox, the API docs).

Playwright drives Debian's ``chromium`` (``/usr/bin/chromium``, or ``PUSHRELAY_CHROMIUM``): the
registry-installed Playwright needs no browser download of its own. Without Chromium these tests
skip with a message saying how to get it, except under ``CI=true`` where a missing browser fails.

Playwright's sync API cannot run inside an event loop, so browser tests are plain ``def`` tests and
start what they look at (``pushrelay serve``, the sandboxes) in threads or subprocesses.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def _chromium() -> str | None:
    explicit = os.environ.get("PUSHRELAY_CHROMIUM")
    if explicit:
        return explicit
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _unavailable(why: str) -> None:
    message = f"{why}; install it with `apt-get install -y chromium` (or set PUSHRELAY_CHROMIUM)"
    if IN_CI:
        pytest.fail(f"headless Chromium is required under CI=true: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module.

    Not per session: while Playwright's sync API is active it runs an event loop in the main thread,
    and every later test that calls ``asyncio.run()`` would fail with "cannot be called from a running
    event loop". Leaving the ``with sync_playwright()`` block at the end of the module stops it.
    """
    executable = _chromium()
    if executable is None:
        _unavailable("Chromium was not found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        except Exception as exc:
            _unavailable(f"Chromium at {executable} did not start ({exc})")
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in its own context (no shared cookies between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()
