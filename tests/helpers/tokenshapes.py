"""Made-up device tokens of the shapes the services issue (registration refuses other shapes).

``fcm_token("pixel")`` is stable for a name, so that a test can register a token and later look
for it in a sandbox's inbox without keeping it around."""

from __future__ import annotations

import base64
import hashlib


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def fcm_token(name: str) -> str:
    """An FCM registration token shape: ``<instance id>:APA91b<...>``, 163 characters."""
    seed = name.encode()
    instance = _b64(hashlib.sha256(b"instance:" + seed).digest())[:22]
    body = _b64(hashlib.sha512(b"a:" + seed).digest() + hashlib.sha512(b"b:" + seed).digest())[:134]
    return f"{instance}:APA91b{body}"


def fcm_fid(name: str) -> str:
    """A Firebase Installation ID shape, as the Installations SDKs generate one: 17 bytes whose
    first 4 bits are 0111, base64url, the first 22 characters (so it starts with c, d, e or f)."""
    raw = bytearray(hashlib.sha256(b"fid:" + name.encode()).digest()[:17])
    raw[0] = (raw[0] & 0x0F) | 0x70
    return _b64(bytes(raw))[:22]


def apns_token(name: str) -> str:
    """An APNs device token shape: 64 lower-case hex digits."""
    return hashlib.sha256(b"apns:" + name.encode()).hexdigest()
