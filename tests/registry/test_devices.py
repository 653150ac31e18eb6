"""The device registry on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from tokenshapes import fcm_token

from pushrelay.registry import DeviceInfo, DeviceRegistry, InvalidDeviceError

_P256DH = base64.urlsafe_b64encode(b"\x04" + b"k" * 64).decode().rstrip("=")
_AUTH = base64.urlsafe_b64encode(b"a" * 16).decode().rstrip("=")


def tok(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def registry(database_url: str) -> Iterator[DeviceRegistry]:
    with DeviceRegistry(database_url) as reg:
        yield reg


def test_register_then_find_by_email_case_insensitively(registry: DeviceRegistry) -> None:
    r = registry.register("myapp", tok(1), email="Test@4D.com", os="iOS", device_model="iPhone 15")
    assert r.status == "created" and r.device.id > 0
    found = list(registry.for_emails("myapp", ["test@4d.com"]))
    assert [d.token for d in found] == [tok(1)]
    assert found[0].email == "Test@4D.com"  # stored as given
    assert list(registry.for_emails("other-app", ["test@4d.com"])) == []


def test_registering_again_updates_moves_email_and_is_idempotent(registry: DeviceRegistry) -> None:
    registry.register("myapp", tok(1), email="a@x.com", app_version="1.0")
    again = registry.register("myapp", tok(1), email="b@x.com", app_version="1.1")
    assert again.status == "updated"
    assert again.device.email == "b@x.com" and again.device.app_version == "1.1"
    assert list(registry.for_emails("myapp", ["a@x.com"])) == []
    assert [d.email for d in registry.for_emails("myapp", ["B@X.COM"])] == ["b@x.com"]
    assert registry.count("myapp") == 1

    seen = datetime(2030, 1, 1, tzinfo=UTC)
    first = registry.register("myapp", tok(2), email="c@x.com", seen_at=seen)
    same = registry.register("myapp", tok(2), email="c@x.com", seen_at=seen)
    assert (first.status, same.status) == ("created", "unchanged")


def test_an_older_registration_does_not_undo_a_newer_one(registry: DeviceRegistry) -> None:
    now = datetime.now(UTC)
    registry.register("myapp", tok(1), email="new@x.com", seen_at=now)
    stale = registry.register("myapp", tok(1), email="old@x.com", seen_at=now - timedelta(days=3))
    assert stale.status == "unchanged" and stale.device.email == "new@x.com"


def test_a_token_belongs_to_one_app_and_a_user_has_many_devices(registry: DeviceRegistry) -> None:
    registry.register("app-a", tok(1), email="u@x.com")
    registry.register("app-b", tok(1), email="u@x.com")
    registry.register("app-a", tok(2), email="u@x.com", os="iPadOS")
    assert len(list(registry.for_emails("app-a", ["u@x.com"]))) == 2
    assert len(list(registry.for_emails("app-b", ["u@x.com"]))) == 1


def test_token_spellings_find_the_same_device(registry: DeviceRegistry) -> None:
    registry.register("myapp", tok(0xABC))
    decorated = "<" + tok(0xABC).upper() + ">"
    assert registry.get("myapp", decorated) is not None
    assert registry.register("myapp", decorated).device.token == tok(0xABC)  # refreshed, not added
    assert registry.count("myapp") == 1


def test_web_push_endpoint_longer_than_an_index_entry(registry: DeviceRegistry) -> None:
    endpoint = "https://updates.push.services.mozilla.com/wpush/v2/" + "A" * 1900
    p256dh = base64.urlsafe_b64encode(b"\x04" + b"k" * 64).decode().rstrip("=")
    auth = base64.urlsafe_b64encode(b"s" * 16).decode().rstrip("=")
    r = registry.register(
        "myapp", endpoint, platform="web", email="w@x.com", web_p256dh=p256dh, web_auth=auth
    )
    assert r.device.token == endpoint and r.device.web_auth == auth
    assert registry.get("myapp", endpoint) is not None
    assert (
        registry.register("myapp", endpoint, platform="web", web_p256dh=p256dh, web_auth=auth).status
        == "updated"
    )
    assert "A" * 50 not in repr(r.device)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"platform": "ios", "token": "nope"}, "token"),
        ({"platform": "windows", "token": "x"}, "platform"),
        ({"platform": "ios", "token": tok(1), "email": "not-an-email"}, "email"),
        ({"platform": "android", "token": fcm_token("1"), "environment": "development"}, "environment"),
        ({"platform": "ios", "token": tok(1), "environment": "staging"}, "environment"),
        ({"platform": "web", "token": "https://push.example/x"}, "web_p256dh"),
        ({"platform": "ios", "token": tok(1), "language": "x" * 100}, "language"),
    ],
)
def test_invalid_registrations_name_the_field(sqlite_url: str, fields: dict[str, str], field: str) -> None:
    # validation only: once is enough, on SQLite
    with DeviceRegistry(sqlite_url) as registry:
        with pytest.raises(InvalidDeviceError) as info:
            registry.register_many([DeviceInfo(app="myapp", **fields)])
        assert info.value.field == field
        assert registry.count("myapp", include_retired=True) == 0


def test_resolving_thousands_of_emails_in_chunks(registry: DeviceRegistry) -> None:
    infos = [DeviceInfo("myapp", tok(i), email=f"user{i}@x.com") for i in range(1200)]
    results = registry.register_many(infos, chunk_size=400)
    assert [r.status for r in results] == ["created"] * 1200
    wanted = [f"USER{i}@x.com" for i in range(1200)] + ["nobody@x.com"]
    found = list(registry.for_emails("myapp", wanted))
    assert len(found) == 1200 and len({d.id for d in found}) == 1200


def test_stream_pages_through_every_active_device(registry: DeviceRegistry) -> None:
    registry.register_many(DeviceInfo("myapp", tok(i)) for i in range(25))
    registry.register("myapp", fcm_token("1"), platform="android")
    registry.register("other", tok(99))
    registry.retire("myapp", tok(3), "410 Unregistered")
    streamed = list(registry.stream("myapp", page_size=4))
    assert len(streamed) == 25  # 25 + android - retired
    assert [d.id for d in streamed] == sorted(d.id for d in streamed)
    assert len(list(registry.stream("myapp", platforms=["ios"], page_size=7))) == 24
    assert len(list(registry.stream("myapp", include_retired=True))) == 26
    assert registry.count("myapp") == 25 and registry.count("myapp", platforms=["android"]) == 1
    assert registry.apps() == {"myapp": 25, "other": 1}


def test_page_walks_an_apps_devices_by_keyset(registry: DeviceRegistry) -> None:
    for i in range(10):  # one by one: ids in this order (register_many does not promise an order)
        registry.register("myapp", tok(i), email=f"u{i % 3}@4d.com")
    registry.register("other", tok(1), email="u1@4d.com")
    registry.retire("myapp", tok(4), "410 Unregistered")
    seen: list[str] = []
    after = 0
    while True:
        page = registry.page("myapp", after=after, limit=3)
        seen += [d.token for d in page.items]
        if page.next_after is None:
            break
        assert page.next_after == page.items[-1].id
        after = page.next_after
    assert seen == [tok(i) for i in range(10)]  # retired ones too, other apps never
    # the last full page says there is no next one
    assert registry.page("myapp", limit=10).next_after is None
    assert registry.page("myapp", limit=9).next_after is not None
    # e-mail: case-insensitive and trimmed, within the app
    by_email = registry.page("myapp", email=" U1@4D.com ")
    assert [d.token for d in by_email.items] == [tok(1), tok(4), tok(7)]
    assert not by_email.items[1].active and by_email.items[1].retired_reason == "410 Unregistered"
    assert registry.page("myapp", email="nobody@4d.com").items == []


def test_page_by_token_prefix_is_literal(registry: DeviceRegistry) -> None:
    endpoint = "https://push.example.net/wp/" + "x_%" * 10
    for i in (0xAB, 0x20, 0x11, 0x10):  # ids in the reverse of token order: pages go by token
        registry.register("myapp", tok(i))
    android = "abc" + fcm_token("page")[3:]
    registry.register("myapp", android, platform="android")
    registry.register("myapp", endpoint, platform="web", web_p256dh=_P256DH, web_auth=_AUTH)
    assert [d.token for d in registry.page("myapp", token_prefix=tok(0x10)[:63]).items] == [
        tok(0x10), tok(0x11)
    ]  # fmt: skip
    assert [d.token for d in registry.page("myapp", token_prefix="ab").items] == [android]
    assert registry.page("myapp", token_prefix="a%").items == []
    assert registry.page("myapp", token_prefix="_b").items == []
    assert [d.token for d in registry.page("myapp", token_prefix=endpoint[:40]).items] == [endpoint]
    # keyset through the matches
    first = registry.page("myapp", token_prefix="0" * 62, limit=1)
    assert [d.token for d in first.items] == [tok(0x10)] and first.next_after is not None
    rest = registry.page("myapp", token_prefix="0" * 62, after=first.next_after, limit=5)
    assert [d.token for d in rest.items] == [tok(0x11), tok(0x20), tok(0xAB)] and rest.next_after is None


def test_retire_and_reactivate(registry: DeviceRegistry) -> None:
    registry.register("myapp", tok(1), email="u@x.com")
    assert registry.retire("myapp", tok(1), "400 BadDeviceToken")
    assert not registry.retire("myapp", tok(1), "again")  # already retired
    device = registry.get("myapp", tok(1))
    assert device is not None and not device.active and device.retired_reason == "400 BadDeviceToken"
    assert list(registry.stream("myapp")) == []
    again = registry.register("myapp", tok(1), email="u@x.com")
    assert again.reactivated and again.device.active and again.device.retired_at is None


def test_retire_keeps_a_device_registered_after_the_verdict(registry: DeviceRegistry) -> None:
    registered = registry.register("myapp", tok(1)).device.last_seen_at
    assert not registry.retire(
        "myapp", tok(1), "410 Unregistered", registered_before=registered - timedelta(seconds=1)
    )
    assert registry.retire("myapp", tok(1), "410 Unregistered", registered_before=registered)


def test_a_registration_older_than_the_retirement_does_not_reactivate(registry: DeviceRegistry) -> None:
    registry.register("myapp", tok(1), seen_at=datetime(2024, 1, 1, tzinfo=UTC))
    registry.retire("myapp", tok(1), "410 Unregistered")
    replay = registry.register("myapp", tok(1), seen_at=datetime(2024, 1, 2, tzinfo=UTC))
    assert not replay.reactivated and not replay.device.active


def test_prune_removes_retired_and_unseen_devices(registry: DeviceRegistry) -> None:
    now = datetime.now(UTC)
    registry.register("myapp", tok(1), seen_at=now - timedelta(days=200))  # unseen for long
    registry.register("myapp", tok(2), seen_at=now - timedelta(days=10))
    registry.retire("myapp", tok(2), "410", at=now - timedelta(days=100))  # retired long ago
    registry.register("myapp", tok(3), seen_at=now - timedelta(days=10))
    registry.retire("myapp", tok(3), "410", at=now - timedelta(days=5))  # retired recently
    registry.register("myapp", tok(4))  # fresh
    registry.register("other", tok(5), seen_at=now - timedelta(days=200))
    assert registry.prune(timedelta(days=90), app="myapp") == 2
    assert {d.token for d in registry.stream("myapp", include_retired=True)} == {tok(3), tok(4)}
    assert registry.prune(timedelta(days=90)) == 1
    with pytest.raises(ValueError, match="positive"):
        registry.prune(timedelta(0))


def test_remove_and_listing(registry: DeviceRegistry) -> None:
    registry.register("myapp", tok(1), email="a@x.com")
    registry.register("myapp", tok(2), email="b@x.com")
    assert [d.email for d in registry.devices(app="myapp", email="A@x.com")] == ["a@x.com"]
    assert len(registry.devices(limit=1)) == 1
    assert registry.remove("myapp", tok(1)) and not registry.remove("myapp", tok(1))
    assert [d.token for d in registry.devices()] == [tok(2)]
    data = registry.devices()[0].to_dict()
    assert data["token"] == tok(2) and data["platform"] == "ios" and isinstance(data["created_at"], str)


def test_the_same_token_twice_in_one_batch(registry: DeviceRegistry) -> None:
    results = registry.register_many(
        [DeviceInfo("myapp", tok(1), email="a@x.com"), DeviceInfo("myapp", tok(1), email="b@x.com")]
    )
    assert [r.status for r in results] == ["created", "updated"]
    assert [d.email for d in registry.stream("myapp")] == ["b@x.com"]


def test_concurrent_registrations_of_one_token(registry: DeviceRegistry) -> None:
    # Two app instances registering the same new token at once: one creates it, the other updates
    # it (the unique index decides; the loser retries), never an error or a duplicate.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda n: registry.register("myapp", tok(7), email=f"u{n}@x.com"), range(12)))
    assert sum(r.status == "created" for r in results) == 1
    assert registry.count("myapp") == 1
