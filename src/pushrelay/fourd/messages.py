"""Warning and error texts of sends. Those 4D also produces are spelled exactly as 4D spells them.

Shared by the recipient rules (:mod:`.targets`), the library's results and the worker.
"""

from __future__ import annotations

from datetime import datetime

from ..registry.tokens import mask_token

__all__ = ["messages"]


class messages:
    """Warning and error texts. Those 4D also produces are spelled exactly as 4D spells them."""

    NO_RECIPIENT_GIVEN = "No recipient given"
    NO_RECIPIENT_FOUND = "No recipient found"
    BOTH_EMPTY = "Both mails and deviceTokens collections are empty"
    RAW_TOKEN_EMAIL = "No mail address specified, raw deviceToken was given"  # noqa: S105
    DATACLASS_EMPTY = "DataClass name cannot be empty"
    DATACLASS_UNDEFINED = "DataClass is not defined correctly"
    DATACLASS_TYPE = "First parameter must be a DataClass, an Entity or a Text (dataClass name)"

    _PLATFORM_NAMES = {"ios": "iOS", "android": "Android", "web": "web"}

    @staticmethod
    def no_session(email: str) -> str:
        return f"No session file was found for the following mail address : {email}"

    @staticmethod
    def no_device_for_targets(email: str) -> str:
        # 4D's text for "sessions exist but none is usable"
        return f"We couldn't find related deviceTokens to the following mail address : {email}"

    @classmethod
    def failed(cls, platform: str, email: str | None, token: str, reason: str | None) -> str:
        name = cls._PLATFORM_NAMES.get(platform, platform)
        who = f"[{email or cls.RAW_TOKEN_EMAIL} ; {mask_token(token)}]"
        text = f"Failed to send {name} push notification to : {who}"
        return f"{text} ({reason})" if reason else text

    @classmethod
    def retired(cls, email: str | None, token: str, retired_at: datetime | None, reason: str | None) -> str:
        when = f" on {retired_at:%Y-%m-%d}" if retired_at else ""
        why = f" ({reason})" if reason else ""
        return (
            f"Skipped retired device [{email or cls.RAW_TOKEN_EMAIL} ; {mask_token(token)}]: "
            f"retired{when}{why}; it is used again when the app registers it again"
        )

    @staticmethod
    def retired_skipped(app: str, count: int) -> str:
        return (
            f"{count} retired device(s) of app {app} were skipped; "
            "they are used again when the app registers them again"
        )

    @staticmethod
    def unregistered_sent(token: str, app: str) -> str:
        return f"The device token {mask_token(token)} is not registered for app {app}; sent anyway"

    @staticmethod
    def unregistered_refused(token: str, app: str) -> str:
        return (
            f"The device token {mask_token(token)} is not registered for app {app}; not sent "
            "(registered_tokens_only is set)"
        )

    @staticmethod
    def not_in_targets(token: str, platform: str, targets: tuple[str, ...]) -> str:
        wanted = ", ".join(targets)
        return f"The device token {mask_token(token)} is a {platform} device, not among the targets: {wanted}"
