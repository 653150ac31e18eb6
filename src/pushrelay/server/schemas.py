"""Request bodies of the HTTP API (also the OpenAPI document's schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._exceptions import NotificationError
from ..fourd.recipients import parse_recipients

__all__ = [
    "ERROR_RESPONSES",
    "BatchBody",
    "DeviceBatchBody",
    "DeviceBody",
    "ErrorBody",
    "RecipientsBody",
    "SendBody",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_NATIVE_KEYS = frozenset({"emails", "device_tokens", "all"})


class RecipientsBody(_Strict):
    """``{emails, device_tokens, all}``, or one of the 4D forms as 4D code passes them to
    ``send()``: an e-mail, a token, a list mixing both, ``{"mails", "deviceTokens", "simulators"}``."""

    emails: list[str] = Field(default_factory=list, max_length=100_000)
    device_tokens: list[str] = Field(default_factory=list, max_length=100_000)
    all: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_4d(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) <= _NATIVE_KEYS:
            return data
        if not isinstance(data, str | list | dict):
            raise ValueError(
                "expected an e-mail, a device token, a list of them, {mails, deviceTokens} "
                f"or {{emails, device_tokens, all}}; got {type(data).__name__}"
            )
        try:
            parsed = parse_recipients(data)
        except NotificationError as exc:
            raise ValueError(str(exc)) from None
        return {"emails": list(parsed.emails), "device_tokens": list(parsed.tokens)}


class SendBody(_Strict):
    app: str = Field(min_length=1, max_length=200)
    notification: dict[str, Any] = Field(
        description="4D fields (title, body, subtitle, badge, sound, category, url, imageUrl, color, "
        "userInfo, mutable-content) and the APNs options of the library",
        examples=[{"title": "This is title", "body": "Here is the content of this notification"}],
    )
    recipients: RecipientsBody
    targets: list[Literal["ios", "android", "web"]] | None = None
    send_at: datetime | None = Field(None, description="ISO 8601 with a time zone; deliver at that time")
    expires_at: datetime | None = Field(
        None, description="give up (outcome expired) after this; default 24 h"
    )
    deliver_at_local: str | None = Field(
        None,
        description='"HH:MM": deliver to each device at that time in its own time zone (the next one, '
        "within expires_at)",
        examples=["09:00"],
    )
    urgent: bool | None = Field(
        None,
        description="not held by the app's quiet hours; default: true for the interruption levels "
        "time-sensitive and critical",
    )
    priority: Literal[10, 5, 1] | None = None
    collapse_id: str | None = Field(None, max_length=64)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)


class BatchBody(_Strict):
    notifications: list[SendBody] = Field(
        min_length=1,
        max_length=1000,
        description="up to 1000 notifications, each as the body of POST /v1/notifications; "
        "committed together or not at all",
    )


class DeviceBody(_Strict):
    app: str = Field(min_length=1, max_length=100)
    platform: Literal["ios", "android", "web"] = "ios"
    token: str = Field(min_length=1, max_length=2048)
    email: str | None = None
    environment: Literal["production", "development"] | None = None
    language: str | None = Field(None, description="e.g. fr, es-MX (picks the notification's localization)")
    time_zone: str | None = Field(
        None, description="IANA zone, e.g. Europe/Paris (deliver_at_local, quiet hours)", max_length=64
    )
    app_version: str | None = None
    os: str | None = None
    os_version: str | None = None
    device_model: str | None = None
    device_id: str | None = None
    simulator: bool = False
    web_p256dh: str | None = None
    web_auth: str | None = None


class DeviceBatchBody(_Strict):
    # items stay raw here: each is checked as a DeviceBody on its own, so that one bad item gets
    # its own error in the results instead of refusing the whole batch
    devices: list[Any] = Field(
        min_length=1,
        max_length=1000,
        description="up to 1000 devices, each as the body of POST /v1/devices; results per item",
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. invalid_notification, rate_limited")
    message: str = Field(description="what was wrong and what was expected")
    field: str | None = Field(default=None, description="the offending field, e.g. notification.badge")


class ErrorBody(BaseModel):
    """Every refusal of the API: never a traceback."""

    error: ErrorDetail


def _error(text: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": text}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("the body is not JSON, or a cursor is not one this API returned"),
    401: _error("no API key, or an unknown or revoked one"),
    403: _error("the key lacks the scope or is not allowed for the app"),
    404: _error("no such notification or device (for this key's apps)"),
    409: _error("idempotency key reused with another body, or the notification is already completed"),
    413: _error("the body is larger than [service] max_body"),
    422: _error(
        "bad input, refused before anything is stored: field names it (NUL characters, dates outside "
        "1970-9999, badge range, unknown enum values, token shapes, payloads over a provider's limit)"
    ),
    429: _error("rate limited (per key, per client address for register keys, per device); see Retry-After"),
}
"""The error answers of every /v1 operation, for the OpenAPI document."""
