"""Reading one provider table of the configuration (``[apps.X.fcm]``, ``[apps.X.webpush]``).

The FCM and Web Push settings are typed by their own modules (the configuration loader passes
them through); this is what both need: unknown keys refused, values checked one by one, relative
paths resolved against the configuration file's folder, and every error naming the table, the
key and the file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ._exceptions import ConfigurationError

__all__ = ["TableReader"]


class TableReader:
    """The table ``d`` found in ``file``, called ``table`` in messages (e.g. ``apps.myapp.fcm``).

    Relative paths are resolved against ``base_dir``, else the folder of ``file``, else the working
    directory.
    """

    def __init__(
        self,
        d: Mapping[str, Any],
        *,
        table: str,
        file: str | Path | None = None,
        base_dir: str | Path | None = None,
    ) -> None:
        self.d = d
        self.table = table
        self.file = str(file) if file else None
        self.base = Path(base_dir) if base_dir is not None else Path(file).parent if file else Path.cwd()

    def refuse_unknown(self, known: Collection[str]) -> None:
        unknown = sorted(set(self.d) - set(known))
        if unknown:
            raise self.fail(unknown[0], f"unknown key; expected one of {', '.join(sorted(known))}")

    def __contains__(self, key: str) -> bool:
        return key in self.d

    def fail(self, key: str, message: str) -> ConfigurationError:
        where = f" in {self.file}" if self.file else ""
        return ConfigurationError(
            f"[{self.table}] {key}{where}: {message}", field=f"{self.table}.{key}", file=self.file
        )

    def text(self, key: str) -> str | None:
        """A non-empty text, or None when the key is absent."""
        if key not in self.d:
            return None
        value = self.d[key]
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected non-empty text, got {value!r}")
        return value

    def https_url(self, key: str) -> str | None:
        """An ``https://`` URL: plain http would carry bearer tokens and signed grants in clear text."""
        value = self.text(key)
        if value is not None and not value.startswith("https://"):
            raise self.fail(key, f"expected an https:// URL, got {value!r}")
        return value

    def path(self, key: str) -> Path | None:
        """A file path, resolved against the configuration's folder; None when absent."""
        if key not in self.d:
            return None
        value = self.d[key]
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a file path, got {value!r}")
        return Path(value) if Path(value).is_absolute() else (self.base / value).resolve()

    def seconds(self, key: str, default: float, *, minimum: float = 0.0, whole: bool = False) -> float:
        """A number of seconds, at least ``minimum`` (whole seconds with ``whole``)."""
        value = self.d.get(key, default)
        number = isinstance(value, int) or (isinstance(value, float) and not whole)
        if isinstance(value, bool) or not number or value < minimum:
            unit = "whole seconds" if whole else "seconds"
            raise self.fail(key, f"expected {unit} >= {minimum:g}, got {value!r}")
        return float(value)
