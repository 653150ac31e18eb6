"""Structured logging: one line per event, ``key=value`` pairs, secrets masked.

Every service module logs through :func:`event`, which renders ``ts level event key=value ...`` on
one line so that operators can grep and ship the lines as they are. Device tokens are never written
in full (a leaked token lets anyone push to that phone): :func:`mask_token` keeps the first four
(or ``head``) and the last four characters, enough to correlate with the registry.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any
from urllib.parse import urlsplit

__all__ = ["configure", "event", "get_logger", "mask_token"]

_ROOT = "pushrelay"
_SECRET_KEYS = frozenset({"token", "device_token", "api_key", "key", "secret", "authorization"})


def mask_token(token: str | None, *, head: int = 4) -> str:
    """``0123…cdef`` for a device token: the first ``head`` and the last 4 characters (the worker's
    attempt lines keep 6: ``a1b2c3…7f8e``). A value that would show as much as it hides, or more,
    is fully hidden (``…``). A Web Push endpoint keeps its push service's host, which says where it
    goes and is no secret: ``https://fcm.googleapis.com/…x7Yz``."""
    if not token:
        return ""
    if token[:8].lower() == "https://":
        return f"https://{urlsplit(token).hostname or '?'}/…{token[-4:]}"
    shown = head + 4
    if len(token) <= 2 * shown:
        return "…"
    return f"{token[:head]}…{token[-4:]}"


def _render(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ms = int(record.msecs)
        fields: dict[str, Any] = getattr(record, "fields", {})
        parts = [f"{ts}.{ms:03d}Z", record.levelname.lower(), _render(record.getMessage())]
        parts += [f"{k}={_render(v)}" for k, v in fields.items()]
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            parts.append(f"error={_render(type(exc).__name__ + ': ' + str(exc))}")
        return " ".join(parts)


def configure(level: str = "info", *, stream: Any = None) -> None:
    """Install the one-line formatter on the ``pushrelay`` logger (idempotent)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level must be one of debug, info, warning, error; got {level!r}")
    logger = logging.getLogger(_ROOT)
    logger.setLevel(numeric)
    for h in list(logger.handlers):
        if getattr(h, "_pushrelay", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_LineFormatter())
    handler._pushrelay = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{_ROOT}.{name}")


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log the event ``name`` with ``fields``; values under secret-looking keys are masked."""
    if not logger.isEnabledFor(level):
        return
    clean = {k: (mask_token(str(v)) if k in _SECRET_KEYS and v is not None else v) for k, v in fields.items()}
    logger.log(level, name, extra={"fields": clean})
