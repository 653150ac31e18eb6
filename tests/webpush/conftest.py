"""A Web Push sandbox and a VAPID identity."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pushrelay.sandbox.webpush import WebPushSandbox
from pushrelay.webpush import VapidKey, WebPushClient


@pytest.fixture
async def wp_sandbox() -> AsyncIterator[WebPushSandbox]:
    async with WebPushSandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def vapid() -> VapidKey:
    return VapidKey.generate(subject="mailto:ops@example.com")


@pytest.fixture
async def webpush(wp_sandbox: WebPushSandbox, vapid: VapidKey) -> AsyncIterator[WebPushClient]:
    async with WebPushClient(
        vapid, allowed_hosts=[wp_sandbox.allowed_host], ca_file=wp_sandbox.ca_file
    ) as client:
        yield client
