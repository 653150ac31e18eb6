"""The sandbox inbox in headless Chromium: what each platform's device shows, the raw request one click
away, refusals with Apple's / Google's reason, live updates, and scripting a device from the page.

Pushes go through pushrelay's own clients over TLS/HTTP/2 to the real sandboxes; the page is read
the way a person would (roles, labels, visible text).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from pushrelay import Notification

from .inbox_stack import InboxStack, inbox_stack

FULL = Notification(
    title="Order shipped",
    subtitle="Parcel 42",
    body="Your order is on its way",
    badge=3,
    sound="chime.caf",
    category="ORDER",
    url="myapp://orders/42",
    image_url="https://example.com/parcel.png",
    user_info={"order": 42},
)


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InboxStack]:
    with inbox_stack(tmp_path_factory.mktemp("inbox")) as running:
        yield running


def device_url(running: InboxStack, platform: str, device: str) -> str:
    return f"{running.url}?device={quote(f'{platform}:{device}', safe='')}"


def entry(page: Any, platform: str) -> Any:
    return page.locator(f"li.entry.{platform}").first


def test_ios_banner_shows_every_field(sandboxes: InboxStack, page: Any) -> None:
    token = sandboxes.apns_token()
    assert sandboxes.send_apns(FULL, token).ok
    page.goto(device_url(sandboxes, "apns", token))
    banner = entry(page, "apns").get_by_role("group", name="As an iPhone lock screen shows it")
    assert banner.locator(".n-title").inner_text() == "Order shipped"
    assert banner.locator(".n-subtitle").inner_text() == "Parcel 42"
    assert banner.locator(".n-body").inner_text() == "Your order is on its way"
    assert banner.locator(".icon-badge").inner_text() == "3"
    assert banner.locator(".app-name").inner_text().lower() == "com.sample.myappname"
    assert banner.locator("img.thumb").get_attribute("src") == "https://example.com/parcel.png"
    chips = entry(page, "apns").locator(".chips").inner_text()
    for text in (
        "Badge 3",
        "Sound chime.caf",
        "Category ORDER",
        "Opens myapp://orders/42",
        "Image https://example.com/parcel.png",
    ):
        assert text in chips
    assert "200 delivered" in entry(page, "apns").locator(".entry-meta").inner_text()


def test_issued_tokens_are_listed_before_anything_is_sent(sandboxes: InboxStack, page: Any) -> None:
    token = sandboxes.apns_token()  # issued by the strict APNs sandbox, nothing sent to it yet
    page.goto(sandboxes.url)
    device = page.locator(f'#devices a[title="{token}"]')
    assert "iOS (APNs)" in device.inner_text() and "0 received" in device.inner_text()


def test_raw_payload_and_headers_one_click_away(sandboxes: InboxStack, page: Any) -> None:
    token = sandboxes.apns_token()
    assert sandboxes.send_apns(Notification(title="raw", body="look inside"), token).ok
    page.goto(device_url(sandboxes, "apns", token))
    raw = entry(page, "apns").locator("pre.raw-request")
    assert not raw.is_visible()
    entry(page, "apns").get_by_text("Raw payload and headers").click()
    text = raw.inner_text()
    assert text.startswith(f"POST /3/device/{token}")
    assert "apns-topic: com.sample.myappname" in text
    assert '"title": "raw"' in text
    assert "authorization" not in text.lower()  # the provider token is a credential
    assert entry(page, "apns").locator("pre.raw-response").inner_text().startswith("200")


def test_android_notification(sandboxes: InboxStack, page: Any) -> None:
    token = sandboxes.fcm_token()
    assert sandboxes.send_fcm(FULL.replace(color="#1A7F37"), token).ok
    page.goto(device_url(sandboxes, "fcm", token))
    shown = entry(page, "fcm").get_by_role("group", name="As an Android phone shows it")
    assert shown.locator(".n-title").inner_text() == "Order shipped"
    assert shown.locator(".n-body").inner_text() == "Your order is on its way"
    assert shown.locator(".count").inner_text() == "3"
    assert shown.locator("img.big-picture").get_attribute("src") == "https://example.com/parcel.png"
    assert shown.locator(".app-name").inner_text() == "pushrelay-sandbox"
    chips = entry(page, "fcm").locator(".chips").inner_text()
    for text in (
        "Badge 3",
        "Sound chime.caf",
        "Click action ORDER",
        "Opens myapp://orders/42",
        "Colour #1A7F37",
    ):
        assert text in chips


def test_android_4d_data_message_is_shown_from_its_data(sandboxes: InboxStack, page: Any) -> None:
    token = sandboxes.fcm_token()
    assert sandboxes.send_fcm(Notification(title="4D title", body="4D body"), token, mapping="4d").ok
    page.goto(device_url(sandboxes, "fcm", token))
    shown = entry(page, "fcm")
    assert shown.locator(".n-title").inner_text() == "4D title"
    assert "the app, from the data map (4D mapping)" in shown.locator(".options").inner_text()
    assert "qmobile_channel_id" in shown.locator(".options").inner_text()


def test_browser_notification_decrypted(sandboxes: InboxStack, page: Any) -> None:
    subscription = sandboxes.subscription()
    sub_id = subscription["endpoint"].rsplit("/wp/", 1)[-1]
    assert sandboxes.send_web(FULL, subscription).ok
    page.goto(device_url(sandboxes, "webpush", sub_id))
    shown = entry(page, "webpush").get_by_role("group", name="As a desktop browser shows it")
    assert shown.locator(".n-title").inner_text() == "Order shipped"
    assert shown.locator(".n-body").inner_text() == "Your order is on its way"
    assert shown.locator("img.big-picture").get_attribute("src") == "https://example.com/parcel.png"
    chips = entry(page, "webpush").locator(".chips").inner_text()
    assert "Badge 3" in chips and "Opens myapp://orders/42" in chips
    entry(page, "webpush").get_by_text("Raw payload and headers").click()
    raw = entry(page, "webpush").locator("pre.raw-request").inner_text()
    assert "(decrypted)" in raw and '"order": 42' in raw and "content-encoding: aes128gcm" in raw


def test_refusals_show_the_providers_reason(sandboxes: InboxStack, page: Any) -> None:
    apns_token, fcm_token = sandboxes.apns_token(), sandboxes.fcm_token()
    sandboxes.on_loop(sandboxes.stack.apns.script, apns_token, "unregistered", times=1)
    sandboxes.on_loop(sandboxes.stack.fcm.script, fcm_token, "quota_exceeded", times=1, retry_after=1)
    assert not sandboxes.send_apns(Notification(title="gone"), apns_token).ok
    assert not sandboxes.send_fcm(Notification(title="gone"), fcm_token).ok
    page.goto(device_url(sandboxes, "apns", apns_token))
    refused = page.locator("li.entry.refused").first
    assert refused.locator(".reason").inner_text() == "Unregistered"
    assert "410 refused" in refused.locator(".entry-meta").inner_text()
    page.goto(device_url(sandboxes, "fcm", fcm_token))
    refused = page.locator("li.entry.refused").first
    assert refused.locator(".reason").inner_text() == "QUOTA_EXCEEDED"
    assert "Message rate exceeded" in refused.locator(".refusal").inner_text()


def test_new_notifications_appear_without_reload(sandboxes: InboxStack, page: Any) -> None:
    page.goto(sandboxes.url)
    page.wait_for_function("() => window.htmx !== undefined")
    before = page.locator("li.entry").count()
    answered = int(page.locator("#summary").inner_text().split()[0])
    token = sandboxes.apns_token()
    assert sandboxes.send_apns(Notification(title="live one", body="arrived while watching"), token).ok
    page.locator("li.entry", has_text="live one").wait_for()
    page.locator("#summary", has_text=f"{answered + 1} requests answered").wait_for()
    assert page.locator("li.entry").count() == before + 1
    assert page.locator("li.entry").first.locator(".n-title").inner_text() == "live one"  # newest first
    # the device list follows too
    page.locator("#devices a", has_text=token[:12]).wait_for()


def test_script_a_device_from_the_page(sandboxes: InboxStack, page: Any) -> None:
    token = sandboxes.apns_token()
    assert sandboxes.send_apns(Notification(title="before"), token).ok
    page.goto(device_url(sandboxes, "apns", token))
    page.wait_for_function("() => window.htmx !== undefined")
    page.get_by_label("Answer").select_option("unregistered")
    page.get_by_label("For how many requests").fill("1")
    page.get_by_role("button", name="Script the device").click()
    page.get_by_role("status").filter(has_text="unregistered (1 more)").wait_for()
    result = sandboxes.send_apns(Notification(title="after"), token)
    assert not result.ok and result.reason == "Unregistered"
    page.locator("li.entry.refused .reason", has_text="Unregistered").wait_for()
    page.get_by_role("status").filter(has_text="Not scripted").wait_for()  # used up, and the page says so
    assert sandboxes.send_apns(Notification(title="again"), token).ok  # the script was used up


def test_scripting_without_javascript_and_csrf(sandboxes: InboxStack, browser: Any) -> None:
    subscription = sandboxes.subscription()
    sub_id = subscription["endpoint"].rsplit("/wp/", 1)[-1]
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(device_url(sandboxes, "webpush", sub_id))
        page.get_by_label("Answer").select_option("gone")
        page.get_by_role("button", name="Script the device").click()  # a plain form post, redirected back
        assert "gone (always)" in page.get_by_role("status").inner_text()
        assert page.url == device_url(sandboxes, "webpush", sub_id)
    finally:
        context.close()
    assert not sandboxes.send_web(Notification(title="x"), subscription).ok
    # a form from elsewhere (no token, or another site's Origin) changes nothing
    fields = {"platform": "webpush", "device": sub_id, "behaviour": "not_found"}
    with httpx.Client(base_url=sandboxes.url) as http:
        assert http.post("/script", data=fields).status_code == 403
        forged = {**fields, "csrf": sandboxes.inbox.csrf_token}
        r = http.post("/script/clear", data=forged, headers={"origin": "https://evil.example"})
        assert r.status_code == 403 and "origin" in r.text
        assert http.get("/", headers={"host": "evil.example"}).status_code == 403
        r = http.post("/script", data={**forged, "behaviour": "explode"})
        assert r.status_code == 400 and r.text.startswith("behaviour:")
        r = http.post("/script", data={**forged, "times": "0"})
        assert r.status_code == 400 and r.text.startswith("times:")


def test_page_is_keyboard_and_label_friendly(sandboxes: InboxStack, page: Any) -> None:
    token = sandboxes.apns_token()
    assert sandboxes.send_apns(Notification(title="keys"), token).ok
    page.goto(device_url(sandboxes, "apns", token))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the notifications"
    details = entry(page, "apns").locator("summary")
    details.focus()
    page.keyboard.press("Enter")
    assert entry(page, "apns").locator("pre.raw-request").is_visible()
    for control in page.locator("select, input:not([type=hidden])").all():
        control_id = control.get_attribute("id")
        assert page.locator(f"label[for={control_id}]").count() == 1
    assert re.search(r"^\d+ requests? answered", page.locator(".summary").inner_text())


def test_screenshot_for_the_docs(sandboxes: InboxStack, page: Any, tmp_path: Path) -> None:
    """The page renders all three platforms side by side (the docs' picture is made the same way)."""
    page.goto(sandboxes.url)
    for platform in ("apns", "fcm", "webpush"):
        assert page.locator(f"li.entry.{platform}").count() >= 1
    page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)
    assert (tmp_path / "inbox.png").stat().st_size > 10_000
