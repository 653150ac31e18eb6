"""The TLS context of every outgoing provider connection.

Verification is not optional: the context always checks the server's chain (system trust store,
plus an extra CA file for tests, proxies or the sandbox) and its host name. There is deliberately
no parameter to turn that off.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from typing import Protocol

from ._exceptions import ConfigurationError, CredentialsError
from ._pem import display_name, find_blocks, read_credential_file

__all__ = ["ClientCertificate", "client_ssl_context"]


class ClientCertificate(Protocol):
    """A client certificate that can present itself (:class:`pushrelay.apns.CertificateAuth`)."""

    def load_into(self, context: ssl.SSLContext) -> None: ...


# HTTP/2 over TLS 1.2 must use ephemeral key exchange and an AEAD cipher (RFC 9113 section 9.2.2);
# TLS 1.3 suites all qualify and are configured separately by OpenSSL.
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def _load_ca_file(context: ssl.SSLContext, ca_file: str | os.PathLike[str]) -> None:
    name = display_name(ca_file)
    data = read_credential_file(ca_file, what="CA file", field="ca_file")
    if not any(block.label == "CERTIFICATE" for block in find_blocks(data)):
        raise CredentialsError(
            f"CA file {name} holds no PEM certificate (expected '-----BEGIN CERTIFICATE-----')",
            field="ca_file",
            file=name,
        )
    try:
        context.load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError):
        raise CredentialsError(
            f"CA file {name} holds a damaged certificate", field="ca_file", file=name
        ) from None


def client_ssl_context(
    *,
    ca_file: str | os.PathLike[str] | None = None,
    client_cert: ClientCertificate | None = None,
    alpn: Sequence[str] = ("h2",),
) -> ssl.SSLContext:
    """A verifying client context: system CAs (+ ``ca_file``), TLS 1.2 or later, ALPN ``alpn``."""
    if isinstance(alpn, str) or not all(isinstance(p, str) and p for p in alpn):
        raise ConfigurationError(
            f"alpn must be a sequence of protocol names such as ('h2',), got {alpn!r}", field="alpn"
        )
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    # create_default_context already verifies; restated so that no default can ever weaken it.
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_TLS12_CIPHERS)
    if ca_file is not None:
        _load_ca_file(context, ca_file)
    if client_cert is not None:
        client_cert.load_into(context)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context
