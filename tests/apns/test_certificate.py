"""Certificate auth: .p12 and PEM loading, passphrases, validity dates, topics, load_into.

Certificates are made here with ``cryptography`` (an RSA 2048 client certificate as Apple issues,
signed by a throw-away CA); the TLS handshake with it is in ``tests/test_tls.py``.
"""

from __future__ import annotations

import os
import re
import ssl
import stat
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from pushrelay import CredentialsError
from pushrelay.apns.cert_topics import APPLE_TOPICS_EXTENSION, parse_topics_extension
from pushrelay.apns.certificate import CertificateAuth

BUNDLE = "com.example.app"
NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
EXPIRY = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
PASSPHRASE = "correct horse battery staple"


def clock_at(moment: datetime) -> Any:
    return lambda: moment.timestamp()


CLOCK = clock_at(NOW)


def der(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return bytes([tag]) + length + body


def topics_extension(*pairs: tuple[str, str]) -> bytes:
    items = b"".join(der(0x0C, t.encode()) + der(0x30, der(0x0C, kind.encode())) for t, kind in pairs)
    return der(0x30, items)


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test WWDR CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def push_cert(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    key: rsa.RSAPrivateKey,
    *,
    subject: list[x509.NameAttribute[str]] | None = None,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = EXPIRY,
    extension: bytes | None = None,
) -> x509.Certificate:
    ca_key, ca_cert = ca
    if subject is None:
        subject = [
            x509.NameAttribute(NameOID.USER_ID, BUNDLE),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Apple Push Services: {BUNDLE}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "TEAMID1234"),
        ]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if extension is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(APPLE_TOPICS_EXTENSION, extension), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def write_p12(
    path: Path,
    key: rsa.RSAPrivateKey | None,
    cert: x509.Certificate,
    chain: list[x509.Certificate] | None = None,
    passphrase: bytes | None = PASSPHRASE.encode(),
) -> Path:
    encryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"push", key, cert, chain, encryption))
    return path


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(
    key: rsa.RSAPrivateKey,
    passphrase: bytes | None = None,
    fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


# --- .p12 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("passphrase", [PASSPHRASE, PASSPHRASE.encode()])
def test_p12_with_passphrase(
    tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey, passphrase: str | bytes
) -> None:
    cert = push_cert(ca, rsa_key)
    path = write_p12(tmp_path / "push.p12", rsa_key, cert, [ca[1]])
    auth = CertificateAuth.from_p12(path, passphrase, clock=CLOCK)
    assert auth.topics == (BUNDLE,)
    assert auth.not_after == EXPIRY
    assert auth.not_before == NOW - timedelta(days=30)
    assert f"UID={BUNDLE}" in auth.subject
    assert f"CN=Apple Push Services: {BUNDLE}" in auth.subject
    assert auth.certificate == cert


def test_p12_without_passphrase(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    path = write_p12(tmp_path / "push.p12", rsa_key, push_cert(ca, rsa_key), passphrase=None)
    assert CertificateAuth.from_p12(path, clock=CLOCK).topics == (BUNDLE,)
    # A passphrase configured for a file exported without one does no harm.
    assert CertificateAuth.from_p12(path, "unused", clock=CLOCK).topics == (BUNDLE,)


def test_p12_wrong_or_missing_passphrase(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    path = write_p12(tmp_path / "push.p12", rsa_key, push_cert(ca, rsa_key))
    with pytest.raises(CredentialsError) as info:
        CertificateAuth.from_p12(path, "not the passphrase", clock=CLOCK)
    assert str(info.value) == f"wrong passphrase for {path}"
    assert info.value.field == "passphrase"
    with pytest.raises(CredentialsError, match="protected by a passphrase; none was given"):
        CertificateAuth.from_p12(path, clock=CLOCK)


def test_p12_without_key(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    path = write_p12(tmp_path / "push.p12", None, push_cert(ca, rsa_key))
    with pytest.raises(CredentialsError, match=re.escape(f"no private key found in {path}")):
        CertificateAuth.from_p12(path, PASSPHRASE, clock=CLOCK)


def test_p12_of_the_wrong_kind(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    garbage = tmp_path / "push.p12"
    garbage.write_bytes(b"\x00\x01 definitely not pkcs12")
    with pytest.raises(CredentialsError, match=re.escape(f"{garbage} is not a PKCS#12")):
        CertificateAuth.from_p12(garbage)
    pem = tmp_path / "push.pem"
    pem.write_bytes(pem_cert(push_cert(ca, rsa_key)) + pem_key(rsa_key))
    with pytest.raises(
        CredentialsError, match=re.escape("is a PEM file, not PKCS#12: load it with CertificateAuth.from_pem")
    ):
        CertificateAuth.from_p12(pem)
    with pytest.raises(CredentialsError, match="does not exist") as info:
        CertificateAuth.from_p12(tmp_path / "missing.p12")
    assert info.value.file == str(tmp_path / "missing.p12")


def test_expired_certificate_reports_its_expiry_date(
    tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = write_p12(tmp_path / "push.p12", rsa_key, push_cert(ca, rsa_key))
    with pytest.raises(CredentialsError) as info:
        CertificateAuth.from_p12(path, PASSPHRASE, clock=clock_at(EXPIRY + timedelta(days=1)))
    assert f"certificate {path} expired on 2026-01-31 12:00 UTC" in str(info.value)


def test_not_yet_valid_certificate(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    cert = push_cert(ca, rsa_key, not_before=NOW + timedelta(hours=2))
    path = write_p12(tmp_path / "push.p12", rsa_key, cert)
    with pytest.raises(CredentialsError, match=r"is not valid before 2026-01-15 11:30 UTC"):
        CertificateAuth.from_p12(path, PASSPHRASE, clock=CLOCK)


def test_check_valid_can_be_asked_again_later(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    now = [NOW.timestamp()]
    path = write_p12(tmp_path / "push.p12", rsa_key, push_cert(ca, rsa_key))
    auth = CertificateAuth.from_p12(path, PASSPHRASE, clock=lambda: now[0])
    auth.check_valid()
    now[0] = EXPIRY.timestamp()
    with pytest.raises(CredentialsError, match="expired on 2026-01-31 12:00 UTC"):
        auth.check_valid()


# --- PEM ------------------------------------------------------------------------------------------


def test_pem_cert_and_key_in_one_file(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "push.pem"
    path.write_bytes(pem_cert(push_cert(ca, rsa_key)) + pem_cert(ca[1]) + pem_key(rsa_key))
    auth = CertificateAuth.from_pem(path, clock=CLOCK)
    assert auth.topics == (BUNDLE,)
    assert auth.not_after == EXPIRY


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_pem_cert_and_encrypted_key_in_two_files(
    tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat
) -> None:
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(pem_cert(push_cert(ca, rsa_key)))
    key_path.write_bytes(pem_key(rsa_key, PASSPHRASE.encode(), fmt))
    assert CertificateAuth.from_pem(cert_path, key_path, PASSPHRASE, clock=CLOCK).topics == (BUNDLE,)
    with pytest.raises(CredentialsError) as info:
        CertificateAuth.from_pem(cert_path, key_path, "wrong", clock=CLOCK)
    assert str(info.value) == f"wrong passphrase for {key_path}"
    with pytest.raises(
        CredentialsError, match=re.escape(f"the private key in {key_path} is protected by a passphrase")
    ):
        CertificateAuth.from_pem(cert_path, key_path, clock=CLOCK)


def test_pem_errors(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    cert_path = tmp_path / "cert.pem"
    cert_path.write_bytes(pem_cert(push_cert(ca, rsa_key)))
    with pytest.raises(
        CredentialsError, match=re.escape(f"no private key found in {cert_path} (pass the key file")
    ):
        CertificateAuth.from_pem(cert_path, clock=CLOCK)
    other_key = tmp_path / "other.pem"
    other_key.write_bytes(pem_key(rsa.generate_private_key(65537, 2048)))
    with pytest.raises(
        CredentialsError,
        match=re.escape(f"the private key does not belong to the certificate in {cert_path}"),
    ):
        CertificateAuth.from_pem(cert_path, other_key, clock=CLOCK)
    key_only = tmp_path / "key-only.pem"
    key_only.write_bytes(pem_key(rsa_key))
    with pytest.raises(CredentialsError, match=re.escape(f"{key_only} holds no PEM certificate")):
        CertificateAuth.from_pem(key_only, clock=CLOCK)
    p12 = write_p12(tmp_path / "push.p12", rsa_key, push_cert(ca, rsa_key))
    with pytest.raises(CredentialsError, match=re.escape("use CertificateAuth.from_p12")):
        CertificateAuth.from_pem(p12, clock=CLOCK)
    with pytest.raises(CredentialsError, match=r"key file .* does not exist") as info:
        CertificateAuth.from_pem(cert_path, tmp_path / "nope.key", clock=CLOCK)
    assert info.value.field == "key_file"


def test_secrets_stay_out_of_errors_and_repr(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    path = write_p12(tmp_path / "push.p12", rsa_key, push_cert(ca, rsa_key))
    with pytest.raises(CredentialsError) as info:
        CertificateAuth.from_p12(path, "hunter2-secret", clock=CLOCK)
    assert "hunter2" not in str(info.value)
    auth = CertificateAuth.from_p12(path, PASSPHRASE, clock=CLOCK)
    text = repr(auth)
    assert PASSPHRASE not in text
    assert "PRIVATE" not in text
    assert BUNDLE in text
    assert "2026-01-31 12:00 UTC" in text


# --- topics ---------------------------------------------------------------------------------------


def test_topics_from_apple_extension(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    ext = topics_extension(
        (BUNDLE, "app"), (f"{BUNDLE}.voip", "voip"), (f"{BUNDLE}.complication", "complication")
    )
    path = write_p12(tmp_path / "push.p12", rsa_key, push_cert(ca, rsa_key, extension=ext))
    auth = CertificateAuth.from_p12(path, PASSPHRASE, clock=CLOCK)
    assert auth.topics == (BUNDLE, f"{BUNDLE}.voip", f"{BUNDLE}.complication")


def test_topics_from_legacy_common_name(tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, "Apple Production IOS Push Services: com.example.old")]
    path = write_p12(tmp_path / "push.p12", rsa_key, push_cert(ca, rsa_key, subject=subject))
    assert CertificateAuth.from_p12(path, PASSPHRASE, clock=CLOCK).topics == ("com.example.old",)


def test_a_malformed_topics_extension_is_ignored_with_a_warning(
    tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_p12(tmp_path / "push.p12", rsa_key, push_cert(ca, rsa_key, extension=b"\x30\x05\x0c\x10ab"))
    assert CertificateAuth.from_p12(path, PASSPHRASE, clock=CLOCK).topics == (BUNDLE,)
    assert "malformed APNs topics extension" in caplog.text


def test_parse_topics_extension_handles_an_extra_octet_string_wrapper() -> None:
    value = topics_extension(("com.a", "app"), ("com.a.voip", "voip"))
    assert parse_topics_extension(value) == ["com.a", "com.a.voip"]
    assert parse_topics_extension(der(0x04, value)) == ["com.a", "com.a.voip"]
    long_value = topics_extension(*[(f"com.example.app{i}", "app") for i in range(20)])
    assert len(parse_topics_extension(long_value)) == 20
    for bad in (b"", b"\x30", b"\x30\x85\x00\x00\x00\x00\x01", b"\x02\x01\x03"):
        with pytest.raises(ValueError):
            parse_topics_extension(bad)


# --- load_into ------------------------------------------------------------------------------------


class InspectingContext(ssl.SSLContext):
    """A real SSLContext that records what the certificate file looked like while it existed."""

    seen: dict[str, Any]

    def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        self.seen = {
            "path": certfile,
            "file_mode": stat.S_IMODE(os.stat(certfile).st_mode),
            "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(certfile)).st_mode),
            "text": Path(certfile).read_bytes(),
        }
        super().load_cert_chain(certfile, keyfile, password)


def test_load_into_uses_a_private_temporary_file_and_removes_it(
    tmp_path: Path, ca: Any, rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = write_p12(tmp_path / "push.p12", rsa_key, push_cert(ca, rsa_key), [ca[1]])
    auth = CertificateAuth.from_p12(path, PASSPHRASE, clock=CLOCK)
    context = InspectingContext(ssl.PROTOCOL_TLS_CLIENT)
    auth.load_into(context)
    seen = context.seen
    assert seen["file_mode"] == 0o600
    assert seen["dir_mode"] == 0o700
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in seen["text"]  # even the temp copy is encrypted
    assert seen["text"].count(b"-----BEGIN CERTIFICATE-----") == 2  # leaf + chain
    assert not os.path.exists(seen["path"])
    assert list(scratch.iterdir()) == []
