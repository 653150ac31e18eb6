"""Paused apps at start-up: resume those whose credentials changed, remind about the others.

A pause keeps a fingerprint of the credentials the provider refused (a SHA-256 over the app's
provider settings and the contents of the files they name). Credentials are read once, when the
service starts, so "the operator fixed them" can only mean "the service was restarted with other
ones": a start whose fingerprint differs from the paused one resumes the app by itself. A restart
with the same credentials keeps the pause (they would be refused again); ``pushrelay apps resume``
is for fixes made at the provider (a key re-enabled, a topic added to a key).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config.model import AppConfig
from ..logs import event, get_logger
from ..queue.interface import AppPause, Outbox

__all__ = ["credentials_fingerprint", "resume_changed"]

log = get_logger("service")


def _feed(h: Any, name: str, value: object) -> None:
    h.update(name.encode() + b"=")
    if isinstance(value, Path):
        try:
            h.update(hashlib.sha256(value.read_bytes()).digest())
        except OSError:
            h.update(b"unreadable:" + str(value).encode())
    elif isinstance(value, Mapping):
        for key in sorted(value):
            _feed(h, f"{name}.{key}", value[key])
    else:
        h.update(repr(value).encode())
    h.update(b"\n")


def credentials_fingerprint(app: AppConfig) -> str:
    """Changes when anything that decides what a provider accepts changes: the bundle id, the APNs
    settings and key or certificate files, the FCM and Web Push tables and the files they name."""
    h = hashlib.sha256()
    _feed(h, "bundle_id", app.bundle_id)
    if app.apns is not None:
        for field in ("team_id", "key_id", "environment", "endpoint", "cert_passphrase"):
            _feed(h, f"apns.{field}", getattr(app.apns, field))
        for field in ("key_file", "cert_file", "cert_key_file", "ca_file"):
            _feed(h, f"apns.{field}", getattr(app.apns, field))
    for section, table in (("fcm", app.fcm), ("webpush", app.webpush)):
        if table is not None:
            _feed(h, section, {k: _as_path(app, k, v) for k, v in table.items()})
    return h.hexdigest()


def _as_path(app: AppConfig, key: str, value: Any) -> Any:
    """``*_file`` settings name files whose contents matter, not just their names."""
    if key.endswith("_file") and isinstance(value, str):
        path = Path(value).expanduser()
        return path if path.is_absolute() else app.base_dir / path
    return value


def resume_changed(outbox: Outbox, fingerprints: Mapping[str, str]) -> list[AppPause]:
    """Resume the paused apps whose credentials differ from the refused ones; log the others
    loudly. Returns the pauses still in force."""
    still: list[AppPause] = []
    for pause in outbox.paused_apps():
        current = fingerprints.get(pause.app)
        if pause.fingerprint is not None and current is not None and current != pause.fingerprint:
            n = outbox.resume(pause.app)
            event(log, logging.WARNING, "app.resumed", app=pause.app, deliveries=n or 0,
                  why="the credentials changed since they were refused", was=pause.reason)  # fmt: skip
            continue
        still.append(pause)
        event(log, logging.ERROR, "app.still_paused", app=pause.app, reason=pause.reason,
              since=pause.paused_at.isoformat(timespec="seconds") + "Z",
              hint=f"fix the configuration and restart, or run: pushrelay apps resume {pause.app}")  # fmt: skip
    return still
