"""``open()``: a notification that opens a list (dataClass) or a record (entity) in the 4D app.

The 4D mobile app reads ``userInfo`` (top-level payload keys on iOS, the data map on Android):
``dataClass`` opens that list form; ``entity: {primaryKey: ...}`` with it opens the detail form,
and ``dataSynchro: true`` (set unless the caller set it) makes the app refresh its data first.

The target may be a dataClass name; a ``(dataClass, primaryKey)`` pair (or ``primary_key=``);
or a mapping as 4D accepts an object: ``{"dataClass": ..., "entity": {"primaryKey": ...}}``
(``"primaryKey"`` at the top level is accepted too). Errors use 4D's texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .result import messages

__all__ = ["MISSING", "deep_link_user_info"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def deep_link_user_info(
    target: Any, user_info: Mapping[str, Any], primary_key: Any = MISSING
) -> dict[str, Any] | str:
    """The ``userInfo`` to send, or the 4D error text when ``target`` is not usable."""
    info = dict(user_info)
    entity: Mapping[str, Any] | None = None
    if isinstance(target, str):
        if not target.strip():
            return messages.DATACLASS_EMPTY
        data_class = target.strip()
    elif isinstance(target, tuple | list) and len(target) == 2 and isinstance(target[0], str):
        if not target[0].strip():
            return messages.DATACLASS_EMPTY
        data_class, primary_key = target[0].strip(), target[1]
    elif isinstance(target, Mapping):
        name = target.get("dataClass")
        if not isinstance(name, str) or not name.strip():
            return messages.DATACLASS_UNDEFINED
        data_class = name.strip()
        raw_entity = target.get("entity")
        if isinstance(raw_entity, Mapping):
            entity = dict(raw_entity)
        elif "primaryKey" in target:
            entity = {"primaryKey": target["primaryKey"]}
    else:
        return messages.DATACLASS_TYPE
    if primary_key is not MISSING:
        if (
            primary_key is None
            or isinstance(primary_key, bool)
            or not isinstance(primary_key, str | int | float)
        ):
            return f"the primary key must be a text or a number, got {type(primary_key).__name__}"
        entity = {"primaryKey": primary_key}
    info["dataClass"] = data_class
    if entity is not None:
        info["entity"] = entity
        info.setdefault("dataSynchro", True)
    return info
