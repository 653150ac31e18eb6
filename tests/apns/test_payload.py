"""Rendering notifications into APNs requests: the 4D payload shape and every validation rule."""

from __future__ import annotations

import json

import pytest

from pushrelay import Notification, NotificationError, PayloadTooLargeError
from pushrelay.apns import render
from pushrelay.apns.payload import TOPIC_SUFFIX

TOPIC = "com.sample.myappname"


def body(n: Notification) -> dict[str, object]:
    return json.loads(render(n, topic=TOPIC).body)  # type: ignore[no-any-return]


def test_4d_example_renders_alert_with_title_and_body() -> None:
    n = Notification.from_dict({"title": "This is title", "body": "Here is the content of this notification"})
    r = render(n, topic=TOPIC)
    assert json.loads(r.body) == {
        "aps": {"alert": {"title": "This is title", "body": "Here is the content of this notification"}}
    }
    assert (r.topic, r.push_type, r.priority, r.expiration, r.collapse_id) == (TOPIC, "alert", 10, None, None)


def test_every_4d_field() -> None:
    n = Notification.from_dict(
        {
            "title": "T",
            "subtitle": "S",
            "body": "B",
            "badge": 3.9,  # a real number is truncated, as 4D does
            "sound": "default",
            "category": "MESSAGE",
            "imageUrl": "https://example.com/a.png",
            "userInfo": {"dataClass": "Employees", "entity": {"primaryKey": 12}, "dataSynchro": True},
            "url": "https://example.com/x",
            "color": "#ff0000",
        }
    )
    assert body(n) == {
        "aps": {
            "alert": {"title": "T", "subtitle": "S", "body": "B"},
            "badge": 3,
            "sound": "default",
            "category": "MESSAGE",
            "mutable-content": 1,
        },
        "data": {"media-url": "https://example.com/a.png"},
        "dataClass": "Employees",
        "entity": {"primaryKey": 12},
        "dataSynchro": True,
        "url": "https://example.com/x",
    }


def test_mutable_content_explicit_and_4d_spelling() -> None:
    assert body(Notification.from_dict({"title": "x", "mutable-content": 1}))["aps"] == {
        "alert": {"title": "x"},
        "mutable-content": 1,
    }
    off = body(
        Notification.from_dict({"title": "x", "imageUrl": "https://e/i.png", "mutable_content": False})
    )
    assert "mutable-content" not in off["aps"]  # type: ignore[operator]


def test_apns_options_go_to_aps_and_headers() -> None:
    n = Notification.from_dict(
        {
            "title": "t",
            "thread-id": "th",
            "interruption-level": "time-sensitive",
            "relevance-score": 0.5,
            "target-content-id": "w1",
            "filter-criteria": "work",
            "apns-collapse-id": "c1",
            "expiration": 1_900_000_000,
            "sound": {"critical": 1, "name": "alarm.caf", "volume": 0.7},
            "loc-key": "K",
            "loc-args": ["a", "b"],
            "custom": {"extra": [1, 2]},
        }
    )
    r = render(n, topic=TOPIC)
    assert (r.collapse_id, r.expiration) == ("c1", 1_900_000_000)
    assert json.loads(r.body) == {
        "aps": {
            "alert": {"title": "t", "loc-key": "K", "loc-args": ["a", "b"]},
            "sound": {"critical": 1, "name": "alarm.caf", "volume": 0.7},
            "thread-id": "th",
            "interruption-level": "time-sensitive",
            "relevance-score": 0.5,
            "target-content-id": "w1",
            "filter-criteria": "work",
        },
        "extra": [1, 2],
    }


def test_background_push_is_priority_5_and_content_available_only() -> None:
    r = render(Notification(content_available=True, user_info={"k": "v"}), topic=TOPIC)
    assert (r.push_type, r.priority) == ("background", 5)
    assert json.loads(r.body) == {"aps": {"content-available": 1}, "k": "v"}
    with pytest.raises(NotificationError) as exc:
        render(Notification(content_available=True, push_type="background", priority=10), topic=TOPIC)
    assert exc.value.field == "priority"
    with pytest.raises(NotificationError) as exc:
        render(Notification(title="x", push_type="background"), topic=TOPIC)
    assert exc.value.field == "push_type"


@pytest.mark.parametrize("push_type", sorted(TOPIC_SUFFIX))
def test_topic_suffix_per_push_type(push_type: str) -> None:
    n = Notification(title="x", push_type=push_type, priority=5)
    if push_type == "background":
        n = Notification(content_available=True, push_type="background")
    r = render(n, topic=TOPIC)
    assert r.topic == TOPIC + TOPIC_SUFFIX[push_type]
    assert r.push_type == push_type


def test_live_activity_fields() -> None:
    n = Notification.from_dict(
        {
            "timestamp": 1_700_000_000,
            "event": "update",
            "content-state": {"score": "1-0"},
            "stale_date": 1_700_000_600,
        }
    )
    r = render(n, topic=TOPIC)
    assert (r.push_type, r.topic) == ("liveactivity", TOPIC + ".push-type.liveactivity")
    assert json.loads(r.body)["aps"] == {
        "timestamp": 1_700_000_000,
        "event": "update",
        "content-state": {"score": "1-0"},
        "stale-date": 1_700_000_600,
    }


def test_payload_size_limits() -> None:
    big = "x" * 4100
    with pytest.raises(PayloadTooLargeError) as exc:
        render(Notification(body=big), topic=TOPIC)
    assert (exc.value.limit, exc.value.field) == (4096, "payload")
    assert exc.value.size > 4096
    render(Notification(body="x" * 4500, push_type="voip"), topic=TOPIC)  # VoIP allows 5120
    with pytest.raises(PayloadTooLargeError) as exc:
        render(Notification(body="x" * 5200, push_type="voip"), topic=TOPIC)
    assert exc.value.limit == 5120


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "notification"),
        ({"title": "x", "apns-collapse-id": "é" * 33}, "collapse_id"),
        ({"title": "x", "priority": 7}, "priority"),
        ({"title": "x", "push_type": "banner"}, "push_type"),
        ({"title": "x", "sound": {"name": "a", "volume": 1.5}}, "sound.volume"),
        ({"title": "x", "sound": {"name": "a", "loud": 1}}, "sound"),
        ({"title": "x", "userInfo": {"when": object()}}, "user_info"),
        ({"title": "x", "userInfo": "not an object"}, "user_info"),
        ({"title": "x", "badge": "three"}, "badge"),
        ({"title": 5}, "title"),
        ({"title": "x", "colour": "#fff"}, "colour"),
        ({"title": "x", "color": "red"}, "color"),
        ({"title": "x", "interruption-level": "loud"}, "interruption_level"),
        ({"title": "x", "ttl": -1}, "ttl"),
        ({"title": "x", "userInfo": {"aps": {}}}, "user_info"),
    ],
)
def test_invalid_notifications_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(NotificationError) as exc:
        Notification.from_dict(data)
    assert exc.value.field == field
    assert str(exc.value)


def test_ttl_becomes_absolute_expiration() -> None:
    from pushrelay.notification import expiration_from_ttl

    assert expiration_from_ttl(3600, now=1_700_000_000.5) == 1_700_003_600
    n = Notification.from_dict({"title": "x", "ttl": 60})
    assert n.expiration is not None and n.expiration > 1_700_000_000


def test_to_dict_round_trips() -> None:
    n = Notification.from_dict(
        {"title": "x", "imageUrl": "https://e/i", "userInfo": {"a": 1}, "loc-args": ["z"]}
    )
    assert Notification.from_dict(n.to_dict()) == n
