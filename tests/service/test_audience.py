"""The worker resolves recipients with the library's rules (one implementation for both)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tokenshapes import fcm_token

from pushrelay.config import Config, config_from_dict
from pushrelay.fourd.messages import messages
from pushrelay.fourd.recipients import parse_recipients
from pushrelay.fourd.targets import plan_send, stream_all, stream_refs
from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue.interface import ExpansionJob, Recipients
from pushrelay.registry import DeviceRegistry
from pushrelay.worker.registry_audience import RegistryAudience


def tok(n: int) -> str:
    return f"{n:064x}"


RAW = "ab" * 32
ANDROID = fcm_token("android")


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Config:
    apns = {
        "team_id": "TEAM123456",
        "key_file": str(tmp_path / "AuthKey_ABC123DEFG.p8"),
        "environment": "development",
    }
    return config_from_dict(
        {
            "database": {"url": database_url},
            "apps": {
                "myapp": {"bundle_id": "com.sample.myapp", "apns": apns},
                "strict": {"bundle_id": "com.sample.strict", "registered_tokens_only": True},
            },
        }
    )


@pytest.fixture
def registry(config: Config) -> Iterator[DeviceRegistry]:
    with DeviceRegistry(config.database.url) as reg:
        reg.register("myapp", tok(1), email="a@x.com")
        reg.register("myapp", tok(2), email="A@X.com", environment="production")
        reg.register("myapp", tok(3), email="a@x.com")
        reg.register("myapp", ANDROID, platform="android", email="a@x.com")
        reg.retire("myapp", tok(3), "410 Unregistered")
        yield reg


def _job(app: str, *, emails: tuple[str, ...] = (), tokens: tuple[str, ...] = (), all_: bool = False,
         targets: tuple[str, ...] = (), cursor: str | None = None) -> ExpansionJob:  # fmt: skip
    return ExpansionJob("n1", app, Recipients(emails, tokens, all_), targets, cursor)


def test_explicit_recipients_follow_the_library(config: Config, registry: DeviceRegistry) -> None:
    audience = RegistryAudience(registry, config.app)
    given = ["A@x.com", "nobody@x.com", "a@X.com", tok(1), "<" + RAW.upper() + ">"]
    job = _job("myapp", emails=("A@x.com", "nobody@x.com", "a@X.com"), tokens=(tok(1), "<" + RAW.upper() + ">"),
               targets=("ios",))  # fmt: skip
    exp = audience.expand(job, chunk=2)
    chunks = [devices for devices, cursor in exp.chunks]
    assert [len(c) for c in chunks] == [2, 1]  # tok(1) once, though reached twice
    assert [d for c in chunks for d in c] == [
        ("ios", tok(1), "development", "a@x.com"),  # the app's environment
        ("ios", tok(2), "production", "A@X.com"),  # the device's own
        ("ios", RAW, "development", None),  # normalised, sent although unregistered
    ]
    library = plan_send(registry, config.app("myapp"), parse_recipients(given), ("ios",))
    assert exp.warnings == library.warnings
    assert exp.warnings[0].startswith("Skipped retired device [A@x.com ; 000000…0003]")
    assert exp.warnings[1:] == [
        messages.no_session("nobody@x.com"),
        messages.unregistered_sent("<" + RAW.upper() + ">", "myapp"),
    ]
    assert exp.errors == []

    strict = audience.expand(_job("strict", tokens=(RAW,)), chunk=10)
    assert [d for c, _ in strict.chunks for d in c] == []
    assert strict.warnings == [messages.unregistered_refused(RAW, "strict")]


def test_everyone_streams_with_a_resumable_cursor(config: Config, registry: DeviceRegistry) -> None:
    audience = RegistryAudience(registry, config.app)
    exp = audience.expand(_job("myapp", all_=True), chunk=2)
    assert exp.warnings == [messages.retired_skipped("myapp", 1)] and exp.errors == []
    first, cursor = next(exp.chunks)
    assert [d[1] for d in first] == [tok(1), tok(2)]
    # a worker that crashed after the first chunk: the next one resumes after its cursor
    resumed = audience.expand(_job("myapp", all_=True, cursor=cursor), chunk=2)
    assert [d for c, _ in resumed.chunks for d in c] == [("android", ANDROID, None, "a@x.com")]
    assert audience.expand(_job("strict", all_=True), chunk=2).errors == [messages.NO_RECIPIENT_FOUND]


def test_the_send_stream_gives_the_library_targets_page_by_page(
    config: Config, registry: DeviceRegistry
) -> None:
    """What a send reads (``stream_refs``: a few columns, no record per device) is what the
    library's ``stream_all`` gives: the active devices, the app's APNs environment for an iOS
    device without its own, none for Android; resumable after a page's last device id."""
    app = config.app("myapp")
    platforms = ("ios", "android", "web")
    want = [(t.platform, t.token, t.environment, t.email) for _id, t in stream_all(registry, app, platforms)]
    assert want == [
        ("ios", tok(1), "development", "a@x.com"),
        ("ios", tok(2), "production", "A@X.com"),
        ("android", ANDROID, None, "a@x.com"),
    ]
    pages = list(stream_refs(registry, app, platforms, page=2))
    assert [refs for refs, _last in pages] == [want[:2], want[2:]]
    resumed = list(stream_refs(registry, app, platforms, after=pages[0][1], page=2))
    assert [refs for refs, _last in resumed] == [want[2:]]
    assert [refs for refs, _ in stream_refs(registry, app, ("android",))] == [want[2:]]


def test_dead_tokens_are_retired_as_the_library_does(config: Config, registry: DeviceRegistry) -> None:
    audience = RegistryAudience(registry, config.app)
    dead = DeliveryResult(tok(1), Outcome.TOKEN_DEAD, 410, "Unregistered")
    assert audience.retire("myapp", [dead], sent_at=datetime.now(UTC)) == [tok(1)]
    device = registry.get("myapp", tok(1))
    assert device is not None and not device.active and device.retired_reason == "410 Unregistered"
    # a device that registered again after the send is kept
    registry.register("myapp", tok(2), email="a@x.com")
    assert audience.retire("myapp", [DeliveryResult(tok(2), Outcome.TOKEN_DEAD, 400, "BadDeviceToken")],
                           sent_at=datetime(2020, 1, 1, tzinfo=UTC)) == []  # fmt: skip
