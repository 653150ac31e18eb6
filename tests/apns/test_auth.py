"""Token auth (.p8): key loading errors, JWT contents, refresh rules and single-flight minting.

Real keys made with ``cryptography``, real JWTs checked with PyJWT, a controllable clock.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pushrelay import ConfigurationError, CredentialsError
from pushrelay.apns.auth import TokenAuth

TEAM = "TEAMID1234"
KID = "ABC123DEFG"
MIN = 60.0
T0 = 1_760_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * MIN


def pkcs8(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def key_file(tmp_path: Path, p256: ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / f"AuthKey_{KID}.p8"
    path.write_bytes(pkcs8(p256))
    return path


def claims(auth: TokenAuth, public_key: ec.EllipticCurvePublicKey) -> dict[str, object]:
    header = auth.authorization()
    assert header.startswith("bearer ")
    token = header.removeprefix("bearer ")
    decoded: dict[str, object] = jwt.decode(
        token, public_key, algorithms=["ES256"], options={"verify_iat": False}
    )
    return decoded


# --- loading --------------------------------------------------------------------------------------


def test_from_file_takes_the_key_id_from_the_file_name_and_signs_es256(
    key_file: Path, p256: ec.EllipticCurvePrivateKey
) -> None:
    auth = TokenAuth.from_file(key_file, team_id=TEAM, clock=Clock())
    assert (auth.key_id, auth.team_id) == (KID, TEAM)
    token = auth.authorization().removeprefix("bearer ")
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KID}
    assert claims(auth, p256.public_key()) == {"iss": TEAM, "iat": int(T0)}


def test_from_file_accepts_a_browser_renamed_copy_and_an_explicit_key_id(
    tmp_path: Path, p256: ec.EllipticCurvePrivateKey
) -> None:
    copy = tmp_path / f"AuthKey_{KID} (1).p8"
    copy.write_bytes(pkcs8(p256))
    assert TokenAuth.from_file(copy, team_id=TEAM).key_id == KID
    other = tmp_path / "apns-production.p8"
    other.write_bytes(pkcs8(p256))
    assert TokenAuth.from_file(str(other), team_id=TEAM, key_id="ZZZ999YYY8").key_id == "ZZZ999YYY8"


def test_from_pem_accepts_bytes_and_text(p256: ec.EllipticCurvePrivateKey) -> None:
    data = pkcs8(p256)
    for value in (data, data.decode()):
        auth = TokenAuth.from_pem(value, key_id=KID, team_id=TEAM, clock=Clock())
        assert claims(auth, p256.public_key())["iss"] == TEAM


def write(tmp_path: Path, data: bytes, name: str = f"AuthKey_{KID}.p8") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _sec1(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    return write(
        tmp_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )


def _encrypted(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    return write(
        tmp_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
    )


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / f"AuthKey_{KID}.p8"
    path.mkdir()
    return path


def _der(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    return write(
        tmp_path,
        key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda d: d / f"AuthKey_{KID}.p8", "does not exist"),
    "directory": (_directory, "is a directory"),
    "empty": (lambda d: write(d, b""), "is empty"),
    "garbage": (lambda d: write(d, b"this is not a key\n"), "not PEM text"),
    "der": (_der, "binary DER"),
    "p384": (lambda d: write(d, pkcs8(ec.generate_private_key(ec.SECP384R1()))), "EC secp384r1 key"),
    "rsa": (lambda d: write(d, pkcs8(rsa.generate_private_key(65537, 2048))), "RSA 2048-bit key"),
    "ed25519": (lambda d: write(d, pkcs8(ed25519.Ed25519PrivateKey.generate())), "expected an EC P-256"),
    "sec1": (_sec1, "SEC1 'EC PRIVATE KEY', expected PKCS#8"),
    "encrypted": (_encrypted, "an encrypted key"),
    "corrupt": (
        lambda d: write(d, b"-----BEGIN PRIVATE KEY-----\nAAAAaGVsbG8=\n-----END PRIVATE KEY-----\n"),
        "is damaged",
    ),
    "certificate": (
        lambda d: write(d, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        "a certificate, not a private key",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_key_files_give_a_clear_error_naming_the_file(tmp_path: Path, case: str) -> None:
    make, expected = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(CredentialsError) as info:
        TokenAuth.from_file(path, team_id=TEAM)
    message = str(info.value)
    assert expected in message
    assert str(path) in message
    assert info.value.file == str(path)
    assert "BEGIN PRIVATE KEY-----\n" not in message  # never the key text itself


def test_the_key_id_must_come_from_somewhere(tmp_path: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    path = write(tmp_path, pkcs8(p256), name="apns.p8")
    with pytest.raises(CredentialsError, match=r"not named AuthKey_<KEYID>\.p8; pass key_id") as info:
        TokenAuth.from_file(path, team_id=TEAM)
    assert info.value.field == "key_id"
    assert str(path) in str(info.value)


def test_a_key_id_contradicting_the_file_name_is_refused(key_file: Path) -> None:
    with pytest.raises(CredentialsError, match="does not match the key id 'ABC123DEFG'") as info:
        TokenAuth.from_file(key_file, team_id=TEAM, key_id="XYZ123DEFG")
    assert info.value.field == "key_id"


@pytest.mark.parametrize(
    ("team_id", "expected"),
    [
        ("TEAM12345", "is not the 10-character Team ID"),
        ("TEAMID12345", "is not the 10-character Team ID"),
        ("teamid1234", "did you mean 'TEAMID1234'?"),
        ("TEAM-D1234", "upper-case letters and digits"),
    ],
)
def test_team_id_format_is_checked_and_the_error_names_the_field(
    key_file: Path, team_id: str, expected: str
) -> None:
    with pytest.raises(CredentialsError, match=expected) as info:
        TokenAuth.from_file(key_file, team_id=team_id)
    assert info.value.field == "team_id"
    assert str(key_file) in str(info.value)


def test_a_key_pasted_into_an_id_setting_is_not_echoed(
    p256: ec.EllipticCurvePrivateKey, key_file: Path
) -> None:
    pem = pkcs8(p256).decode()
    for load in (
        lambda: TokenAuth.from_pem(pem, key_id=pem, team_id=TEAM),
        lambda: TokenAuth.from_file(key_file, key_id=pem, team_id=TEAM),
        lambda: TokenAuth.from_file(key_file, team_id=pem),
    ):
        with pytest.raises(CredentialsError) as info:
            load()
        assert "PRIVATE KEY" not in str(info.value)
        assert f"(a {len(pem)}-character value)" in str(info.value)


def test_constructor_checks_the_key_and_the_timing_settings(p256: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(CredentialsError, match="RSA 2048-bit key, expected an EC P-256") as info:
        TokenAuth(rsa.generate_private_key(65537, 2048), key_id=KID, team_id=TEAM)  # type: ignore[arg-type]
    assert info.value.field == "private_key"
    with pytest.raises(ConfigurationError) as cfg:
        TokenAuth(p256, key_id=KID, team_id=TEAM, refresh_after=60 * MIN)
    assert cfg.value.field == "refresh_after"
    with pytest.raises(ConfigurationError) as cfg:
        TokenAuth(p256, key_id=KID, team_id=TEAM, refresh_after=10 * MIN, min_interval=20 * MIN)
    assert cfg.value.field == "min_interval"


def test_repr_shows_ids_only(p256: ec.EllipticCurvePrivateKey) -> None:
    auth = TokenAuth(p256, key_id=KID, team_id=TEAM, clock=Clock())
    header = auth.authorization()
    assert repr(auth) == f"TokenAuth(key_id={KID!r}, team_id={TEAM!r})"
    assert header.removeprefix("bearer ") not in repr(auth)


# --- refresh rules --------------------------------------------------------------------------------


def make(p256: ec.EllipticCurvePrivateKey, clock: Clock, **timing: float) -> TokenAuth:
    return TokenAuth(p256, key_id=KID, team_id=TEAM, clock=clock, **timing)


def test_token_is_cached_for_45_minutes_then_refreshed(p256: ec.EllipticCurvePrivateKey) -> None:
    clock = Clock()
    auth = make(p256, clock)
    assert auth.mints == 0
    first = auth.authorization()
    assert (auth.mints, auth.generation) == (1, 1)
    clock.advance(44)
    assert auth.authorization() is first
    clock.advance(2)  # 46 minutes after the first mint
    second = auth.authorization()
    assert second != first
    assert (auth.mints, auth.generation) == (2, 2)
    assert claims(auth, p256.public_key())["iat"] == int(T0 + 46 * MIN)


def test_scheduled_mints_are_never_closer_than_the_minimum_interval(p256: ec.EllipticCurvePrivateKey) -> None:
    for timing in ({}, {"refresh_after": 20 * MIN, "min_interval": 20 * MIN}):
        clock = Clock()
        auth = make(p256, clock, **timing)
        mint_times = []
        for _ in range(6 * 60):  # six hours, one request a minute
            before = auth.mints
            auth.authorization()
            if auth.mints != before:
                mint_times.append(clock.now)
            clock.advance(1)
        gaps = [b - a for a, b in itertools.pairwise(mint_times)]
        assert gaps, "expected several mints in six hours"
        assert min(gaps) >= 20 * MIN
        assert max(gaps) < 60 * MIN  # APNs rejects tokens older than an hour


def test_concurrent_first_calls_mint_once(p256: ec.EllipticCurvePrivateKey) -> None:
    auth = make(p256, Clock())
    results = run_threads(50, auth.authorization)
    assert auth.mints == 1
    assert len(set(results)) == 1


def run_threads(count: int, call: Callable[[], object]) -> list[object]:
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def worker(index: int) -> None:
        barrier.wait()
        results[index] = call()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# --- token_rejected -------------------------------------------------------------------------------


def test_expired_current_token_is_replaced_once_even_with_100_concurrent_callers(
    p256: ec.EllipticCurvePrivateKey,
) -> None:
    clock = Clock()
    auth = make(p256, clock)
    rejected = auth.authorization()
    clock.advance(30)
    results = run_threads(100, lambda: auth.token_rejected(rejected, "ExpiredProviderToken"))
    assert results == [True] * 100
    assert auth.mints == 2
    fresh = auth.authorization()
    assert fresh != rejected
    assert claims(auth, p256.public_key())["iat"] == int(T0 + 30 * MIN)
    # The forced mint restarts the schedule: next refresh 45 minutes after it, not after the first.
    clock.advance(44)
    assert auth.authorization() == fresh
    clock.advance(2)
    assert auth.authorization() != fresh


def test_the_rejected_token_may_be_given_as_header_or_bare_jwt(p256: ec.EllipticCurvePrivateKey) -> None:
    clock = Clock()
    auth = make(p256, clock)
    clock.advance(30)
    assert auth.token_rejected(auth.authorization().removeprefix("bearer "), "ExpiredProviderToken")
    assert auth.mints == 2
    clock.advance(30)
    assert auth.token_rejected(auth.authorization().replace("bearer", "Bearer"), "ExpiredProviderToken")
    assert auth.mints == 3


def test_a_rejected_old_token_does_not_mint_again(p256: ec.EllipticCurvePrivateKey) -> None:
    clock = Clock()
    auth = make(p256, clock)
    old = auth.authorization()
    clock.advance(46)
    auth.authorization()
    assert auth.mints == 2
    assert auth.token_rejected(old, "ExpiredProviderToken") is True  # retry with the current one
    assert auth.mints == 2


def test_other_rejections_mean_broken_configuration(p256: ec.EllipticCurvePrivateKey) -> None:
    auth = make(p256, Clock())
    current = auth.authorization()
    for reason in ("InvalidProviderToken", "MissingProviderToken", "TooManyProviderTokenUpdates", ""):
        assert auth.token_rejected(current, reason) is False
    assert auth.mints == 1


def test_forced_mints_cannot_loop_when_the_clock_is_wrong(
    p256: ec.EllipticCurvePrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    auth = make(p256, clock)
    first = auth.authorization()
    clock.advance(1)
    # Rejected one minute after minting: still worth one new token, inside the 20-minute floor.
    assert auth.token_rejected(first, "ExpiredProviderToken") is True
    forced = auth.authorization()
    assert auth.mints == 2
    clock.advance(1)
    # The token minted just now is "expired" too: minting again cannot help.
    assert auth.token_rejected(forced, "ExpiredProviderToken") is False
    assert auth.mints == 2
    assert "system clock" in caplog.text
    assert forced.removeprefix("bearer ") not in caplog.text
    # Once the floor has passed, a rejection may mint again.
    clock.advance(20)
    assert auth.token_rejected(forced, "ExpiredProviderToken") is True
    assert auth.mints == 3
