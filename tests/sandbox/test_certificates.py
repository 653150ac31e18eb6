"""Certificate authentication: APNs-style client certificates signed by the sandbox CA."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from pushrelay.sandbox import ApnsSandbox
from pushrelay.sandbox.tls import CertificateAuthority

from .conftest import ALERT, BUNDLE, new_token
from .h2client import ConnectionClosed, H2Response, H2TestClient


async def post(
    client: H2TestClient,
    *headers: tuple[str, str],
    token: str | None = None,
    sandbox: ApnsSandbox | None = None,
) -> H2Response:
    """POST an alert; without ``token``, one ``sandbox`` issued for the request's app (else made up)."""
    if token is None:
        topic = dict(headers).get("apns-topic", BUNDLE)
        token = sandbox.issue_token(topic) if sandbox is not None else new_token()
    return await client.request("POST", f"/3/device/{token}", list(headers), ALERT.encode())


def p12_to_pem(p12: Path, passphrase: str, directory: Path) -> tuple[Path, Path]:
    """Python's ssl module loads PEM only: unpack the .p12 as a client library would."""
    key, cert, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), passphrase.encode())
    assert key is not None and cert is not None
    cert_file, key_file = directory / "client.pem", directory / "client-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


async def test_p12_certificate_authenticates_without_a_jwt(sandbox: ApnsSandbox, tmp_path: Path) -> None:
    p12, second = sandbox.issue_client_certificate(
        BUNDLE, tmp_path, passphrase="s3cret", team_id="TEAM123456"
    )
    assert second is None and p12.suffix == ".p12"
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(p12.read_bytes(), b"wrong")
    cert_file, key_file = p12_to_pem(p12, "s3cret", tmp_path)
    subject = x509.load_pem_x509_certificate(cert_file.read_bytes()).subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"Apple Push Services: {BUNDLE}"
    assert subject.get_attributes_for_oid(NameOID.USER_ID)[0].value == BUNDLE

    client = await H2TestClient.connect(sandbox.url, sandbox.ca_file, cert=(cert_file, key_file, None))
    try:
        assert client.max_concurrent_streams == 1
        token = sandbox.issue_token(BUNDLE)
        first = await post(client, ("apns-topic", BUNDLE), token=token)
        no_topic = await post(client, token=token)  # the certificate's bundle is the default topic
        voip = await post(client, ("apns-topic", BUNDLE + ".voip"), ("apns-push-type", "voip"), token=token)
        assert client.max_concurrent_streams == 1000  # raised after the first authenticated request
    finally:
        await client.close()
    assert [r.status for r in (first, no_topic, voip)] == [200, 200, 200]
    assert [r.topic for r in sandbox.received(token)] == [BUNDLE, BUNDLE, BUNDLE + ".voip"]
    assert sandbox.stats.jwt_verifications == 0


async def test_pem_certificate_for_another_bundle_gets_bad_topic(
    sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    cert_file, key_file = sandbox.issue_client_certificate("com.other.app", tmp_path, format="pem")
    assert key_file is not None
    client = await H2TestClient.connect(sandbox.url, sandbox.ca_file, cert=(cert_file, key_file, None))
    try:
        wrong = await post(client, ("apns-topic", BUNDLE), sandbox=sandbox)
        right = await post(client, ("apns-topic", "com.other.app"), sandbox=sandbox)
    finally:
        await client.close()
    assert (wrong.status, wrong.reason) == (400, "BadTopic")
    assert right.status == 200


async def test_encrypted_pem_key(sandbox: ApnsSandbox, tmp_path: Path) -> None:
    cert_file, key_file = sandbox.issue_client_certificate(BUNDLE, tmp_path, format="pem", passphrase="pw")
    assert key_file is not None and b"ENCRYPTED" in key_file.read_bytes()
    client = await H2TestClient.connect(sandbox.url, sandbox.ca_file, cert=(cert_file, key_file, "pw"))
    try:
        assert (await post(client, ("apns-topic", BUNDLE), sandbox=sandbox)).status == 200
    finally:
        await client.close()


async def test_certificate_for_the_other_environment(sandbox: ApnsSandbox, tmp_path: Path) -> None:
    cert_file, key_file = sandbox.issue_client_certificate(
        BUNDLE, tmp_path, format="pem", environments=["development"]
    )
    assert key_file is not None
    client = await H2TestClient.connect(sandbox.url, sandbox.ca_file, cert=(cert_file, key_file, None))
    try:
        response = await post(client, ("apns-topic", BUNDLE), sandbox=sandbox)
    finally:
        await client.close()
    assert (response.status, response.reason) == (403, "BadCertificateEnvironment")


@pytest.mark.parametrize("kind", ["expired", "foreign CA"])
async def test_untrusted_certificates_are_refused_in_the_handshake(
    sandbox: ApnsSandbox, tmp_path: Path, kind: str
) -> None:
    if kind == "expired":
        cert_file, key_file = sandbox.issue_client_certificate(BUNDLE, tmp_path, format="pem", expired=True)
    else:
        cert_file, key_file = CertificateAuthority.generate().write_push_client(BUNDLE, tmp_path, fmt="pem")
    assert key_file is not None
    # Under TLS 1.3 the client learns of the refusal on its first read; either way no request gets through.
    with pytest.raises((ssl.SSLError, ConnectionError, ConnectionClosed)):
        client = await H2TestClient.connect(sandbox.url, sandbox.ca_file, cert=(cert_file, key_file, None))
        try:
            await post(client, ("apns-topic", BUNDLE), sandbox=sandbox)
        finally:
            await client.close()
    assert sandbox.stats.requests == 0


def test_client_certificates_need_a_running_sandbox(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not running"):
        ApnsSandbox().issue_client_certificate(BUNDLE, tmp_path)


async def test_verified_certificate_that_is_not_a_push_certificate(
    sandbox: ApnsSandbox, tmp_path: Path
) -> None:
    import datetime as dt

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca = sandbox._ca  # the sandbox's own CA signs it, so the TLS handshake succeeds
    assert ca is not None
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some web client")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "web.pem", tmp_path / "web-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    client = await H2TestClient.connect(sandbox.url, sandbox.ca_file, cert=(cert_file, key_file, None))
    try:
        response = await post(client, ("apns-topic", BUNDLE), sandbox=sandbox)
    finally:
        await client.close()
    assert (response.status, response.reason) == (403, "BadCertificate")
