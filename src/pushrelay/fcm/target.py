"""Who an FCM message goes to: a registration token, a topic, or a topic condition.

The clients take one text argument per recipient, so topics and conditions are spelled with a
prefix: ``"topic:news"`` (``"/topics/news"`` is accepted too) and
``"condition:'news' in topics && 'fr' in topics"``. Anything else is a registration token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .._exceptions import NotificationError

__all__ = ["FcmTarget"]

# FCM's own rule for topic names (firebase.google.com, "Send messages to topics").
_TOPIC = re.compile(r"[a-zA-Z0-9\-_.~%]{1,900}")


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
