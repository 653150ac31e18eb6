"""How a device would show what it received: an iOS banner, an Android notification, a browser
notification, read from the bytes the sandbox kept (:class:`~pushrelay.sandbox.records.InboxEntry`).

Only what the payload says is shown; nothing is made up. Where a platform leaves the display to the app
(an Android data message of the 4D mapping, an iOS category whose actions the app registers), the view
shows the keys the app reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..records import InboxEntry

__all__ = ["Shown", "device_label", "show"]

_PROJECT = re.compile(r"^/v1/projects/([^/]+)/")
_LINK_KEYS = ("url", "link", "deeplink", "deep_link", "deepLink", "navigate")
_IMAGE_KEYS = ("media-url", "imageUrl", "image_url", "image", "image-url")


@dataclass
class Shown:
    """One entry, ready for the template."""

    entry: InboxEntry
    kind: str  # "ios" | "android" | "browser"
    app: str
    title: str | None = None
    subtitle: str | None = None
    body: str | None = None
    badge: str | None = None
    sound: str | None = None
    image: str | None = None
    icon: str | None = None
    category: str | None = None
    actions: list[str] = field(default_factory=list)
    link: str | None = None
    color: str | None = None
    silent: str | None = None  # why nothing is displayed (background push, data message)
    options: list[tuple[str, str]] = field(default_factory=list)  # delivery options worth seeing
    data: list[tuple[str, str]] = field(default_factory=list)  # keys the app reads
    reason: str | None = None
    detail: str | None = None

    @property
    def time(self) -> str:
        return datetime.fromtimestamp(self.entry.at, UTC).strftime("%H:%M:%S")

    @property
    def iso_time(self) -> str:
        return datetime.fromtimestamp(self.entry.at, UTC).isoformat(timespec="milliseconds")

    @property
    def raw_request(self) -> str:
        e = self.entry
        lines = [f"{e.method} {e.path}"]
        lines += [f"{k}: {v}" for k, v in e.request_headers()]
        shown_body = "(decrypted) " if e.platform == "webpush" and e.body else ""
        return "\n".join(lines) + "\n\n" + shown_body + _pretty(e.body)

    @property
    def raw_response(self) -> str:
        e = self.entry
        if e.status == 0:
            return e.note or ""
        return f"{e.status}\n\n{_pretty(e.response)}" if e.response else str(e.status)


def device_label(platform: str, device: str) -> str:
    """A short form of a token or subscription id, for lists."""
    if not device:
        return "(no device)"
    if platform == "fcm" and len(device) > 20:
        return device[:10] + "…" + device[-6:]
    return device[:12] + "…" if len(device) > 16 else device


def show(entry: InboxEntry) -> Shown:
    if entry.platform == "apns":
        shown = _ios(entry)
    elif entry.platform == "fcm":
        shown = _android(entry)
    else:
        shown = _browser(entry)
    shown.reason = entry.reason()
    shown.detail = entry.detail()
    return shown


# -- iOS ---------------------------------------------------------------------------------------------


def _ios(entry: InboxEntry) -> Shown:
    headers = dict(entry.request_headers())
    shown = Shown(entry, "ios", headers.get("apns-topic") or "(no apns-topic)")
    payload = entry.json()
    if not isinstance(payload, dict):
        shown.body = _text(entry.body)
        return shown
    aps = _dict(payload.get("aps"))
    alert = aps.get("alert")
    if isinstance(alert, str):
        shown.body = alert
    elif isinstance(alert, dict):
        shown.title = _localised(alert, "title", "title-loc-key", "title-loc-args")
        shown.subtitle = _localised(alert, "subtitle", "subtitle-loc-key", "subtitle-loc-args")
        shown.body = _localised(alert, "body", "loc-key", "loc-args")
    if "badge" in aps:
        shown.badge = _text(aps["badge"])
    sound = aps.get("sound")
    if isinstance(sound, dict):
        critical = " (critical)" if sound.get("critical") else ""
        shown.sound = f"{sound.get('name', 'default')}{critical}"
    elif sound is not None:
        shown.sound = _text(sound)
    if isinstance(aps.get("category"), str):
        shown.category = aps["category"]
    data = _dict(payload.get("data"))
    shown.image = _first(data, _IMAGE_KEYS) or _first(payload, _IMAGE_KEYS)
    shown.link = _first(payload, _LINK_KEYS) or _first(data, _LINK_KEYS)
    push_type = headers.get("apns-push-type") or "alert"
    if alert is None and sound is None and "badge" not in aps:
        shown.silent = (
            "background push: the app wakes up, nothing is displayed"
            if aps.get("content-available")
            else f"{push_type} push with nothing to display"
        )
    shown.options = _present(
        ("push type", push_type),
        ("priority", headers.get("apns-priority")),
        ("thread", aps.get("thread-id")),
        ("interruption level", aps.get("interruption-level")),
        ("collapse id", headers.get("apns-collapse-id")),
        ("expiration", headers.get("apns-expiration")),
        ("mutable content", "yes" if aps.get("mutable-content") else None),
        ("apns-id", headers.get("apns-id")),
    )
    shown.data = [(k, _text(v)) for k, v in payload.items() if k not in ("aps", *_LINK_KEYS)]
    return shown


def _localised(alert: dict[str, Any], key: str, loc_key: str, loc_args: str) -> str | None:
    if isinstance(alert.get(key), str):
        return str(alert[key])
    if isinstance(alert.get(loc_key), str):
        args = alert.get(loc_args)
        suffix = f" {json.dumps(args, ensure_ascii=False)}" if args else ""
        return f"⟨{alert[loc_key]}⟩{suffix}"  # the app's Localizable.strings supplies the text
    return None


# -- Android -----------------------------------------------------------------------------------------


def _android(entry: InboxEntry) -> Shown:
    project = _PROJECT.match(entry.path)
    shown = Shown(entry, "android", project.group(1) if project else "FCM")
    doc = entry.json()
    message = doc.get("message") if isinstance(doc, dict) else None
    if not isinstance(message, dict):
        shown.body = _text(entry.body)
        return shown
    common = _dict(message.get("notification"))
    android = _dict(message.get("android"))
    shown_by_android = _dict(android.get("notification"))
    data = _dict(message.get("data"))
    first = (shown_by_android, common, data)

    def pick(*keys: str) -> str | None:
        for source in first:
            value = _first(source, keys)
            if value is not None:
                return value
        return None

    shown.title, shown.body = pick("title"), pick("body")
    shown.image = pick("image", "imageUrl", "image_url")
    shown.sound = pick("sound")
    shown.color = pick("color")
    shown.icon = pick("icon")
    shown.badge = pick("notification_count", "badge")
    shown.category = pick("click_action")
    shown.link = _first(data, _LINK_KEYS) or _first(_dict(message.get("fcm_options")), ("link",))
    if shown.title is None and shown.body is None:
        shown.silent = "data message: the app receives it in onMessageReceived, nothing is displayed"
    elif not common and not shown_by_android:
        shown.options.append(("shown by", "the app, from the data map (4D mapping)"))
    shown.options += _present(
        ("channel", pick("channel_id", "android_channel_id")),
        ("priority", android.get("priority")),
        ("ttl", android.get("ttl")),
        ("collapse key", android.get("collapse_key")),
        ("tag", shown_by_android.get("tag")),
        ("validate only", "yes" if doc.get("validate_only") else None),
        ("target", entry.device if entry.device.startswith(("topic:", "condition:")) else None),
    )
    shown.data = [(k, _text(v)) for k, v in data.items()]
    return shown


# -- browser -----------------------------------------------------------------------------------------


def _browser(entry: InboxEntry) -> Shown:
    headers = {k.lower(): v for k, v in entry.request_headers()}
    shown = Shown(entry, "browser", "Web Push")
    shown.options = _present(
        ("TTL", headers.get("ttl")), ("urgency", headers.get("urgency")), ("topic", headers.get("topic"))
    )
    if not entry.accepted:
        return shown  # refused pushes are not decrypted: nothing reached the browser
    doc = entry.json()
    if not isinstance(doc, dict):
        shown.body = _text(entry.body) if entry.body else None
        shown.silent = None if entry.body else "empty push: the service worker wakes up with no data"
        return shown
    # Declarative Web Push nests the notification; a service-worker payload is usually flat.
    note = _dict(doc.get("notification")) or doc
    data = _dict(note.get("data")) or _dict(doc.get("data"))
    shown.title, shown.body = _first(note, ("title",)), _first(note, ("body",))
    shown.image, shown.icon = _first(note, ("image",)), _first(note, ("icon",))
    shown.link = _first(note, _LINK_KEYS) or _first(data, _LINK_KEYS)
    badge = doc.get("app_badge", note.get("badge"))
    shown.badge = _text(badge) if badge is not None else None
    actions = note.get("actions")
    if isinstance(actions, list):
        shown.actions = [
            _text(a.get("title", a.get("action"))) if isinstance(a, dict) else _text(a) for a in actions
        ]
    if note.get("silent"):
        shown.sound = "silent"
    if shown.title is None and shown.body is None:
        shown.silent = "no title or body: the service worker decides what to show"
    shown.options += _present(("tag", note.get("tag")), ("declarative", "yes" if "web_push" in doc else None))
    shown.data = [(k, _text(v)) for k, v in data.items()]
    return shown


# -- helpers -----------------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first(source: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = source.get(key)
        if value is not None and value != "":
            return _text(value)
    return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _present(*pairs: tuple[str, Any]) -> list[tuple[str, str]]:
    return [(name, _text(value)) for name, value in pairs if value is not None]


def _pretty(body: bytes) -> str:
    if not body:
        return "(empty body)"
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body.decode("utf-8", "replace")
