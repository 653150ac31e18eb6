"""Who an FCM message goes to: a registration token, a topic, or a topic condition.

The clients take one text argument per recipient, so topics and conditions are spelled with a
prefix: ``"topic:news"`` (``"/topics/news"`` is accepted too) and
``"condition:'news' in topics && 'fr' in topics"``. Anything else is a registration token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from .._exceptions import NotificationError

__all__ = ["REGISTRATION_TOKEN_MAX", "REGISTRATION_TOKEN_MIN", "FcmTarget", "registration_token_problem"]

# FCM's own rule for topic names (firebase.google.com, "Send messages to topics").
_TOPIC = re.compile(r"[a-zA-Z0-9\-_.~%]{1,900}")
# Registration tokens as FirebaseMessaging.getToken() returns them: base64url text with a ":"
# ("<instance id>:APA91b..."), about 140-200 characters today. Google publishes no format, so
# only what cannot be one is refused: short names ("phone-1"), other characters, over 4 KB.
REGISTRATION_TOKEN_MIN: Final = 100
REGISTRATION_TOKEN_MAX: Final = 4096
_REGISTRATION_CHARS = re.compile(r"[A-Za-z0-9_:\-]+")
_APNS_HEX = re.compile(r"[0-9a-fA-F]{64,}")


def registration_token_problem(token: str) -> str | None:
    """Why ``token`` cannot be an Android device's FCM registration token, or None.

    For registration APIs: it catches the usual mix-ups (an APNs token or a Web Push endpoint sent
    with platform android, a topic registered as a device) before anything is stored.
    """
    t = token.strip()
    if t.startswith(("topic:", "/topics/", "condition:")):
        return (
            "a device is registered with its own FCM registration token; topics and conditions are "
            "recipients of a send, not devices"
        )
    if t.lower().startswith(("https://", "http://")):
        return "this is a URL (a Web Push endpoint?): register browsers with platform web"
    if _APNS_HEX.fullmatch(t.strip("<>").replace(" ", "")):
        return "this is an APNs device token (hexadecimal): register it with platform ios"
    if not _REGISTRATION_CHARS.fullmatch(t):
        return (
            "an FCM registration token is made of letters, digits and - _ : only "
            "(as FirebaseMessaging.getToken() returns it)"
        )
    if not REGISTRATION_TOKEN_MIN <= len(t) <= REGISTRATION_TOKEN_MAX:
        return (
            f"an FCM registration token is {REGISTRATION_TOKEN_MIN} to {REGISTRATION_TOKEN_MAX} "
            f"characters (as FirebaseMessaging.getToken() returns it), got {len(t)}"
        )
    return None


@dataclass(frozen=True, slots=True)
class FcmTarget:
    """One recipient of an FCM v1 message: ``kind`` is the message field it fills."""

    kind: Literal["token", "topic", "condition"]
    value: str

    @classmethod
    def parse(cls, target: str | FcmTarget) -> FcmTarget:
        """Read ``"topic:<name>"``, ``"condition:<expr>"`` or a registration token.

        A malformed topic name or an empty condition raises :class:`NotificationError` naming
        ``topic`` / ``condition``; tokens are not checked here (FCM judges them, and an unknown
        token comes back as a token-level outcome).
        """
        if isinstance(target, FcmTarget):
            return target
        if not isinstance(target, str):
            raise NotificationError(
                f"an FCM recipient must be a token, 'topic:<name>' or 'condition:<expr>', "
                f"got {type(target).__name__}",
                field="token",
            )
        if target.startswith("topic:"):
            return cls.topic(target[len("topic:") :])
        if target.startswith("/topics/"):
            return cls.topic(target[len("/topics/") :])
        if target.startswith("condition:"):
            return cls.condition(target[len("condition:") :])
        return cls("token", target)

    @classmethod
    def topic(cls, name: str) -> FcmTarget:
        name = name.removeprefix("/topics/")
        if not _TOPIC.fullmatch(name):
            raise NotificationError(
                f"FCM topic names are 1-900 characters of letters, digits and -_.~%, got {name!r:.60}",
                field="topic",
            )
        return cls("topic", name)

    @classmethod
    def condition(cls, expression: str) -> FcmTarget:
        expression = expression.strip()
        if not expression:
            raise NotificationError(
                "an FCM condition is an expression such as \"'news' in topics && 'fr' in topics\"",
                field="condition",
            )
        return cls("condition", expression)

    def __str__(self) -> str:
        """The spelling the clients accept and report in ``DeliveryResult.token``."""
        return self.value if self.kind == "token" else f"{self.kind}:{self.value}"
