"""Throw-away TLS material for the sandbox: a private CA, a server certificate, APNs client certificates.

Clients of the sandbox trust ``ca.pem`` as an extra CA; verification stays on end to end. The CA key
lives only in memory: a new CA is made every time a sandbox starts, so nothing long-lived can be
misused later.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

__all__ = [
    "APPLE_DEVELOPMENT_OID",
    "APPLE_PRODUCTION_OID",
    "CertificateAuthority",
    "ServerMaterial",
    "client_certificate_environments",
    "push_certificate_bundle",
    "server_ssl_context",
]

# Apple marks which APNs environment a push certificate may be used in with these (empty) extensions;
# a "universal" push certificate carries both.
APPLE_DEVELOPMENT_OID = ObjectIdentifier("1.2.840.113635.100.6.3.1")
APPLE_PRODUCTION_OID = ObjectIdentifier("1.2.840.113635.100.6.3.2")
_PUSH_CN_PREFIX = "Apple Push Services: "

Environment = Literal["production", "development"]


def _now() -> dt.datetime:
    # Certificates are judged by OpenSSL against the real clock, never the sandbox clock.
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Write key material readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _san_entries(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):  # ordered, without duplicates
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


@dataclass(frozen=True)
class ServerMaterial:
    """Files of a running sandbox: the CA to trust, and the server's certificate and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


class CertificateAuthority:
    """A private CA that signs the sandbox's server certificate and the client certificates it hands out."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.key = key
        self.certificate = certificate

    @classmethod
    def generate(cls, common_name: str = "pushrelay sandbox CA") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )

    def issue_server(self, hosts: Iterable[str]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A TLS server certificate valid for every name or IP address in ``hosts``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (
            self._builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pushrelay sandbox")]), key.public_key()
            )
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(_san_entries(hosts)), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert, key

    def issue_push_client(
        self,
        bundle_id: str,
        *,
        team_id: str | None = None,
        expired: bool = False,
        environments: Iterable[Environment] = ("production", "development"),
    ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        """An APNs-style provider certificate: ``UID=<bundle>, CN=Apple Push Services: <bundle>``.

        Apple issues RSA-2048 push certificates, so this does too (client code must cope with RSA keys).
        """
        if not bundle_id:
            raise ValueError("bundle_id: expected a bundle identifier such as 'com.sample.myappname', got ''")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        attributes = [
            x509.NameAttribute(NameOID.USER_ID, bundle_id),
            x509.NameAttribute(NameOID.COMMON_NAME, _PUSH_CN_PREFIX + bundle_id),
        ]
        if team_id:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_id))
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, "US"))
        now = _now()
        if expired:
            not_before, not_after = now - dt.timedelta(days=400), now - dt.timedelta(days=1)
        else:
            not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=365)
        builder = (
            self._builder(x509.Name(attributes), key.public_key())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        for environment in dict.fromkeys(environments):
            oid = {"production": APPLE_PRODUCTION_OID, "development": APPLE_DEVELOPMENT_OID}.get(environment)
            if oid is None:
                raise ValueError(
                    f"environments: expected 'production' and/or 'development', got {environment!r}"
                )
            builder = builder.add_extension(x509.UnrecognizedExtension(oid, b"\x05\x00"), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key

    def write_server_material(self, directory: Path, hosts: Iterable[str]) -> ServerMaterial:
        """Write ``ca.pem``, ``server.pem`` and ``server-key.pem`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = self.issue_server(hosts)
        material = ServerMaterial(
            ca_file=directory / "ca.pem",
            cert_file=directory / "server.pem",
            key_file=directory / "server-key.pem",
        )
        material.ca_file.write_bytes(self.pem)
        # The chain lets clients that only trust ca.pem build the path without extra files.
        material.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.pem)
        _write_private(
            material.key_file,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        return material

    def write_push_client(
        self,
        bundle_id: str,
        directory: Path,
        *,
        team_id: str | None = None,
        expired: bool = False,
        passphrase: str | None = None,
        fmt: Literal["p12", "pem"] = "p12",
        environments: Iterable[Environment] = ("production", "development"),
    ) -> tuple[Path, Path | None]:
        """Write a push client certificate: ``(p12, None)`` or ``(cert.pem, key.pem)``."""
        cert, key = self.issue_push_client(
            bundle_id, team_id=team_id, expired=expired, environments=environments
        )
        directory.mkdir(parents=True, exist_ok=True)
        stem = f"apns-{bundle_id}{'-expired' if expired else ''}"
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode())
            if passphrase
            else serialization.NoEncryption()
        )
        if fmt == "p12":
            p12_path = directory / f"{stem}.p12"
            data = pkcs12.serialize_key_and_certificates(
                name=f"{_PUSH_CN_PREFIX}{bundle_id}".encode(),
                key=key,
                cert=cert,
                cas=None,
                encryption_algorithm=encryption,
            )
            _write_private(p12_path, data)
            return p12_path, None
        if fmt != "pem":
            raise ValueError(f"format: expected 'p12' or 'pem', got {fmt!r}")
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(
            key_path,
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption),
        )
        return cert_path, key_path


def server_ssl_context(material: ServerMaterial) -> ssl.SSLContext:
    """TLS 1.2+ with ALPN ``h2``; client certificates signed by the sandbox CA are verified when offered.

    ``CERT_OPTIONAL`` mirrors APNs: token-auth clients connect without a certificate, certificate-auth
    clients present one. A certificate that fails verification (foreign CA, expired) aborts the handshake,
    as Apple does.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(material.cert_file, material.key_file)
    context.load_verify_locations(cafile=material.ca_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["h2"])
    return context


def push_certificate_bundle(cert: x509.Certificate) -> str | None:
    """The bundle id an APNs provider certificate is for (its ``UID``), or None if it is not one."""
    uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not uids or not cns:
        return None
    uid, cn = uids[0].value, cns[0].value
    if not isinstance(uid, str) or not isinstance(cn, str) or not cn.startswith("Apple Push Services"):
        return None
    return uid


def client_certificate_environments(cert: x509.Certificate) -> set[str]:
    """The APNs environments a push certificate is marked for (empty: unmarked, accepted anywhere)."""
    found: set[str] = set()
    for ext in cert.extensions:
        if ext.oid == APPLE_PRODUCTION_OID:
            found.add("production")
        elif ext.oid == APPLE_DEVELOPMENT_OID:
            found.add("development")
    return found
