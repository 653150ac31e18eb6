"""Fixtures for the APNs sandbox tests: a running sandbox with a controllable clock, a key, a client."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest

from pushrelay.sandbox import ApnsSandbox

from .h2client import H2Response, H2TestClient

TEAM = "TEAM123456"
KEY_ID = "ABC123DEFG"
BUNDLE = "com.sample.myappname"


class FakeClock:
    """A clock the test moves by hand (seconds since the epoch)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def new_token(length: int = 64) -> str:
    return secrets.token_hex(length // 2)


def make_jwt(
    key_file: Path, *, team: str = TEAM, key_id: str = KEY_ID, iat: float, **extra_claims: Any
) -> str:
    return jwt.encode(
        {"iss": team, "iat": int(iat), **extra_claims},
        key_file.read_bytes(),
        algorithm="ES256",
        headers={"kid": key_id},
    )


ALERT = json.dumps(
    {"aps": {"alert": {"title": "This is title", "body": "Here is the content of this notification"}}}
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(clock: FakeClock, tmp_path: Path) -> AsyncIterator[ApnsSandbox]:
    async with ApnsSandbox(clock=clock, directory=tmp_path / "sandbox") as sb:
        sb.create_key(TEAM, KEY_ID, tmp_path)
        sb.add_topic(BUNDLE, TEAM)
        yield sb


Issue = Callable[..., str]


@pytest.fixture
def issue(sandbox: ApnsSandbox) -> Issue:
    """``issue(length=64, topic=BUNDLE, environment=None)``: a device token the strict sandbox issued."""

    def _issue(length: int = 64, topic: str = BUNDLE, environment: str | None = None) -> str:
        return sandbox.issue_token(topic, environment, token=new_token(length))  # type: ignore[arg-type]

    return _issue


@pytest.fixture
def key_file(tmp_path: Path, sandbox: ApnsSandbox) -> Path:
    return tmp_path / f"AuthKey_{KEY_ID}.p8"


@pytest.fixture
def bearer(key_file: Path, clock: FakeClock) -> str:
    return "bearer " + make_jwt(key_file, iat=clock.now)


@pytest.fixture
async def client(sandbox: ApnsSandbox) -> AsyncIterator[H2TestClient]:
    c = await H2TestClient.connect(sandbox.url, sandbox.ca_file)
    yield c
    await c.close()


Sender = Callable[..., Any]


@pytest.fixture
def send(client: H2TestClient, bearer: str, issue: Issue) -> Sender:
    """``await send(token, body=..., **header overrides)``; a header set to None is left out."""

    async def _send(
        token: str | None = None,
        *,
        body: bytes | str = ALERT,
        via: H2TestClient | None = None,
        method: str = "POST",
        path: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        **overrides: str | None,
    ) -> H2Response:
        headers: dict[str, str | None] = {
            "authorization": bearer,
            "apns-topic": BUNDLE,
            "apns-push-type": "alert",
        }
        headers.update({name.replace("_", "-"): value for name, value in overrides.items()})
        header_list = [(k, v) for k, v in headers.items() if v is not None] + list(extra or [])
        if path is None:
            path = f"/3/device/{token if token is not None else issue()}"
        data = body.encode() if isinstance(body, str) else body
        return await (via or client).request(method, path, header_list, data)

    return _send
