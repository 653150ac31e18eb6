"""Request bodies of the HTTP API (also the OpenAPI document's schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BatchBody", "DeviceBatchBody", "DeviceBody", "RecipientsBody", "SendBody"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecipientsBody(_Strict):
    emails: list[str] = Field(default_factory=list, max_length=100_000)
    device_tokens: list[str] = Field(default_factory=list, max_length=100_000)
    all: bool = False


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
    language: str | None = None
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
