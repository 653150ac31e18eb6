"""The provider-neutral notification: the 4D fields plus every APNs option.

A :class:`Notification` is an immutable value. Build it with keywords, or from a mapping with
:meth:`Notification.from_dict`, which accepts the 4D spellings (``imageUrl``, ``userInfo``,
``mutable-content``), the APNs header/payload spellings (``thread-id``, ``apns-collapse-id``) and
pythonic ones (``image_url``). Unknown keys and wrong types raise :class:`NotificationError`
naming the field. Rendering to a provider's wire format lives with each provider
(:mod:`pushrelay.apns.payload`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ._exceptions import NotificationError
from .localization import best_tag, check_localizations

__all__ = ["PUSH_TYPES", "Notification", "SoundSpec"]

PushType = Literal[
    "alert", "background", "voip", "complication", "fileprovider", "location",
    "liveactivity", "pushtotalk", "widgets", "mdm",
]  # fmt: skip
PUSH_TYPES: frozenset[str] = frozenset(PushType.__args__)  # type: ignore[attr-defined]
INTERRUPTION_LEVELS = frozenset({"passive", "active", "time-sensitive", "critical"})


@dataclass(frozen=True, slots=True)
class SoundSpec:
    """A critical-alert sound: ``{"critical": 1, "name": ..., "volume": 0..1}``."""

    name: str = "default"
    critical: bool = True
    volume: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.volume, bool) or not isinstance(self.volume, int | float):
            raise NotificationError("sound.volume must be a number between 0 and 1", field="sound.volume")
        if not 0.0 <= float(self.volume) <= 1.0 or math.isnan(self.volume):
            raise NotificationError(
                f"sound.volume must be between 0 and 1, got {self.volume}", field="sound.volume"
            )

    def to_json(self) -> dict[str, Any]:
        return {"critical": 1 if self.critical else 0, "name": self.name, "volume": self.volume}


@dataclass(frozen=True, slots=True)
class Notification:
    # -- the 4D fields -------------------------------------------------------------------------
    title: str | None = None
    body: str | None = None
    subtitle: str | None = None
    badge: int | None = None
    sound: str | SoundSpec | None = None
    category: str | None = None
    url: str | None = None
    image_url: str | None = None
    color: str | None = None
    user_info: Mapping[str, Any] = field(default_factory=dict)
    mutable_content: bool | None = None
    # -- APNs options (SPEC §3) ----------------------------------------------------------------
    push_type: str | None = None  # derived from the content when None
    priority: int | None = None  # 10 / 5 / 1; derived when None (background => 5)
    expiration: int | None = None  # absolute UNIX epoch seconds; 0 = deliver once
    collapse_id: str | None = None
    thread_id: str | None = None
    interruption_level: str | None = None
    relevance_score: float | None = None
    content_available: bool | None = None
    target_content_id: str | None = None
    launch_image: str | None = None
    title_loc_key: str | None = None
    title_loc_args: tuple[str, ...] | None = None
    subtitle_loc_key: str | None = None
    subtitle_loc_args: tuple[str, ...] | None = None
    loc_key: str | None = None
    loc_args: tuple[str, ...] | None = None
    filter_criteria: str | None = None
    # live activities
    timestamp: int | None = None
    event: str | None = None
    content_state: Mapping[str, Any] | None = None
    dismissal_date: int | None = None
    stale_date: int | None = None
    attributes_type: str | None = None
    attributes: Mapping[str, Any] | None = None
    # extra top-level payload keys, beside userInfo
    custom: Mapping[str, Any] = field(default_factory=dict)
    # per-language texts, {"fr": {"title": ..., "body": ...}} (see pushrelay.localization)
    localizations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.localizations:
            # keyword construction gets the same checks and spellings as from_dict
            object.__setattr__(self, "localizations", check_localizations(self.localizations))
        _validate(self)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Notification) -> Notification:
        """Build from a mapping using 4D, APNs or pythonic key spellings."""
        if isinstance(data, Notification):
            return data
        if not isinstance(data, Mapping):
            raise NotificationError(
                f"a notification must be an object, got {type(data).__name__}", field="notification"
            )
        kwargs: dict[str, Any] = {}
        ttl: Any = None
        for key, value in data.items():
            if not isinstance(key, str):
                raise NotificationError(f"notification keys must be text, got {key!r}", field=str(key))
            name = _ALIASES.get(key) or _ALIASES.get(key.lower())
            if name == "ttl":
                ttl = value
                continue
            if name is None:
                raise NotificationError(
                    f"unknown notification field {key!r}; expected one of: {', '.join(sorted(_FIELD_NAMES))}",
                    field=key,
                )
            if name in kwargs:
                raise NotificationError(f"notification field {name!r} is given twice", field=key)
            kwargs[name] = _coerce(name, value)
        if ttl is not None:
            if "expiration" in kwargs:
                raise NotificationError("give either expiration or ttl, not both", field="ttl")
            kwargs["expiration"] = expiration_from_ttl(ttl)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Notification:
        return dataclasses.replace(self, **changes)

    def localized(self, language: str | None) -> Notification:
        """The notification as a device speaking ``language`` gets it: the best-matching variant's
        texts in place of the notification's own (see :mod:`pushrelay.localization`), without the
        other variants."""
        if not self.localizations:
            return self
        tag = best_tag(self.localizations, language)
        changes: dict[str, Any] = dict(self.localizations[tag]) if tag is not None else {}
        return dataclasses.replace(self, localizations={}, **changes)

    def variants(self) -> list[tuple[str | None, Notification]]:
        """``(tag, notification)`` for the notification's own text (tag None) and for each
        language: what a payload-size check must render (the largest must fit)."""
        out: list[tuple[str | None, Notification]] = [(None, self.localized(None))]
        for tag in self.localizations:
            out.append((tag, self.localized(tag)))
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (pythonic keys, ``None`` fields left out) that from_dict reads back."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name in ("user_info", "custom", "localizations") and not value):
                continue
            if isinstance(value, SoundSpec):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            elif f.name == "localizations":
                value = {tag: dict(texts) for tag, texts in value.items()}
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @property
    def has_visible_content(self) -> bool:
        return any(
            v is not None
            for v in (self.title, self.body, self.subtitle, self.loc_key, self.title_loc_key, self.sound,
                      self.badge)
        )  # fmt: skip


def expiration_from_ttl(ttl: Any, *, now: float | None = None) -> int:
    """Turn a relative time-to-live in seconds into the absolute epoch APNs wants (never relative)."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0:
        raise NotificationError(f"ttl must be a number of seconds >= 0, got {ttl!r}", field="ttl")
    base = datetime.now(UTC).timestamp() if now is None else now
    return int(base + ttl)


# -- key spellings -----------------------------------------------------------------------------
_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Notification)) | {"ttl"}
_ALIASES: dict[str, str] = {name: name for name in _FIELD_NAMES}
for _name in list(_FIELD_NAMES):
    _ALIASES[_name.replace("_", "-")] = _name
    _parts = _name.split("_")
    _ALIASES[_parts[0] + "".join(p.title() for p in _parts[1:])] = _name  # camelCase: imageUrl
_ALIASES.update(
    {
        "imageurl": "image_url",
        "userinfo": "user_info",
        "apns-push-type": "push_type",
        "apns-priority": "priority",
        "apns-expiration": "expiration",
        "apns-collapse-id": "collapse_id",
        "expires_at": "expiration",
        "time_to_live": "ttl",
        "content-state": "content_state",
        "attributes-type": "attributes_type",
    }
)


def _coerce(name: str, value: Any) -> Any:
    """Normalise JSON-ish input into the field's Python type, naming the field on failure."""
    if value is None:
        return None
    if name == "badge":
        # 4D accepts a real number and truncates it
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise NotificationError(f"badge must be an integer, got {value!r}", field="badge")
        return int(value)
    if name == "sound" and isinstance(value, Mapping):
        unknown = set(value) - {"critical", "name", "volume"}
        if unknown:
            raise NotificationError(
                f"sound accepts critical, name and volume; unknown: {', '.join(sorted(unknown))}",
                field="sound",
            )
        return SoundSpec(
            name=str(value.get("name", "default")),
            critical=bool(value.get("critical", 1)),
            volume=value.get("volume", 1.0),
        )
    if name in ("mutable_content", "content_available"):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise NotificationError(f"{name} must be true/false or 0/1, got {value!r}", field=name)
    if name == "localizations":
        return check_localizations(value)
    if name == "expiration" and isinstance(value, datetime):
        return int(value.timestamp())
    if name.endswith("_loc_args") or name == "loc_args":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise NotificationError(f"{name} must be a list of texts", field=name)
        return tuple(value)
    return value


_TEXT_FIELDS = (
    "title", "body", "subtitle", "category", "url", "image_url", "color", "collapse_id", "thread_id",
    "target_content_id", "launch_image", "title_loc_key", "subtitle_loc_key", "loc_key",
    "filter_criteria", "event", "attributes_type",
)  # fmt: skip
MAX_BADGE = 2**31 - 1
_INT64 = 2**63
_INT_FIELDS = ("badge", "priority", "expiration", "timestamp", "dismissal_date", "stale_date")
_OBJECT_FIELDS = ("user_info", "custom", "content_state", "attributes")


def _validate(n: Notification) -> None:
    for name in _TEXT_FIELDS:
        v = getattr(n, name)
        if v is not None and not isinstance(v, str):
            raise NotificationError(f"{name} must be text, got {type(v).__name__}", field=name)
    for name in _INT_FIELDS:
        v = getattr(n, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise NotificationError(f"{name} must be an integer, got {v!r}", field=name)
    for name in _OBJECT_FIELDS:
        v = getattr(n, name)
        if v is None:
            continue
        if not isinstance(v, Mapping):
            raise NotificationError(f"{name} must be an object, got {type(v).__name__}", field=name)
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise NotificationError(f"{name} is not JSON-serialisable: {exc}", field=name) from None
    if n.badge is not None and not 0 <= n.badge <= MAX_BADGE:
        # APNs and the apps read the badge as a signed 32-bit number
        raise NotificationError(f"badge must be between 0 and {MAX_BADGE}, got {n.badge}", field="badge")
    for name in _INT_FIELDS:
        v = getattr(n, name)
        if v is not None and not -_INT64 <= v < _INT64:
            raise NotificationError(f"{name} is out of range (a 64-bit integer), got {v}", field=name)
    if n.sound is not None and not isinstance(n.sound, str | SoundSpec):
        raise NotificationError("sound must be text or {critical, name, volume}", field="sound")
    if n.push_type is not None and n.push_type not in PUSH_TYPES:
        raise NotificationError(
            f"push_type must be one of {', '.join(sorted(PUSH_TYPES))}, got {n.push_type!r}",
            field="push_type",
        )
    if n.priority is not None and n.priority not in (1, 5, 10):
        raise NotificationError(f"priority must be 10, 5 or 1, got {n.priority!r}", field="priority")
    if n.expiration is not None and n.expiration < 0:
        raise NotificationError("expiration must be UNIX epoch seconds >= 0", field="expiration")
    if n.collapse_id is not None and len(n.collapse_id.encode()) > 64:
        raise NotificationError(
            f"collapse_id is {len(n.collapse_id.encode())} bytes in UTF-8; at most 64 are allowed",
            field="collapse_id",
        )
    if n.interruption_level is not None and n.interruption_level not in INTERRUPTION_LEVELS:
        raise NotificationError(
            f"interruption_level must be one of {', '.join(sorted(INTERRUPTION_LEVELS))}",
            field="interruption_level",
        )
    if n.relevance_score is not None and (
        isinstance(n.relevance_score, bool) or not isinstance(n.relevance_score, int | float)
    ):
        raise NotificationError("relevance_score must be a number", field="relevance_score")
    if n.relevance_score is not None and not math.isfinite(n.relevance_score):
        raise NotificationError("relevance_score must be a finite number", field="relevance_score")
    if n.color is not None and not (
        len(n.color) == 7 and n.color[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in n.color[1:])
    ):
        raise NotificationError(f"color must be #rrggbb, got {n.color!r}", field="color")
    reserved = {"aps"} & (set(n.user_info) | set(n.custom))
    if reserved:
        raise NotificationError("userInfo/custom may not use the key 'aps'", field="user_info")
    if not (
        n.has_visible_content
        or n.content_available
        or n.user_info
        or n.custom
        or n.content_state is not None
        or n.event is not None
        or n.image_url
    ):
        raise NotificationError(
            "the notification is empty: give at least a title, body, sound, badge, userInfo or "
            "content-available",
            field="notification",
        )
