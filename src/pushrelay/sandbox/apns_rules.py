"""What APNs accepts, as data: push types, topic suffixes, priorities, size limits, reasons.

Sources: Apple, "Sending notification requests to APNs" and "Handling notification responses from
APNs" (developer.apple.com), SPEC §3. Where Apple's documentation is silent the choice made here is
noted next to the rule and in docs/sandbox.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "BACKGROUND",
    "DEFAULT_PUSH_TYPE",
    "DEVICE_PATH_PREFIX",
    "MAX_COLLAPSE_ID_BYTES",
    "PROVIDER_TOKEN_FUTURE_SKEW",
    "PROVIDER_TOKEN_LIFETIME",
    "PROVIDER_TOKEN_MIN_REFRESH",
    "PUSH_TYPES",
    "SUFFIX_TO_PUSH_TYPE",
    "PushTypeRule",
    "Rejection",
    "is_device_token",
    "is_topic",
    "is_uuid",
    "split_topic",
]

DEVICE_PATH_PREFIX = "/3/device/"
MAX_COLLAPSE_ID_BYTES = 64
PROVIDER_TOKEN_LIFETIME = 3600.0  # older than this: 403 ExpiredProviderToken
PROVIDER_TOKEN_MIN_REFRESH = 20 * 60.0  # a new token sooner than this: 429 TooManyProviderTokenUpdates
PROVIDER_TOKEN_FUTURE_SKEW = 60.0  # iat further ahead than this: 403 InvalidProviderToken


class Rejection(NamedTuple):
    """An APNs error answer: HTTP status and the ``reason`` of the JSON body."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class PushTypeRule:
    name: str
    topic_suffix: str  # appended to the bundle id to form the apns-topic
    priorities: frozenset[int]
    default_priority: int  # when apns-priority is absent
    max_payload: int  # bytes


_ALL_PRIORITIES = frozenset({10, 5, 1})
_STANDARD = 4096
_VOIP = 5120

PUSH_TYPES: dict[str, PushTypeRule] = {
    rule.name: rule
    for rule in (
        PushTypeRule("alert", "", _ALL_PRIORITIES, 10, _STANDARD),
        # Apple: "the apns-priority must be 5" for background pushes; 1 (power-friendly) is lower still
        # and accepted. 10 is answered 400 BadPriority.
        PushTypeRule("background", "", frozenset({5, 1}), 5, _STANDARD),
        PushTypeRule("voip", ".voip", _ALL_PRIORITIES, 10, _VOIP),
        PushTypeRule("complication", ".complication", _ALL_PRIORITIES, 10, _STANDARD),
        PushTypeRule("fileprovider", ".pushkit.fileprovider", _ALL_PRIORITIES, 10, _STANDARD),
        PushTypeRule("location", ".location-query", _ALL_PRIORITIES, 10, _STANDARD),
        PushTypeRule("liveactivity", ".push-type.liveactivity", _ALL_PRIORITIES, 10, _STANDARD),
        PushTypeRule("pushtotalk", ".voip-ptt", _ALL_PRIORITIES, 10, _STANDARD),
        PushTypeRule("widgets", ".push-type.widgets", _ALL_PRIORITIES, 10, _STANDARD),
        PushTypeRule("mdm", "", _ALL_PRIORITIES, 10, _STANDARD),
    )
}
BACKGROUND = PUSH_TYPES["background"]
# Apple made apns-push-type optional again for iOS (it is required only for watchOS): without it the
# notification is treated as an alert.
DEFAULT_PUSH_TYPE = PUSH_TYPES["alert"]

# Longest suffix first, so ".voip-ptt" is never mistaken for something shorter.
SUFFIX_TO_PUSH_TYPE: dict[str, str] = dict(
    sorted(
        ((rule.topic_suffix, rule.name) for rule in PUSH_TYPES.values() if rule.topic_suffix),
        key=lambda item: len(item[0]),
        reverse=True,
    )
)

# A bundle id (reverse-DNS: letters, digits, hyphens, dots; no empty segment), optionally followed by a
# push-type suffix, which has the same shape. Anything else is 400 BadTopic.
_TOPIC_RE = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_device_token(token: str) -> bool:
    """Hex, an even number of digits, at least 64 (32 bytes); live-activity tokens are longer (160)."""
    return len(token) >= 64 and not len(token) % 2 and _HEX_RE.fullmatch(token) is not None


def is_topic(topic: str) -> bool:
    return _TOPIC_RE.fullmatch(topic) is not None


def is_uuid(value: str) -> bool:
    return _UUID_RE.fullmatch(value) is not None


def split_topic(topic: str, is_bundle: dict[str, str] | set[str]) -> tuple[str, str | None]:
    """``(bundle id, push type its suffix implies or None)``; a suffix counts only after a known bundle."""
    for suffix, push_type in SUFFIX_TO_PUSH_TYPE.items():
        if topic.endswith(suffix):
            base = topic[: -len(suffix)]
            if base in is_bundle:
                return base, push_type
    return topic, None
