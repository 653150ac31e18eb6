"""APNs certificate-based authentication: a TLS client certificate from a ``.p12`` or PEM files.

The certificate and key are parsed (and checked) in memory with ``cryptography``. Python's ``ssl``
can only load a client certificate from a file, so :meth:`CertificateAuth.load_into` writes one for
the duration of the call: a 0600 file in a fresh 0700 directory, deleted in a ``finally``, holding
the key encrypted under a random one-time passphrase that never leaves this process. A crash
between writing and deleting therefore leaves nothing usable behind.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    pkcs12,
)

from .._exceptions import CredentialsError
from .._pem import PemBlock, display_name, find_blocks, looks_like_der_sequence, read_credential_file
from .cert_topics import certificate_topics

__all__ = ["CertificateAuth"]

Clock = Callable[[], float]

_KEY_LABELS = ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _passphrase_bytes(passphrase: str | bytes | None) -> bytes | None:
    return passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase


def _looks_like_pkcs12(data: bytes) -> bool:
    # PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, macData MacData OPTIONAL }
    if not looks_like_der_sequence(data):
        return False
    header = 2 + (data[1] & 0x7F if data[1] & 0x80 else 0)
    return data[header : header + 3] == b"\x02\x01\x03"


def _spki(key: PrivateKeyTypes | x509.Certificate) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _load_pem_key(block: PemBlock, passphrase: bytes | None, source: str) -> PrivateKeyTypes:
    if block.encrypted and passphrase is None:
        raise CredentialsError(
            f"the private key in {source} is protected by a passphrase; none was given",
            field="passphrase",
            file=source,
        )
    try:
        return load_pem_private_key(block.text, password=passphrase if block.encrypted else None)
    except (ValueError, TypeError):
        if block.encrypted:
            raise CredentialsError(
                f"wrong passphrase for {source}", field="passphrase", file=source
            ) from None
        raise CredentialsError(
            f"the {block.label} block in {source} is damaged or of an unsupported kind",
            field="key_file",
            file=source,
        ) from None


class CertificateAuth:
    """A client certificate (with its private key and chain) that authenticates to APNs over TLS."""

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: PrivateKeyTypes,
        *,
        chain: Sequence[x509.Certificate] = (),
        source: str = "<memory>",
        clock: Clock = time.time,
    ) -> None:
        if _spki(private_key) != _spki(certificate):
            raise CredentialsError(
                f"the private key does not belong to the certificate in {source}",
                field="key_file",
                file=source,
            )
        self._certificate = certificate
        self._key = private_key
        self._chain = tuple(chain)
        self._clock = clock
        self.source = source
        self.not_before: datetime = certificate.not_valid_before_utc
        self.not_after: datetime = certificate.not_valid_after_utc
        self.subject: str = certificate.subject.rfc4514_string()
        self.topics: tuple[str, ...] = certificate_topics(certificate)
        self.check_valid()

    @classmethod
    def from_p12(
        cls, path: str | os.PathLike[str], passphrase: str | bytes | None = None, *, clock: Clock = time.time
    ) -> CertificateAuth:
        """Load a PKCS#12 export (``.p12`` / ``.pfx``) holding the certificate and its key."""
        source = display_name(path)
        data = read_credential_file(path, what="certificate file", field="cert_file")
        if find_blocks(data):
            raise CredentialsError(
                f"{source} is a PEM file, not PKCS#12: load it with CertificateAuth.from_pem",
                field="cert_file",
                file=source,
            )
        if not _looks_like_pkcs12(data):
            raise CredentialsError(f"{source} is not a PKCS#12 (.p12) file", field="cert_file", file=source)
        password = _passphrase_bytes(passphrase)
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password)
        except ValueError:
            if password is None:
                raise CredentialsError(
                    f"{source} is protected by a passphrase; none was given", field="passphrase", file=source
                ) from None
            try:  # a passphrase configured for a file exported without one is harmless
                key, cert, extra = pkcs12.load_key_and_certificates(data, None)
            except ValueError:
                raise CredentialsError(
                    f"wrong passphrase for {source}", field="passphrase", file=source
                ) from None
        # Without a key, OpenSSL files every certificate as "additional": check the key first.
        if key is None:
            raise CredentialsError(
                f"no private key found in {source}: export the certificate together with its key",
                field="cert_file",
                file=source,
            )
        if cert is None:
            raise CredentialsError(
                f"no certificate matching the private key found in {source}", field="cert_file", file=source
            )
        return cls(cert, key, chain=extra, source=source, clock=clock)

    @classmethod
    def from_pem(
        cls,
        cert_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str] | None = None,
        passphrase: str | bytes | None = None,
        *,
        clock: Clock = time.time,
    ) -> CertificateAuth:
        """Load PEM files: the certificate (then any chain) and its key, in one file or two."""
        source = display_name(cert_path)
        data = read_credential_file(cert_path, what="certificate file", field="cert_file")
        cert_blocks = [b for b in find_blocks(data) if b.label == "CERTIFICATE"]
        if not cert_blocks:
            hint = ": use CertificateAuth.from_p12" if _looks_like_pkcs12(data) else ""
            raise CredentialsError(
                f"{source} holds no PEM certificate ('-----BEGIN CERTIFICATE-----'){hint}",
                field="cert_file",
                file=source,
            )
        try:
            certs = [x509.load_pem_x509_certificate(b.text) for b in cert_blocks]
        except ValueError:
            raise CredentialsError(
                f"a CERTIFICATE block in {source} is damaged", field="cert_file", file=source
            ) from None
        key_source, key_data = source, data
        if key_path is not None:
            key_source = display_name(key_path)
            key_data = read_credential_file(key_path, what="key file", field="key_file")
        key_block = next((b for b in find_blocks(key_data) if b.label in _KEY_LABELS), None)
        if key_block is None:
            hint = "" if key_path is not None else " (pass the key file as key_path)"
            raise CredentialsError(
                f"no private key found in {key_source}{hint}", field="key_file", file=key_source
            )
        key = _load_pem_key(key_block, _passphrase_bytes(passphrase), key_source)
        return cls(certs[0], key, chain=certs[1:], source=source, clock=clock)

    def check_valid(self) -> None:
        """Raise :class:`CredentialsError` when the certificate is expired or not yet valid now."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        if now >= self.not_after:
            raise CredentialsError(
                f"certificate {self.source} expired on {_utc(self.not_after)}: "
                "create a new one in the Apple Developer account",
                field="cert_file",
                file=self.source,
            )
        if now < self.not_before:
            raise CredentialsError(
                f"certificate {self.source} is not valid before {_utc(self.not_before)} "
                "(is the system clock right?)",
                field="cert_file",
                file=self.source,
            )

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    def load_into(self, context: ssl.SSLContext) -> None:
        """Make ``context`` present this certificate (and its chain) as the TLS client certificate."""
        one_time = secrets.token_hex(32).encode("ascii")
        pem = b"".join(c.public_bytes(Encoding.PEM) for c in (self._certificate, *self._chain))
        pem += self._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(one_time))
        with tempfile.TemporaryDirectory(prefix="pushrelay-cert-") as directory:  # created 0700
            path = os.path.join(directory, "client.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(pem)
                context.load_cert_chain(path, password=one_time)
            finally:
                os.unlink(path)

    def __repr__(self) -> str:
        expiry = _utc(self.not_after)
        return f"CertificateAuth(subject={self.subject!r}, topics={self.topics!r}, not_after={expiry!r})"
