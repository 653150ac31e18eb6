"""The console and the offline API docs in headless Chromium, against a real ``pushrelay serve``
delivering to the APNs, FCM and Web Push sandboxes."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pushrelay.db import Database
from pushrelay.queue.sql import SqlOutbox
from pushrelay.sandbox.stack import SandboxStack
from pushrelay.server.apikeys import ApiKeyStore

APP, EMAIL = "myapp", "test@4d.com"
FAST_ENV = {"PUSHRELAY_WORKER_POLL": "0.05", "PUSHRELAY_RETRY_BASE": "0.2", "PUSHRELAY_RETRY_CAP": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Console:
    def __init__(
        self, url: str, admin: str, restricted: str, sender: str, stack: SandboxStack, db_url: str
    ) -> None:
        self.url, self.admin, self.restricted, self.sender, self.stack = url, admin, restricted, sender, stack
        self.db_url = db_url
        self.tokens: dict[str, str] = {}

    def sign_in(self, page: Any, key: str | None = None) -> None:
        page.goto(f"{self.url}/console/login")
        page.get_by_label("Admin API key").fill(key or self.admin)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{self.url}/console/")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    work = tmp_path_factory.mktemp("console")
    with SandboxStack.running(work / "sandbox", key_id="CONSOLE123") as stack:
        config = work / "pushrelay.toml"
        db_url = f"sqlite:///{work / 'pushrelay.db'}"
        config.write_text(
            f'[database]\nurl = "{db_url}"\n\n'
            + stack.app_toml(APP)
            + '\n[apps.other]\nbundle_id = "com.other"\n'
        )
        port = _free_port()
        log = open(work / "service.log", "ab")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [sys.executable, "-m", "pushrelay", "serve", "--config", str(config), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FAST_ENV},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, (work / "service.log").read_text()[-2000:]
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "pushrelay serve did not start"
                time.sleep(0.05)
            db = Database(db_url)
            try:
                keys = ApiKeyStore(db.engine)
                admin = keys.create(["admin"], name="console test")[1]
                restricted = keys.create(["admin"], ["other"], name="other only")[1]
                sender = keys.create(["send"], name="sender")[1]
            finally:
                db.dispose()
            c = Console(url, admin, restricted, sender, stack, db_url)
            browser_sub = stack.web.new_subscription(application_server_key=stack.vapid_public_key)
            devices = [
                ("ios", stack.apns.issue_token(stack.bundle_id), {"device_model": "iPhone15,2", "os": "iOS", "language": "fr"}),
                ("android", f"{secrets.token_urlsafe(16)}:APA91b{secrets.token_urlsafe(100)}",
                 {"device_model": "Pixel 8", "os": "Android"}),
                ("web", browser_sub["endpoint"], {"os": "Web", "web_p256dh": browser_sub["keys"]["p256dh"],
                                                  "web_auth": browser_sub["keys"]["auth"]}),
            ]  # fmt: skip
            with httpx.Client(base_url=url, headers={"authorization": f"Bearer {admin}"}) as http:
                for platform, token, fields in devices:
                    body = {"app": APP, "platform": platform, "token": token, "email": EMAIL, **fields}
                    assert http.post("/v1/devices", json=body).status_code == 201
                    c.tokens[platform] = token
                # someone else, to show that the search does not return every device
                other = {
                    "app": APP,
                    "platform": "ios",
                    "token": stack.apns.issue_token(stack.bundle_id),
                    "email": "someone@example.com",
                }
                assert http.post("/v1/devices", json=other).status_code == 201
            yield c
        finally:
            proc.terminate()
            proc.wait(20)
            log.close()


def _offline(page: Any, base: str) -> list[str]:
    """Refuse every request that does not go to ``base`` (as a machine without internet would) and
    return the list of those refused."""
    refused: list[str] = []

    def handle(route: Any) -> None:
        if route.request.url.startswith(base) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    return refused


# -- offline docs ---------------------------------------------------------------------------------


def test_swagger_ui_renders_offline(console: Console, page: Any) -> None:
    refused = _offline(page, console.url)
    page.goto(f"{console.url}/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "pushrelay" in page.locator(".swagger-ui .info .title").inner_text()
    page.get_by_text("/v1/notifications").first.wait_for()
    assert refused == []


def test_redoc_renders_offline(console: Console, page: Any) -> None:
    refused = _offline(page, console.url)
    response = page.goto(f"{console.url}/redoc")
    # ReDoc's footer logo comes from its CDN: the page's policy keeps the browser from asking for it
    assert "img-src 'self' data:" in response.headers["content-security-policy"]
    page.get_by_role("heading", name=re.compile("pushrelay")).first.wait_for()
    page.get_by_text("/v1/notifications").first.wait_for()
    assert refused == []


def test_home_links_the_console_and_docs(console: Console, page: Any) -> None:
    page.goto(f"{console.url}/")
    page.get_by_role("link", name="Console").click()
    page.wait_for_url(f"{console.url}/console/login")


# -- sign-in, sessions, CSRF, headers --------------------------------------------------------------


def test_nothing_visible_without_signing_in(console: Console, page: Any) -> None:
    for path in ("/console/", "/console/apps", "/console/devices", "/console/notifications",
                 "/console/compose", "/console/keys"):  # fmt: skip
        page.goto(f"{console.url}{path}")
        assert page.url == f"{console.url}/console/login", path
        assert page.get_by_label("Admin API key").is_visible()
        assert EMAIL not in page.content()
    # a form posted without a session does nothing but send to the sign-in page
    r = httpx.post(f"{console.url}/console/keys", data={"name": "x", "scopes": "admin"})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    r = httpx.get(f"{console.url}/console/notifications", headers={"HX-Request": "true"})
    assert r.status_code == 401 and r.headers["HX-Redirect"] == "/console/login"


def test_sign_in_refuses_unknown_and_non_admin_keys(console: Console, page: Any) -> None:
    for key in ("pr_000000000000_nope", console.sender):
        page.goto(f"{console.url}/console/login")
        page.get_by_label("Admin API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("alert").inner_text().startswith("This key is unknown, revoked, or lacks")
        assert page.url == f"{console.url}/console/login"
    assert not [c for c in page.context.cookies() if c["name"] == "pushrelay_console"]


def test_session_cookie_and_security_headers(console: Console, page: Any) -> None:
    responses: list[Any] = []
    page.on("response", lambda r: responses.append(r))
    console.sign_in(page)
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "pushrelay_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]  # plain HTTP here
    assert cookie["path"] == "/console"
    pages = [
        r
        for r in responses
        if r.url.startswith(f"{console.url}/console") and r.request.resource_type == "document"
    ]
    assert pages
    for r in pages:
        h = r.all_headers()
        assert "script-src 'self'" in h["content-security-policy"]
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
    # the API key never reaches the page or the cookie
    assert console.admin not in page.content() and console.admin not in cookie["value"]


def test_cookie_secure_when_proxied_over_https(console: Console) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1: a TLS-terminating proxy in front
    with httpx.Client(base_url=console.url, headers={"x-forwarded-proto": "https"}) as http:
        form = http.get("/console/login")
        assert "secure" in form.headers["set-cookie"].lower()
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        # httpx keeps a Secure cookie for https only: hand it over as the browser behind the proxy would
        login_cookie = form.cookies["pushrelay_console_login"]
        r = http.post(
            "/console/login",
            data={"csrf": token.group(1), "api_key": console.admin},
            headers={"cookie": f"pushrelay_console_login={login_cookie}"},
        )
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "pushrelay_console=" in cookie
        assert all(flag in cookie.lower() for flag in ("httponly", "samesite=strict", "secure"))


def test_forms_need_the_csrf_token(console: Console, page: Any) -> None:
    console.sign_in(page)
    # the session cookie alone (as a forged cross-site form would carry it) is not enough
    r = page.request.post(f"{console.url}/console/keys", form={"name": "forged", "scopes": "admin"})
    assert r.status == 403
    assert "CSRF" in r.text()
    r = page.request.post(
        f"{console.url}/console/keys", form={"name": "forged", "scopes": "admin", "csrf": "wrong"}
    )
    assert r.status == 403
    page.goto(f"{console.url}/console/keys")
    assert "forged" not in page.content()
    # the login form has its own token
    r = httpx.post(f"{console.url}/console/login", data={"api_key": console.admin})
    assert r.status_code == 403


# -- pages ----------------------------------------------------------------------------------------


def test_apps_page(console: Console, page: Any) -> None:
    console.sign_in(page)
    page.goto(f"{console.url}/console/apps")
    card = page.get_by_role("region", name=re.compile(f"^{APP}"))
    text = card.inner_text()
    assert "token key CONSOLE123" in text and "FCM" in text and "Web Push" in text
    assert "open deliveries" in text and "running" in text
    other = page.get_by_role("region", name=re.compile("^other"))
    assert "No provider credentials configured" in other.inner_text()


def test_find_the_devices_of_an_email(console: Console, page: Any) -> None:
    console.sign_in(page)
    page.goto(f"{console.url}/console/devices")
    page.get_by_label("E-mail or token prefix").fill(EMAIL.upper())
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.devices tbody tr")
    assert rows.count() == 3
    assert "someone@example.com" not in page.content()
    page.get_by_role("link", name="iPhone15,2").click()
    facts = page.locator("dl.facts").inner_text()
    assert "ios" in facts and "fr" in facts and console.tokens["ios"] in facts and EMAIL in facts
    # by token prefix
    page.goto(f"{console.url}/console/devices")
    page.get_by_label("E-mail or token prefix").fill(console.tokens["android"][:10])
    page.get_by_role("button", name="Search").click()
    assert page.locator("table.devices tbody tr").count() == 1
    assert "Pixel 8" in page.locator("table.devices").inner_text()


def test_compose_preview_send_and_watch_it_complete(console: Console, page: Any) -> None:
    console.sign_in(page)
    page.goto(f"{console.url}/console/compose")
    page.get_by_label("Recipients").fill(EMAIL)
    page.get_by_label("Title", exact=True).fill("Hello from the console")
    page.get_by_label("Body").fill("Sent by a browser test")
    page.get_by_label("Badge").fill("3")
    preview = page.locator("#preview")
    preview.get_by_text('"badge": 3').first.wait_for()
    apns = page.get_by_role("region", name="APNs payload").inner_text()
    assert '"badge": 3' in apns and "/ 4096 bytes" in apns
    assert '"android_channel_id"' in page.get_by_role("region", name="FCM payload").inner_text()
    assert '"Sent by a browser test"' in page.get_by_role("region", name="Web Push payload").inner_text()
    # a bad value is refused as the API refuses it, naming the field
    page.get_by_label("Badge").fill("three")
    preview.get_by_text("badge must be a whole number").wait_for()
    page.get_by_label("Badge").fill("3")
    preview.get_by_text('"badge": 3').first.wait_for()

    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(rf"{console.url}/console/notifications/[0-9a-f-]+$"))
    page.locator("#state", has_text="completed").wait_for(timeout=30_000)
    outcomes = page.locator("table.deliveries td.outcome").all_inner_texts()
    assert outcomes == ["delivered"] * 3
    assert "Hello from the console" in page.get_by_role("region", name="APNs payload").inner_text()
    # the devices really received it
    assert any(r.payload["aps"]["alert"]["title"] == "Hello from the console"
               for r in console.stack.apns.received(console.tokens["ios"]))  # fmt: skip
    # and it is first in the history
    page.goto(f"{console.url}/console/notifications")
    first = page.locator("table.notifications tbody tr").first.inner_text()
    assert "Hello from the console" in first and "completed" in first


def test_compose_refuses_what_the_api_refuses(console: Console, page: Any) -> None:
    console.sign_in(page)
    page.goto(f"{console.url}/console/compose")
    page.get_by_label("Title", exact=True).fill("nobody")
    page.get_by_role("button", name="Send").click()
    assert "Both mails and deviceTokens collections are empty" in page.locator("#compose-error").inner_text()


def test_create_and_revoke_a_key(console: Console, page: Any, browser: Any) -> None:
    console.sign_in(page)
    page.goto(f"{console.url}/console/keys")
    page.get_by_label("Name").fill("made in the console")
    page.get_by_label("admin").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("New API key").input_value()
    assert secret.startswith("pr_")
    # shown once: a reload does not show it again
    page.goto(f"{console.url}/console/keys")
    assert secret not in page.content()
    key_id = secret[3:15]
    row = page.locator(f"#key-{key_id}")
    assert "made in the console" in row.inner_text() and "active" in row.inner_text()

    # sign in with the new key in another browser context, then revoke it from the first
    other = browser.new_context()
    try:
        p2 = other.new_page()
        console.sign_in(p2, secret)
        row.get_by_role("button", name=f"Revoke key {key_id}").click()
        assert "revoked" in page.locator(f"#key-{key_id}").inner_text()
        # its session ends at once
        p2.goto(f"{console.url}/console/apps")
        assert p2.url == f"{console.url}/console/login"
    finally:
        other.close()


def test_app_restricted_admin_sees_only_its_apps(console: Console, page: Any) -> None:
    console.sign_in(page, console.restricted)
    page.goto(f"{console.url}/console/apps")
    assert page.get_by_role("region", name=re.compile("^other")).is_visible()
    assert page.get_by_role("region", name=re.compile(f"^{APP}")).count() == 0
    page.goto(f"{console.url}/console/devices?app={APP}")
    assert "no app named" in page.content()
    page.goto(f"{console.url}/console/notifications")
    assert page.locator("table.notifications").count() == 0
    page.goto(f"{console.url}/console/keys")
    assert "not restricted to apps" in page.content()
    assert page.get_by_role("link", name="Keys").count() == 0


def test_keyboard_reaches_the_sign_in_form(console: Console, page: Any) -> None:
    page.goto(f"{console.url}/console/login")
    page.keyboard.press("Tab")  # the skip link first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api_key"
    page.keyboard.type(console.admin)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console.url}/console/")


def test_live_updates_and_the_resume_button(console: Console, page: Any) -> None:
    """A paused app keeps its notification sending; resuming it from the Apps page (in another tab)
    completes it, and the notification's page, left open, shows that without a reload."""
    db = Database(console.db_url)
    try:
        SqlOutbox(db.engine).pause(
            APP, "403 InvalidProviderToken", platform="ios", by="test", fingerprint=None
        )
    finally:
        db.dispose()
    console.sign_in(page)
    page.goto(f"{console.url}/console/compose")
    page.get_by_label("Recipients").fill(EMAIL)
    page.get_by_label("Title", exact=True).fill("Held while paused")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(rf"{console.url}/console/notifications/[0-9a-f-]+$"))
    page.locator("table.deliveries td", has_text="paused").first.wait_for(timeout=30_000)
    assert page.locator("#state").inner_text() != "completed"

    apps = page.context.new_page()
    apps.goto(f"{console.url}/console/apps")
    card = apps.get_by_role("region", name=re.compile(f"^{APP}"))
    assert "403 InvalidProviderToken" in card.inner_text() and "paused" in card.inner_text()
    card.get_by_role("button", name=f"Resume {APP}").click()
    apps.wait_for_url(f"{console.url}/console/apps")
    assert "running" in apps.get_by_role("region", name=re.compile(f"^{APP}")).inner_text()

    # the first tab was not reloaded: htmx polled the live fragment until the end
    page.locator("#state", has_text="completed").wait_for(timeout=30_000)
    assert page.locator("table.deliveries td.outcome").all_inner_texts() == ["delivered"] * 3


def test_bad_parameters_are_4xx_naming_the_field(console: Console, page: Any) -> None:
    console.sign_in(page)
    huge = str(2**64)
    for path, status, field in (
        (f"/console/devices?app={APP}&after={huge}", 400, "after"),
        (f"/console/devices?app={APP}&after=-5", 400, "after"),
        (f"/console/devices?app={APP}&after=x", 400, "after"),
        (f"/console/devices/{huge}", 404, "id"),
        ("/console/devices/x", 404, "id"),
        ("/console/notifications?state=bogus", 400, "state"),
        ("/console/notifications?cursor=zzz", 400, "cursor"),
    ):
        r = page.request.get(f"{console.url}{path}")
        assert r.status == status, (path, r.status)
        assert f"(field <code>{field}</code>)" in r.text() or f'"field": "{field}"' in r.text(), path


def test_compose_to_tokens_and_to_every_device(console: Console, page: Any) -> None:
    console.sign_in(page)
    page.goto(f"{console.url}/console/compose")
    page.get_by_label("device tokens").check()
    page.get_by_label("Recipients").fill(console.tokens["android"])
    page.get_by_label("Title", exact=True).fill("To one token")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(rf"{console.url}/console/notifications/[0-9a-f-]+$"))
    page.locator("#state", has_text="completed").wait_for(timeout=30_000)
    assert page.locator("table.deliveries tbody tr td:first-child").all_inner_texts() == ["android"]

    page.goto(f"{console.url}/console/compose")
    page.get_by_label("every device of the app").check()
    page.get_by_label("ios", exact=True).check()  # platforms: iOS only
    page.get_by_label("Title", exact=True).fill("To every iPhone")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(rf"{console.url}/console/notifications/[0-9a-f-]+$"))
    page.locator("#state", has_text="completed").wait_for(timeout=30_000)
    # the app's two iOS devices (test@4d.com's and someone@example.com's), nothing else
    platforms = page.locator("table.deliveries tbody tr td:first-child").all_inner_texts()
    assert [p.split(" ")[0] for p in platforms] == ["ios", "ios"]
    assert page.locator("table.deliveries td.outcome").all_inner_texts() == ["delivered"] * 2
