"""What every route checks before doing anything: the API key, its rate limit, its scope and apps,
and that the app exists; plus the small encoders the routes share (times, page cursors)."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Header, Request

from .apikeys import ApiKey
from .errors import ApiError
from .service import Service

__all__ = ["Guards", "cursor_decode", "cursor_encode", "int_cursor", "iso"]

_BEARER = {"WWW-Authenticate": "Bearer"}


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def cursor_encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def cursor_decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned", field="cursor") from None


def int_cursor(cursor: str | None) -> int:
    """The row id a keyset page cursor encodes (0: first page)."""
    if not cursor:
        return 0
    try:
        after = int(cursor_decode(cursor))
    except ValueError:
        after = -1
    if not 0 <= after < 2**63:  # a row id is a 64-bit integer: anything else was not ours
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned", field="cursor")
    return after


class Guards:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def authenticate(
        self,
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> ApiKey:
        """The FastAPI dependency: the caller's key, or 401 / 429."""
        presented = x_api_key
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise ApiError(
                    401, "unauthorized", "Authorization must be 'Bearer <api key>'", headers=_BEARER
                )
            presented = value.strip()
        if not presented:
            raise ApiError(
                401, "unauthorized", "an API key is required (Authorization: Bearer <key>)", headers=_BEARER
            )
        # A key seen within the last seconds is answered from memory on the event loop: a sync
        # dependency would cost every request a hop through the thread pool (a fifth of the API's
        # CPU at 500 req/s in a py-spy profile). Only a miss reads the database, in a thread.
        key = self.service.keys.cached(presented)
        if key is None:
            key = await asyncio.to_thread(self.service.keys.authenticate, presented)
        if key is None:
            raise ApiError(401, "unauthorized", "the API key is unknown or revoked", headers=_BEARER)
        if set(key.scopes) == {"register"}:
            # a key every installed app carries: per client address, not one bucket for the fleet
            client = request.client.host if request.client else "?"
            wait = self.service.client_limiter.take(f"{key.id}|{client}")
            what = "from this client address"
        else:
            wait = self.service.limiter.take(key.id)
            what = "for this key"
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests {what}; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        return key

    def device_rate(self, app: str, token: str) -> None:
        """One device (app + token) registering or unregistering again and again: 429."""
        wait = self.service.device_limiter.take(f"{app}|{token.strip()}")
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                f"too many registrations of this device; retry in {wait} s",
                field="token",
                headers={"Retry-After": str(wait)},
            )

    @staticmethod
    def require(key: ApiKey, scope: str, app_name: str | None = None, field: str = "app") -> None:
        if not key.allows_scope(scope):
            raise ApiError(
                403, "forbidden", f"this key lacks the '{scope}' scope (it has: {', '.join(key.scopes)})"
            )
        if app_name is not None and not key.allows_app(app_name):
            raise ApiError(403, "forbidden", f"this key is not allowed for app '{app_name}'", field=field)

    def known_app(self, app_name: str, field: str = "app") -> None:
        if not self.service.knows_app(app_name):
            raise ApiError(
                422, "unknown_app", f"app '{app_name}' is not configured in this pushrelay", field=field
            )
