"""A fast HTTP/2 client for push providers: sans-IO core, asyncio connection, connection pool."""

from .connection import PendingRequest, Response
from .pool import Http2Pool, PoolStats

__all__ = ["Http2Pool", "PendingRequest", "PoolStats", "Response"]
