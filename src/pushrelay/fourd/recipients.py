"""The recipients argument of ``send()``, read as 4D reads it.

Accepted shapes (4D's ``manageEntryRecipient``):

- a text: an e-mail address, or else a device token (or simulator UDID);
- a list of texts, each classified the same way (emails and tokens mixed);
- an object ``{"mails": [...], "deviceTokens": [...], "simulators": [...]}`` (4D spellings; the
  pythonic ``emails`` / ``tokens`` are accepted too). A single text in place of a list is fine.

Duplicates are dropped (e-mail addresses compared case-insensitively), first spelling kept.
Anything else is a :class:`~pushrelay.NotificationError` naming ``recipients``: a programming
error is better raised than reported as "no recipient".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._exceptions import NotificationError
from ..registry.tokens import is_email, normalize_email

__all__ = ["Recipients", "parse_recipients"]

_KEYS = {
    "mails": "emails",
    "emails": "emails",
    "devicetokens": "tokens",
    "tokens": "tokens",
    "simulators": "tokens",
}


@dataclass(frozen=True, slots=True)
class Recipients:
    emails: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.emails and not self.tokens


def _items(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise NotificationError(
            f"{where} must be a text or a list of texts, got {type(value).__name__}", field="recipients"
        )
    out: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise NotificationError(
                f"{where}[{index}] must be a text (an e-mail address or a device token), "
                f"got {type(item).__name__}",
                field="recipients",
            )
        out.append(item)
    return out


def parse_recipients(value: Any) -> Recipients:
    """Split ``value`` into e-mail addresses and tokens (see the module docstring)."""
    emails: list[str] = []
    tokens: list[str] = []
    if isinstance(value, Mapping):
        for key, part in value.items():
            kind = _KEYS.get(str(key).lower())
            if kind is None:
                raise NotificationError(
                    f"unknown recipients key {key!r}; expected mails, deviceTokens or simulators",
                    field="recipients",
                )
            (emails if kind == "emails" else tokens).extend(_items(part, f"recipients.{key}"))
    else:
        for item in _items(value, "recipients"):
            (emails if is_email(item.strip()) else tokens).append(item)
    return Recipients(
        emails=_dedupe((e.strip() for e in emails if e.strip()), key=normalize_email),
        tokens=_dedupe((t.strip() for t in tokens if t.strip()), key=lambda t: t),
    )


def _dedupe(items: Iterable[str], *, key: Any) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return tuple(out)
