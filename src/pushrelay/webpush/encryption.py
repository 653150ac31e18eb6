"""RFC 8291 message encryption (``aes128gcm``) for one subscription, done by ``http-ece``.

Every message gets a fresh ephemeral P-256 key and a random 16-byte salt; the body is the
aes128gcm header (salt, record size, our public key as key id) followed by one record.
"""

from __future__ import annotations

import os

import http_ece  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.asymmetric import ec

from .subscription import WebSubscription

__all__ = ["RECORD_SIZE", "encrypt"]

#: One record holds the whole message (RFC 8291 §4: push services accept 4096-byte bodies).
RECORD_SIZE = 4096


def encrypt(plaintext: bytes, subscription: WebSubscription) -> bytes:
    """The ``Content-Encoding: aes128gcm`` body carrying ``plaintext`` to ``subscription``."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    body = http_ece.encrypt(
        plaintext,
        salt=os.urandom(16),
        private_key=ephemeral,
        dh=subscription.public_key(),
        auth_secret=subscription.auth_secret(),
        version="aes128gcm",
        rs=RECORD_SIZE,
    )
    assert isinstance(body, bytes)
    return body
