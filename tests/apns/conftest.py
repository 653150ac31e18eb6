from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pushrelay.apns import ApnsClient, TokenAuth
from pushrelay.sandbox import ApnsSandbox

TEAM, KEY_ID, BUNDLE = "TEAM123456", "ABC123DEFG", "com.sample.myappname"


class FakeClock:
    """A clock the test moves by hand, shared by the sandbox and the client's TokenAuth."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def issue_devices(sandbox: ApnsSandbox, count: int = 3000) -> None:
    """The strict sandbox knows only tokens it issued: bind the tests' ``f"{i:064x}"`` tokens to the app."""
    for i in range(count):
        sandbox.issue_token(BUNDLE, token=f"{i:064x}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[ApnsSandbox]:
    async with ApnsSandbox(directory=tmp_path / "sandbox") as sb:
        sb.add_topic(BUNDLE, TEAM)
        issue_devices(sb)
        yield sb


@pytest.fixture
def key_file(sandbox: ApnsSandbox, tmp_path: Path) -> Path:
    return sandbox.create_key(TEAM, KEY_ID, tmp_path)


@pytest.fixture
def make_client(sandbox: ApnsSandbox, key_file: Path) -> Callable[..., ApnsClient]:
    def make(**kwargs: Any) -> ApnsClient:
        auth = kwargs.pop("auth", None) or TokenAuth.from_file(key_file, team_id=TEAM)
        return ApnsClient(auth, topic=BUNDLE, endpoint=sandbox.url, ca_file=sandbox.ca_file, **kwargs)

    return make
