"""A fast HTTP/2 client for push providers: sans-IO core, asyncio connection, connection pool."""

from .connection import PendingRequest, Response
from .limit import AdaptiveLimit
from .pool import Http2Pool, PoolStats
from .protocol import ErrorCode, FrameTooLargeError, HeaderListTooLargeError, ResponseTooLargeError

__all__ = [
    "AdaptiveLimit",
    "ErrorCode",
    "FrameTooLargeError",
    "HeaderListTooLargeError",
    "Http2Pool",
    "PendingRequest",
    "PoolStats",
    "Response",
    "ResponseTooLargeError",
]
