"""FCM HTTP v1: service-account credentials, the 4D and standard message mappings, the client.

See ``docs/fcm.md``.
"""

from __future__ import annotations

from .client import DEFAULT_BASE_URL, FcmClient
from .credentials import FCM_SCOPE, ServiceAccount
from .errors import FcmError, classify, parse_error
from .mapping import MAX_MESSAGE_BYTES, QMOBILE_CHANNEL_ID, AndroidOptions, render, validate_message
from .settings import FcmSettings
from .target import FcmTarget
from .transport import Http2Transport, HttpResponse, HttpxTransport, Transport

__all__ = [
    "DEFAULT_BASE_URL",
    "FCM_SCOPE",
    "MAX_MESSAGE_BYTES",
    "QMOBILE_CHANNEL_ID",
    "AndroidOptions",
    "FcmClient",
    "FcmError",
    "FcmSettings",
    "FcmTarget",
    "Http2Transport",
    "HttpResponse",
    "HttpxTransport",
    "ServiceAccount",
    "Transport",
    "classify",
    "parse_error",
    "render",
    "validate_message",
]
