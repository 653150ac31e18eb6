"""One FCM sandbox (with its OAuth endpoint) per test module, reset before every test.

The sandbox runs in a background thread (``FcmSandbox.running()``) so that it outlives each test's
event loop; the tests talk to it over real sockets as any client would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pushrelay.fcm import FcmClient, ServiceAccount
from pushrelay.sandbox.fcm import FcmSandbox

PROJECT = "demo-project"


@pytest.fixture(scope="module")
def fcm_sandbox() -> Iterator[FcmSandbox]:
    with FcmSandbox.running() as sb:
        yield sb


@pytest.fixture(autouse=True)
def _fresh_sandbox(request: pytest.FixtureRequest) -> None:
    if "fcm_sandbox" in request.fixturenames:
        request.getfixturevalue("fcm_sandbox").reset()


@pytest.fixture(scope="module")
def service_account_file(fcm_sandbox: FcmSandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fcm_sandbox.create_service_account(tmp_path_factory.mktemp("keys"), project_id=PROJECT)


@pytest.fixture(scope="module")
def service_account(fcm_sandbox: FcmSandbox, service_account_file: Path) -> ServiceAccount:
    """Shared by the module's tests (its access token too, as in production)."""
    return ServiceAccount.from_file(service_account_file, ca_file=fcm_sandbox.ca_file)


@pytest.fixture
def own_service_account(fcm_sandbox: FcmSandbox, tmp_path: Path) -> ServiceAccount:
    """A service account of this test alone (for tests that count or revoke its tokens)."""
    key = fcm_sandbox.create_service_account(tmp_path, project_id=PROJECT)
    return ServiceAccount.from_file(key, ca_file=fcm_sandbox.ca_file)


@pytest.fixture
async def fcm(fcm_sandbox: FcmSandbox, service_account: ServiceAccount) -> AsyncIterator[FcmClient]:
    async with FcmClient(service_account, base_url=fcm_sandbox.url, ca_file=fcm_sandbox.ca_file) as client:
        yield client
