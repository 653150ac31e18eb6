"""[apps.X.fcm] settings: typed values, paths relative to the config file, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenshapes import fcm_token

from pushrelay import ConfigurationError, Notification
from pushrelay.fcm import FcmSettings
from pushrelay.sandbox.fcm import FcmSandbox


def test_minimal(tmp_path: Path) -> None:
    config = tmp_path / "pushrelay.toml"
    s = FcmSettings.from_mapping({"service_account_file": "keys/sa.json"}, file=config)
    assert s.service_account_file == tmp_path / "keys" / "sa.json"
    assert (s.mapping, s.base_url, s.project_id, s.token_uri) == (
        "4d",
        "https://fcm.googleapis.com",
        None,
        None,
    )


def test_4d_spelling_of_the_project(tmp_path: Path) -> None:
    s = FcmSettings.from_mapping(
        {"service_account_file": "/k/sa.json", "project": "p1"}, file=tmp_path / "c.toml"
    )
    assert s.project_id == "p1" and s.service_account_file == Path("/k/sa.json")


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ({"serverKey": "AAAA"}, "fcm.serverKey", "legacy FCM server-key API was shut down"),
        ({}, "fcm.service_account_file", "missing"),
        ({"service_account_file": "a.json", "mapping": "ios"}, "fcm.mapping", "'4d' or 'standard'"),
        ({"service_account_file": "a.json", "base_url": "http://fcm"}, "fcm.base_url", "https://"),
        ({"service_account_file": "a.json", "colour": "red"}, "fcm.colour", "unknown key"),
        ({"service_account_file": 3}, "fcm.service_account_file", "expected a file path"),
    ],
)
def test_errors_name_the_key_and_file(
    tmp_path: Path, table: dict[str, object], key: str, message: str
) -> None:
    config = tmp_path / "pushrelay.toml"
    with pytest.raises(ConfigurationError) as info:
        FcmSettings.from_mapping(table, file=config)
    assert info.value.field == key and info.value.file == str(config)
    assert message in str(info.value) and str(config) in str(info.value)
    assert "AAAA" not in str(info.value)


async def test_settings_build_a_working_client(tmp_path: Path) -> None:
    async with FcmSandbox() as sb:
        key = sb.create_service_account(tmp_path, project_id="from-file")
        settings = FcmSettings.from_mapping(
            {
                "service_account_file": key.name,
                "base_url": sb.url,
                "ca_file": str(sb.ca_file),
                "mapping": "standard",
                "channel_id": "news",
            },
            file=tmp_path / "pushrelay.toml",
        )
        async with settings.client() as client:
            assert (await client.send(Notification(title="hi"), fcm_token("tok"))).ok
        (got,) = sb.received(fcm_token("tok"))
        assert got.project_id == "from-file"
        assert got.message["android"]["notification"]["channel_id"] == "news"


def test_quota_backoff_defaults_to_a_minute_and_can_be_lowered(tmp_path: Path) -> None:
    base = {"service_account_file": "sa.json"}
    assert FcmSettings.from_mapping(base, file=tmp_path / "c.toml").quota_backoff == 60.0
    assert FcmSettings.from_mapping({**base, "quota_backoff": 1.5}).quota_backoff == 1.5
    for bad in (0, -1, "60", True):
        with pytest.raises(ConfigurationError) as info:
            FcmSettings.from_mapping({**base, "quota_backoff": bad}, file=tmp_path / "c.toml")
        assert info.value.field == "fcm.quota_backoff" and "seconds" in str(info.value)


async def test_the_client_honours_the_quota_backoff_setting(tmp_path: Path) -> None:
    async with FcmSandbox() as sb:
        key = sb.create_service_account(tmp_path, project_id="p")
        table = {"service_account_file": str(key), "base_url": sb.url, "ca_file": str(sb.ca_file)}
        settings = FcmSettings.from_mapping({**table, "quota_backoff": 2})
        sb.script(fcm_token("busy"), "quota_exceeded", times=2, retry_after=1)
        async with settings.client() as client:
            assert (await client.send(Notification(title="hi"), fcm_token("busy"))).retry_after == 2.0
        sb.script(fcm_token("busy"), "quota_exceeded", times=1, retry_after=5)
        async with settings.client() as client:  # Retry-After above the floor wins
            assert (await client.send(Notification(title="hi"), fcm_token("busy"))).retry_after == 5.0
