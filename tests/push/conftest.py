"""A running APNs sandbox, an app configured for it, and the registry on SQLite / PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pushrelay.config import Config, config_from_dict
from pushrelay.registry import DeviceRegistry
from pushrelay.sandbox import ApnsSandbox

TEAM, KEY_ID, BUNDLE = "TEAM123456", "ABC123DEFG", "com.sample.myappname"


def tok(n: int) -> str:
    return f"{n:064x}"


def issue_devices(sandbox: ApnsSandbox, count: int = 100) -> None:
    """The strict sandbox knows only tokens it issued: bind ``tok(1)``..``tok(count)`` to the app."""
    for n in range(1, count + 1):
        sandbox.issue_token(BUNDLE, token=tok(n))


def app_settings(sandbox: ApnsSandbox, key_file: Path, **extra: object) -> dict[str, object]:
    return {
        "bundle_id": BUNDLE,
        "apns": {
            "team_id": TEAM,
            "key_file": str(key_file),
            "endpoint": sandbox.url,
            "ca_file": str(sandbox.ca_file),
        },
        **extra,
    }


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[ApnsSandbox]:
    async with ApnsSandbox(directory=tmp_path / "sandbox") as sb:
        sb.add_topic(BUNDLE, TEAM)
        issue_devices(sb)
        yield sb


@pytest.fixture
def key_file(sandbox: ApnsSandbox, tmp_path: Path) -> Path:
    return sandbox.create_key(TEAM, KEY_ID, tmp_path / "keys")


@pytest.fixture
def config(sandbox: ApnsSandbox, key_file: Path, database_url: str) -> Config:
    return config_from_dict(
        {"database": {"url": database_url}, "apps": {"myapp": app_settings(sandbox, key_file)}}
    )


@pytest.fixture
def registry(config: Config) -> Iterator[DeviceRegistry]:
    with DeviceRegistry(config.database.url) as reg:
        yield reg
