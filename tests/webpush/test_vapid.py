"""VAPID keys: loading, generation, header expiry and refresh, and the sandbox's checks of the header."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx
import jwt
import pytest

from pushrelay import ConfigurationError, CredentialsError, Notification, Outcome
from pushrelay.sandbox.webpush import WebPushSandbox
from pushrelay.webpush import VapidKey, WebPushClient, WebSubscription, encrypt, generate_vapid_keys
from pushrelay.webpush.vapid import DEFAULT_VALIDITY, MAX_VALIDITY

SUBJECT = "mailto:ops@example.com"


def test_generated_pair_loads_back(tmp_path: Path) -> None:
    pair = generate_vapid_keys()
    inline = VapidKey.from_string(pair.private_key, subject=SUBJECT)
    pem_file = tmp_path / "vapid.pem"
    pem_file.write_bytes(pair.private_pem)
    from_file = VapidKey.from_file(pem_file, subject=SUBJECT)
    assert inline.public_key_b64 == from_file.public_key_b64 == pair.public_key
    assert len(pair.public_key) == 87  # 65 bytes in unpadded base64url
    assert pair.private_key not in repr(inline)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"not a key", "holds no P-256 private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "holds no P-256 private key"),
    ],
)
def test_bad_key_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "vapid.pem"
    path.write_bytes(content)
    with pytest.raises(CredentialsError) as info:
        VapidKey.from_file(path, subject=SUBJECT)
    assert fragment in str(info.value) and info.value.file == str(path)


def test_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="pushrelay keys vapid --out"):
        VapidKey.from_file(tmp_path / "nope.pem", subject=SUBJECT)


@pytest.mark.parametrize(
    "subject", ["ops@example.com", "http://example.com", "mailto:", "https://example.com/contact"]
)
def test_subject_must_be_mailto_or_https(subject: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        VapidKey.generate(subject=subject)
    assert info.value.field == "vapid_subject"


def test_header_is_cached_then_refreshed_before_expiry() -> None:
    vapid = VapidKey.generate(subject=SUBJECT)
    now = 1_000_000.0
    first = vapid.authorization("https://push.example", now=now)
    assert vapid.authorization("https://push.example", now=now + 3600) == first
    assert vapid.signed == 1
    later = vapid.authorization("https://push.example", now=now + DEFAULT_VALIDITY - 1800)
    assert later != first and vapid.signed == 2
    token = later.split("t=", 1)[1].split(",", 1)[0]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] == int(now + DEFAULT_VALIDITY - 1800) + DEFAULT_VALIDITY
    assert claims["exp"] - (now + DEFAULT_VALIDITY - 1800) <= MAX_VALIDITY


async def test_client_with_a_clock_far_ahead_is_refused(wp_sandbox: WebPushSandbox) -> None:
    vapid = VapidKey.generate(subject=SUBJECT)
    ahead = WebPushClient(
        vapid,
        allowed_hosts=[wp_sandbox.allowed_host],
        ca_file=wp_sandbox.ca_file,
        clock=lambda: time.time() - 86400,
    )
    async with ahead:
        result = await ahead.send(Notification(body="x"), wp_sandbox.new_subscription())
    assert (result.status, result.outcome) == (403, Outcome.CONFIG_BROKEN)
    assert "expired" in (result.reason or "")


async def _post(sb: WebPushSandbox, sub: dict[str, object], headers: dict[str, str]) -> httpx.Response:
    body = encrypt(b'{"x":1}', WebSubscription.from_dict(sub))  # type: ignore[arg-type]
    context = ssl.create_default_context(cafile=sb.ca_file)
    async with httpx.AsyncClient(verify=context) as client:
        return await client.post(
            str(sub["endpoint"]), content=body, headers={"content-encoding": "aes128gcm", **headers}
        )


def _header(vapid: VapidKey, claims: dict[str, object]) -> str:
    key = vapid._key  # the test signs its own, deliberately wrong, claims
    token = jwt.encode(claims, key, algorithm="ES256")
    return f"vapid t={token}, k={vapid.public_key_b64}"


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"exp": 25 * 3600, "sub": SUBJECT}, "more than 24 hours ahead"),
        ({"exp": -10, "sub": SUBJECT}, "expired"),
        ({"exp": 3600, "sub": "ops@example.com"}, "sub must be a mailto: or https: URI"),
        ({"exp": 3600, "sub": SUBJECT, "aud": "https://elsewhere.example"}, "aud must be"),
        ({"sub": SUBJECT}, 'missing the "exp" claim'),
    ],
)
async def test_sandbox_checks_the_vapid_claims(
    wp_sandbox: WebPushSandbox, claims: dict[str, object], fragment: str
) -> None:
    vapid = VapidKey.generate(subject=SUBJECT)
    now = int(time.time())
    full: dict[str, object] = {"aud": wp_sandbox.url, **claims}
    if "exp" in full:
        full["exp"] = now + int(full["exp"])  # type: ignore[call-overload]
    response = await _post(
        wp_sandbox, wp_sandbox.new_subscription(), {"ttl": "60", "authorization": _header(vapid, full)}
    )
    assert response.status_code == 403
    assert fragment in response.json()["error"]


@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        ({"ttl": "60", "authorization": "WebPush abc"}, 401, "scheme must be vapid"),
        ({}, 400, "TTL header is required"),
        ({"ttl": "soon"}, 400, "TTL must be whole seconds"),
        ({"ttl": "60", "urgency": "asap"}, 400, "Urgency must be one of"),
        ({"ttl": "60", "topic": "x" * 33}, 400, "Topic must be at most 32"),
    ],
)
async def test_sandbox_checks_the_headers(
    wp_sandbox: WebPushSandbox, headers: dict[str, str], status: int, fragment: str
) -> None:
    vapid = VapidKey.generate(subject=SUBJECT)
    good = {"authorization": vapid.authorization(wp_sandbox.url)}
    response = await _post(wp_sandbox, wp_sandbox.new_subscription(), {**good, **headers})
    assert response.status_code == status
    assert fragment in response.json()["error"]


async def test_sandbox_accepts_then_drops_a_body_for_other_keys(wp_sandbox: WebPushSandbox) -> None:
    """Push services cannot read the body: they answer 201, and the browser drops what does not decrypt."""
    vapid = VapidKey.generate(subject=SUBJECT)
    sub, other = wp_sandbox.new_subscription(), wp_sandbox.new_subscription()
    body = encrypt(b"secret", WebSubscription.from_dict(other))
    context = ssl.create_default_context(cafile=wp_sandbox.ca_file)
    async with httpx.AsyncClient(verify=context) as client:
        response = await client.post(
            str(sub["endpoint"]),
            content=body,
            headers={
                "ttl": "0",
                "content-encoding": "aes128gcm",
                "authorization": vapid.authorization(wp_sandbox.url),
            },
        )
        listed = await client.get(f"{wp_sandbox.url}/_sandbox/undecryptable?endpoint={sub['endpoint']}")
    assert response.status_code == 201 and response.headers["location"]
    assert wp_sandbox.received(sub) == [] and wp_sandbox.received(other) == []
    (dropped,) = wp_sandbox.undecryptable(sub)
    assert "does not decrypt" in dropped.reason and dropped.size == len(body)
    assert listed.json()["undecryptable"] == [dropped.to_json()]
    assert wp_sandbox.undecryptable(other) == []


async def test_sandbox_accepts_an_empty_push(wp_sandbox: WebPushSandbox) -> None:
    """RFC 8030 §5: a push message may have no body (no Content-Encoding then)."""
    vapid = VapidKey.generate(subject=SUBJECT)
    sub = wp_sandbox.new_subscription()
    context = ssl.create_default_context(cafile=wp_sandbox.ca_file)
    async with httpx.AsyncClient(verify=context) as client:
        response = await client.post(
            str(sub["endpoint"]), headers={"ttl": "60", "authorization": vapid.authorization(wp_sandbox.url)}
        )
    assert response.status_code == 201
    (pushed,) = wp_sandbox.received(sub)
    assert pushed.payload == b"" and pushed.ttl == 60
    assert wp_sandbox.undecryptable() == []
