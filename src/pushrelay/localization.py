"""Per-language texts of a notification: ``localizations = {"fr": {...}, "es-MX": {...}}``.

Each device gets the best match for its language (registered with the device, or the ``language``
of its 4D session): the exact tag, then its base language, then the notification's own text.
Tags compare case-insensitively and ``_`` counts as ``-`` (4D writes ``fr_FR``). Only text that
differs per language can be localised; a variant replaces those fields and keeps the rest, so the
badge, sound and userInfo are the same for everybody. APNs ``loc-key``/``title-loc-key`` stay for
apps that localise on the device.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._exceptions import NotificationError

__all__ = ["LOCALIZABLE", "best_tag", "check_localizations", "normalize_tag"]

# the notification fields a variant may replace (pythonic names)
LOCALIZABLE = ("title", "subtitle", "body", "url", "image_url")
_SPELLINGS = {name: name for name in LOCALIZABLE} | {"imageUrl": "image_url", "image-url": "image_url"}
_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
MAX_VARIANTS = 200


def normalize_tag(tag: str) -> str:
    """``es_mx`` -> ``es-MX``, ``FR`` -> ``fr``: the spelling variants are stored in (BCP 47 case)."""
    parts = tag.strip().replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part.lower())
    return "-".join(out)


def check_localizations(value: Any) -> dict[str, dict[str, str]]:
    """The ``localizations`` object, checked and normalised; raises :class:`NotificationError`
    naming ``localizations.<tag>[.<field>]``."""
    if not isinstance(value, Mapping):
        raise NotificationError(
            'localizations must be an object like {"fr": {"title": "...", "body": "..."}}',
            field="localizations",
        )
    if len(value) > MAX_VARIANTS:
        raise NotificationError(
            f"localizations has {len(value)} languages; at most {MAX_VARIANTS}", field="localizations"
        )
    out: dict[str, dict[str, str]] = {}
    for tag, variant in value.items():
        if not isinstance(tag, str) or not _TAG.fullmatch(tag.strip()):
            raise NotificationError(
                f"localizations keys are language tags like fr or es-MX, got {tag!r}",
                field=f"localizations.{tag}",
            )
        norm = normalize_tag(tag)
        if norm in out:
            raise NotificationError(f"the language {norm} is given twice", field=f"localizations.{tag}")
        if not isinstance(variant, Mapping) or not variant:
            raise NotificationError(
                f"localizations.{tag} must be an object with some of: {', '.join(LOCALIZABLE)}",
                field=f"localizations.{tag}",
            )
        fields: dict[str, str] = {}
        for key, text in variant.items():
            name = _SPELLINGS.get(key) if isinstance(key, str) else None
            if name is None:
                raise NotificationError(
                    f"localizations.{tag} may give {', '.join(LOCALIZABLE)}; not {key!r}",
                    field=f"localizations.{tag}.{key}",
                )
            if not isinstance(text, str):
                raise NotificationError(
                    f"localizations.{tag}.{key} must be text, got {type(text).__name__}",
                    field=f"localizations.{tag}.{key}",
                )
            fields[name] = text
        out[norm] = fields
    return out


def best_tag(tags: Mapping[str, Any], language: str | None) -> str | None:
    """The key of ``tags`` for a device speaking ``language``: the exact tag, else the base
    language; None when neither is there (the notification's own text)."""
    if not language or not tags:
        return None
    wanted = language.strip().replace("_", "-").lower()
    if not wanted:
        return None
    lowered = {t.lower(): t for t in tags}
    if wanted in lowered:
        return lowered[wanted]
    return lowered.get(wanted.split("-", 1)[0])
