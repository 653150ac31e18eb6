"""Service-account loading and the OAuth access tokens: cache, early refresh, single flight, errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tokenshapes import fcm_token

from pushrelay import CredentialsError, Notification, Outcome, TransportError
from pushrelay.fcm import FcmClient, ServiceAccount
from pushrelay.sandbox.fcm import FcmSandbox
from pushrelay.sandbox.oauth import OAuthSandbox

from .conftest import PROJECT

N = Notification(title="Hello")


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_token_is_cached_and_refreshed_a_few_minutes_early(
    fcm_sandbox: FcmSandbox, tmp_path: Path
) -> None:
    clock = FakeClock()
    key = fcm_sandbox.create_service_account(tmp_path, project_id=PROJECT)
    account = ServiceAccount.from_file(key, ca_file=fcm_sandbox.ca_file, clock=clock)
    async with FcmClient(account, base_url=fcm_sandbox.url, ca_file=fcm_sandbox.ca_file) as client:
        assert (await client.send(N, fcm_token("a"))).ok
        assert (await client.send(N, fcm_token("b"))).ok
        assert fcm_sandbox.oauth.issued == 1
        first_expiry = account.expires_at
        clock.now = first_expiry - 600  # ten minutes left: still fine
        assert (await client.send(N, fcm_token("c"))).ok
        assert fcm_sandbox.oauth.issued == 1
        clock.now = first_expiry - 200  # inside the five-minute margin: mint a new one
        assert (await client.send(N, fcm_token("d"))).ok
        assert fcm_sandbox.oauth.issued == 2
        assert account.refresh_count == 2


async def test_refresh_is_single_flight(fcm_sandbox: FcmSandbox, own_service_account: ServiceAccount) -> None:
    async with FcmClient(
        own_service_account, base_url=fcm_sandbox.url, ca_file=fcm_sandbox.ca_file
    ) as client:
        results = await asyncio.gather(*(client.send(N, fcm_token(f"t{i}")) for i in range(50)))
    assert all(r.ok for r in results)
    assert fcm_sandbox.oauth.issued == 1


async def test_revoked_token_is_replaced_once(
    fcm_sandbox: FcmSandbox, own_service_account: ServiceAccount
) -> None:
    async with FcmClient(own_service_account, base_url=fcm_sandbox.url, ca_file=fcm_sandbox.ca_file) as fcm:
        assert (await fcm.send(N, fcm_token("a"))).ok
        fcm_sandbox.oauth.revoke_all(own_service_account.client_email)
        refused = await fcm.send(N, fcm_token("b"))  # one request: the client does not retry on its own
        assert fcm_sandbox.oauth.issued == 1
        result = await fcm.send(N, fcm_token("b"))  # the caller's next attempt mints a new token
    assert (refused.outcome, refused.status, refused.attempts) == (Outcome.RETRY, 401, 1)
    assert refused.reason is not None and refused.reason.startswith("UNAUTHENTICATED")
    assert result.ok and result.attempts == 1
    assert fcm_sandbox.oauth.issued == 2


async def test_a_replacement_token_refused_too_is_a_configuration_error(
    fcm_sandbox: FcmSandbox, own_service_account: ServiceAccount
) -> None:
    async with FcmClient(own_service_account, base_url=fcm_sandbox.url, ca_file=fcm_sandbox.ca_file) as fcm:
        fcm_sandbox.oauth.revoke_all(own_service_account.client_email)  # nothing minted yet: no effect
        assert (await fcm.send(N, fcm_token("a"))).ok
        fcm_sandbox.oauth.revoke_all(own_service_account.client_email)
        first = await fcm.send(N, fcm_token("b"))
        await own_service_account.access_token()  # the replacement...
        fcm_sandbox.oauth.revoke_all(own_service_account.client_email)  # ...is refused as well
        second = await fcm.send(N, fcm_token("b"))
    assert first.outcome is Outcome.RETRY
    assert (second.outcome, second.status) == (Outcome.CONFIG_BROKEN, 401)


async def test_unknown_service_account_is_a_configuration_error(
    fcm_sandbox: FcmSandbox, tmp_path: Path
) -> None:
    # A key the token endpoint never issued (another sandbox's): the grant is refused.
    async with OAuthSandbox() as other:
        foreign = other.create_service_account(tmp_path, project_id="demo")
    info = json.loads(foreign.read_text())
    info["token_uri"] = fcm_sandbox.token_uri
    foreign.write_text(json.dumps(info))
    account = ServiceAccount.from_file(foreign, ca_file=fcm_sandbox.ca_file)
    with pytest.raises(CredentialsError) as exc_info:
        await account.access_token()
    assert "invalid_grant" in str(exc_info.value) and str(foreign) in str(exc_info.value)
    assert info["private_key"].splitlines()[1] not in str(exc_info.value)
    async with FcmClient(account, base_url=fcm_sandbox.url, ca_file=fcm_sandbox.ca_file) as client:
        result = await client.send(N, fcm_token("tok"))
    assert result.outcome is Outcome.CONFIG_BROKEN
    assert fcm_sandbox.stats == {}  # nothing reached messages:send


async def test_token_endpoint_unreachable_is_transient(
    service_account_file: Path, fcm_sandbox: FcmSandbox
) -> None:
    account = ServiceAccount.from_file(
        service_account_file, token_uri="https://127.0.0.1:9/token", ca_file=fcm_sandbox.ca_file
    )
    with pytest.raises(TransportError):
        await account.access_token()


def test_standalone_oauth_sandbox_in_a_thread(tmp_path: Path) -> None:
    with OAuthSandbox.running() as oauth:
        key = oauth.create_service_account(tmp_path, project_id="p1")
        account = ServiceAccount.from_file(key, ca_file=oauth.ca_file)
        token = asyncio.run(account.access_token())
    assert token.startswith("ya29.")
    assert oauth.service.issued == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"project_info": {}, "client": []}', "google-services.json"),
        ('{"type": "authorized_user"}', '"type" must be "service_account"'),
        ('{"type": "service_account", "project_id": "p"}', "lacks client_email, private_key"),
        (
            '{"type": "service_account", "project_id": "p", "client_email": "a@b", "private_key": "nope"}',
            "private_key is not a readable PEM RSA private key",
        ),
    ],
)
def test_bad_service_account_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "sa.json"
    path.write_text(content)
    with pytest.raises(CredentialsError) as info:
        ServiceAccount.from_file(path)
    assert message in str(info.value)
    assert info.value.file == str(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as info:
        ServiceAccount.from_file(tmp_path / "nope.json")
    assert "does not exist" in str(info.value) and info.value.field == "service_account_file"


def test_repr_shows_no_secret(service_account: ServiceAccount) -> None:
    assert repr(service_account) == (
        f"ServiceAccount({service_account.client_email!r}, project_id={service_account.project_id!r})"
    )
