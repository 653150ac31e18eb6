"""client_ssl_context: real TLS handshakes against a local ``ssl`` server.

A throw-away CA signs the server certificate (``localhost``) and a push client certificate. The
handshake succeeds with that CA as ``ca_file``, fails without it and fails for another host name.
"""

from __future__ import annotations

import inspect
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pushrelay import ConfigurationError, CredentialsError
from pushrelay.apns.certificate import CertificateAuth
from pushrelay.tls import client_ssl_context

NOW = datetime.now(UTC)


def issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    signer_key, issuer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        assert issuer is not None
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[0].public_key()), critical=False
        )
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signer_key, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Pki:
    def __init__(self, directory: Path) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pushrelay test CA")]), ca_key, None, ca=True
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(pem(ca))

        server_key = ec.generate_private_key(ec.SECP256R1())
        server = issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
            server_key,
            (ca_key, ca),
            server=True,
        )
        self.server_pem = directory / "server.pem"
        self.server_pem.write_bytes(pem(server) + key_pem(server_key))

        client_key = ec.generate_private_key(ec.SECP256R1())
        client_name = x509.Name(
            [
                x509.NameAttribute(NameOID.USER_ID, "com.example.app"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Apple Push Services: com.example.app"),
            ]
        )
        self.client_pem = directory / "client.pem"
        self.client_pem.write_bytes(pem(issue(client_name, client_key, (ca_key, ca))) + key_pem(client_key))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@contextmanager
def tls_server(pki: Pki, *, require_client_cert: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """A one-connection TLS server on 127.0.0.1 offering ALPN h2; yields (port, what it saw)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_pem)
    context.set_alpn_protocols(["h2"])
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca_file)
    seen: dict[str, Any] = {}
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            seen["error"] = exc
            return
        with conn:
            conn.settimeout(10)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    seen["alpn"] = tls.selected_alpn_protocol()
                    seen["peer"] = tls.getpeercert()
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError) as exc:
                seen["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        thread.join(10)
        listener.close()


def connect(context: ssl.SSLContext, port: int, hostname: str = "localhost") -> tuple[str | None, bytes]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        return tls.selected_alpn_protocol(), tls.recv(5)


def test_handshake_succeeds_with_the_extra_ca_file_and_negotiates_h2(pki: Pki) -> None:
    context = client_ssl_context(ca_file=pki.ca_file)
    with tls_server(pki) as (port, seen):
        assert connect(context, port) == ("h2", b"hello")
    assert seen["alpn"] == "h2"


def test_handshake_fails_without_the_ca_file(pki: Pki) -> None:
    with tls_server(pki) as (port, seen), pytest.raises(ssl.SSLCertVerificationError):
        connect(client_ssl_context(), port)
    assert "error" in seen


def test_handshake_fails_for_another_host_name(pki: Pki) -> None:
    with tls_server(pki) as (port, _), pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        connect(client_ssl_context(ca_file=str(pki.ca_file)), port, hostname="api.push.apple.com")


def test_client_certificate_is_presented(pki: Pki) -> None:
    auth = CertificateAuth.from_pem(pki.client_pem)
    context = client_ssl_context(ca_file=pki.ca_file, client_cert=auth)
    with tls_server(pki, require_client_cert=True) as (port, seen):
        assert connect(context, port) == ("h2", b"hello")
    subject = dict(item for rdn in seen["peer"]["subject"] for item in rdn)
    assert subject["commonName"] == "Apple Push Services: com.example.app"


def test_verification_is_always_on_and_cannot_be_turned_off() -> None:
    context = client_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert set(inspect.signature(client_ssl_context).parameters) == {"ca_file", "client_cert", "alpn"}


def test_ca_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(CredentialsError, match=re.escape(f"CA file {missing} does not exist")) as info:
        client_ssl_context(ca_file=missing)
    assert (info.value.field, info.value.file) == ("ca_file", str(missing))
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"\x30\x82\x01\x00 binary")
    with pytest.raises(CredentialsError, match=re.escape(f"CA file {not_pem} holds no PEM certificate")):
        client_ssl_context(ca_file=not_pem)
    damaged = tmp_path / "damaged.pem"
    damaged.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(CredentialsError, match=re.escape(f"CA file {damaged} holds a damaged certificate")):
        client_ssl_context(ca_file=damaged)


def test_alpn_must_be_a_sequence_of_names() -> None:
    with pytest.raises(ConfigurationError, match="alpn must be a sequence") as info:
        client_ssl_context(alpn="h2")
    assert info.value.field == "alpn"
