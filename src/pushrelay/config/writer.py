"""Adding app tables to a ``pushrelay.toml`` (used by ``pushrelay import-4d``).

The file is appended to, never rewritten: the user's comments and layout stay as they are.
Only flat tables of texts and booleans are written, which is all an imported app needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from .._exceptions import ConfigurationError

__all__ = ["append_apps", "render_app_table"]


def _toml_value(value: str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # JSON string escapes (\" \\ \n \uXXXX...) are all valid in TOML basic strings.
    return json.dumps(value, ensure_ascii=False)


def render_app_table(name: str, values: Mapping[str, str | bool], comment: str | None = None) -> str:
    lines = [f"# {line}" for line in (comment.splitlines() if comment else [])]
    lines.append(f"[apps.{name}]")
    lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def append_apps(path: Path, tables: Mapping[str, str]) -> None:
    """Append rendered tables (from :func:`render_app_table`) to ``path``, creating it if needed."""
    if not tables:
        return
    try:
        existing = path.read_text(encoding="utf-8") if path.exists() else ""
        with path.open("a", encoding="utf-8") as f:
            if existing and not existing.endswith("\n"):
                f.write("\n")
            for table in tables.values():
                f.write("\n" + table)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}", file=str(path)) from None
