"""Token authentication: JWT signature, key id, team, age, refresh rate, one team per connection."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushrelay.sandbox import ApnsSandbox

from .conftest import KEY_ID, TEAM, FakeClock, Sender, make_jwt
from .h2client import H2TestClient


def foreign_key_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize("authorization", [None, "basic dXNlcjpwYXNz", "bearer ", "bearer"])
async def test_missing_provider_token(sandbox: ApnsSandbox, send: Sender, authorization: str | None) -> None:
    response = await send(authorization=authorization)
    assert (response.status, response.reason) == (403, "MissingProviderToken")


async def test_invalid_provider_tokens(
    sandbox: ApnsSandbox, send: Sender, key_file: Path, clock: FakeClock
) -> None:
    now = clock.now
    cases = {
        "not a JWT": "bearer abc.def",
        "unknown kid": "bearer " + make_jwt(key_file, key_id="NOSUCHKEY1", iat=now),
        "iss of another team": "bearer " + make_jwt(key_file, team="OTHERTEAM1", iat=now),
        "signed by another key": "bearer "
        + jwt.encode(
            {"iss": TEAM, "iat": int(now)}, foreign_key_pem(), algorithm="ES256", headers={"kid": KEY_ID}
        ),
        "HS256": "bearer "
        + jwt.encode(
            {"iss": TEAM, "iat": int(now)}, "secret" * 6, algorithm="HS256", headers={"kid": KEY_ID}
        ),
        "iat missing": "bearer "
        + jwt.encode({"iss": TEAM}, key_file.read_bytes(), algorithm="ES256", headers={"kid": KEY_ID}),
        "iat not a number": "bearer "
        + jwt.encode(
            {"iss": TEAM, "iat": "now"}, key_file.read_bytes(), algorithm="ES256", headers={"kid": KEY_ID}
        ),
        "iat 61 s ahead": "bearer " + make_jwt(key_file, iat=now + 61),
    }
    for case, authorization in cases.items():
        response = await send(authorization=authorization)
        assert (response.status, response.reason) == (403, "InvalidProviderToken"), case
    assert sandbox.stats.accepted == 0


async def test_bearer_keyword_is_case_insensitive(sandbox: ApnsSandbox, send: Sender, bearer: str) -> None:
    response = await send(authorization="Bearer " + bearer.split(" ", 1)[1])
    assert response.status == 200


async def test_small_clock_skew_is_tolerated(
    sandbox: ApnsSandbox, send: Sender, key_file: Path, clock: FakeClock
) -> None:
    response = await send(authorization="bearer " + make_jwt(key_file, iat=clock.now + 59))
    assert response.status == 200


async def test_token_expires_after_an_hour(sandbox: ApnsSandbox, send: Sender, clock: FakeClock) -> None:
    assert (await send()).status == 200
    clock.advance(3599)
    assert (await send()).status == 200
    clock.advance(2)
    response = await send()
    assert (response.status, response.reason) == (403, "ExpiredProviderToken")


async def test_too_many_provider_token_updates(
    sandbox: ApnsSandbox, send: Sender, key_file: Path, clock: FakeClock
) -> None:
    first = "bearer " + make_jwt(key_file, iat=clock.now)
    assert (await send(authorization=first)).status == 200

    clock.advance(60)
    second = "bearer " + make_jwt(key_file, iat=clock.now)
    response = await send(authorization=second)
    assert (response.status, response.reason) == (429, "TooManyProviderTokenUpdates")
    assert (await send(authorization=first)).status == 200  # the current token keeps working

    clock.advance(20 * 60 - 60)  # 20 minutes after the first token was first seen
    assert (await send(authorization=second)).status == 200
    assert (await send(authorization=first)).status == 200  # requests signed just before a refresh still pass

    clock.advance(10)
    third = "bearer " + make_jwt(key_file, iat=clock.now)
    response = await send(authorization=third)
    assert (response.status, response.reason) == (429, "TooManyProviderTokenUpdates")
    assert sandbox.stats.rejected["TooManyProviderTokenUpdates"] == 2


async def test_same_token_is_verified_once(sandbox: ApnsSandbox, send: Sender) -> None:
    for _ in range(30):
        assert (await send()).status == 200
    assert sandbox.stats.jwt_verifications == 1


async def test_one_team_per_connection(
    sandbox: ApnsSandbox, send: Sender, client: H2TestClient, clock: FakeClock, tmp_path: Path
) -> None:
    other_key = sandbox.create_key("OTHERTEAM1", "OTHERKEY01", tmp_path / "other")
    sandbox.add_topic("com.other.app", "OTHERTEAM1")
    other = "bearer " + make_jwt(other_key, team="OTHERTEAM1", key_id="OTHERKEY01", iat=clock.now)

    assert (await send()).status == 200
    response = await send(authorization=other, apns_topic="com.other.app")
    assert (response.status, response.reason) == (403, "InvalidProviderToken")

    fresh = await H2TestClient.connect(sandbox.url, sandbox.ca_file)
    try:
        assert (
            await send(
                sandbox.issue_token("com.other.app"),
                authorization=other,
                apns_topic="com.other.app",
                via=fresh,
            )
        ).status == 200
    finally:
        await fresh.close()


async def test_key_restricted_to_another_environment(
    sandbox: ApnsSandbox, send: Sender, clock: FakeClock, tmp_path: Path
) -> None:
    dev_key = sandbox.create_key(TEAM, "DEVKEY0001", tmp_path / "dev", environment="development")
    response = await send(authorization="bearer " + make_jwt(dev_key, key_id="DEVKEY0001", iat=clock.now))
    assert (response.status, response.reason) == (403, "BadEnvironmentKeyIdInToken")


async def test_stream_limit_is_raised_only_by_valid_credentials(
    sandbox: ApnsSandbox, send: Sender, client: H2TestClient
) -> None:
    assert client.max_concurrent_streams == 1
    assert (await send(authorization="bearer nonsense")).status == 403
    assert (await send(authorization=None)).status == 403
    assert client.max_concurrent_streams == 1
    response = await send(apns_priority="7")  # valid token, invalid notification: the token still counts
    assert response.status == 400
    assert client.max_concurrent_streams == 1000
    assert client.max_streams_seen == [1, 1000]


def test_register_key_checks_its_arguments(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    sb = ApnsSandbox()
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(ValueError, match="team_id"):
        sb.register_key("bad team!", KEY_ID, p256)
    with pytest.raises(ValueError, match="key_id"):
        sb.register_key(TEAM, "", p256)
    with pytest.raises(ValueError, match="P-256"):
        sb.register_key(TEAM, KEY_ID, ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(ValueError, match="P-256"):
        sb.register_key(
            TEAM, KEY_ID, rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        )
    with pytest.raises(ValueError, match="bundle_id"):
        sb.add_topic("not a bundle", TEAM)


def test_create_key_writes_a_pkcs8_p256_key(tmp_path: Path) -> None:
    sb = ApnsSandbox()
    path = sb.create_key(TEAM, directory=tmp_path)  # key id generated
    assert (
        path.parent == tmp_path
        and path.name.startswith("AuthKey_")
        and len(path.stem) == len("AuthKey_") + 10
    )
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Apple issues
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    assert path.stat().st_mode & 0o077 == 0  # owner-only
