"""Reading 4D session files: one JSON file without extension per signed-in device.

Format (SPEC §2)::

    {"application": {"id", "name", "version"}, "team": {"id"},
     "language": {"id", "code", "region"}, "email": "...",
     "device": {"description", "version", "id", "simulator": bool,
                "os": "iOS" | "iPadOS" | "Android", "token": "<push token>"},
     "session": {"id", "ip"}, "status": "accepted" | "pending", "token": "<auth token>"}

The top-level ``token`` is the app's *authentication* token for the 4D server, not a push token:
it is never read. ``device.os`` tells iOS (``iPadOS`` counts as iOS) from Android; files written
before 4D for Android had no ``os`` and are iOS. On iOS a token that is not hexadecimal is a
simulator UDID (or ``booted``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..registry.devices import DeviceInfo
from ..registry.tokens import (
    InvalidDeviceError,
    check_time_zone,
    is_apns_token,
    is_email,
    is_simulator_id,
    normalize_token,
)

__all__ = [
    "FourDSession",
    "SessionFileError",
    "is_session_file",
    "iter_session_files",
    "parse_session",
    "parse_session_bytes",
    "read_session",
]

# Session files are a few hundred bytes; a large extension-less file is something else.
MAX_SESSION_FILE_SIZE = 256 * 1024

_OS_PLATFORM = {"ios": "ios", "ipados": "ios", "android": "android"}


class SessionFileError(ValueError):
    """A session file cannot be imported; ``file`` names it, ``field`` the offending field."""

    def __init__(self, file: Path, reason: str, *, field: str | None = None) -> None:
        super().__init__(f"{file.name}: {reason}")
        self.file = file
        self.reason = reason
        self.field = field


@dataclass(frozen=True, slots=True)
class FourDSession:
    file: Path
    bundle_id: str | None
    email: str | None
    platform: str
    token: str | None
    """The push token; ``None`` when the user did not allow notifications."""
    simulator: bool
    language: str | None
    time_zone: str | None
    app_version: str | None
    os: str | None
    os_version: str | None
    device_model: str | None
    device_id: str | None
    status: str | None
    modified: datetime
    notes: tuple[str, ...] = ()
    """Problems that did not stop the import (e.g. an e-mail field that is not an address)."""

    @property
    def pending(self) -> bool:
        """4D has not accepted this session yet: its device is not used until it is."""
        return self.status == "pending"

    def __repr__(self) -> str:
        return f"FourDSession({self.file.name!r}, platform={self.platform!r}, email={self.email!r})"

    def device_info(self, app: str) -> DeviceInfo:
        if self.token is None:
            raise ValueError("a session without a push token is not a device")
        return DeviceInfo(
            app=app,
            token=self.token,
            platform=self.platform,
            email=self.email,
            language=self.language,
            time_zone=self.time_zone,
            app_version=self.app_version,
            os=self.os,
            os_version=self.os_version,
            device_model=self.device_model,
            device_id=self.device_id,
            simulator=self.simulator,
            seen_at=self.modified,
        )


def is_session_file(name: str) -> bool:
    """Whether a file name in an app folder names a session: no extension, not hidden
    (``.DS_Store`` has no suffix in Python's eyes but is no session)."""
    return bool(name) and not name.startswith(".") and Path(name).suffix == ""


def iter_session_files(folder: Path) -> Iterator[Path]:
    """Session files of an app folder (see :func:`is_session_file`), sorted by name."""
    for path in sorted(folder.iterdir()):
        if is_session_file(path.name) and path.is_file():
            yield path


def _section(data: dict[str, Any], name: str, file: Path) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SessionFileError(file, f"{name} must be an object, got {type(value).__name__}", field=name)
    return value


def _text(section: dict[str, Any], key: str, file: Path, where: str, limit: int = 128) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # versions are sometimes numbers
    if not isinstance(value, str):
        raise SessionFileError(
            file, f"{where}.{key} must be a text, got {type(value).__name__}", field=f"{where}.{key}"
        )
    return value.strip()[:limit] or None


def parse_session(data: Any, *, file: Path, modified: datetime) -> FourDSession:
    """Interpret the JSON of one session file. Raises :class:`SessionFileError`."""
    if not isinstance(data, dict):
        raise SessionFileError(file, "a session file must hold a JSON object")
    application = _section(data, "application", file)
    device = _section(data, "device", file)
    language = _section(data, "language", file)
    notes: list[str] = []

    os_name = _text(device, "os", file, "device", 32)
    if os_name is None:
        platform = "ios"  # written before 4D for Android existed
    else:
        platform = _OS_PLATFORM.get(os_name.lower(), "")
        if not platform:
            raise SessionFileError(
                file, f"device.os must be iOS, iPadOS or Android, got {os_name!r}", field="device.os"
            )

    raw_token = device.get("token")
    token: str | None = None
    simulator = bool(device.get("simulator")) if isinstance(device.get("simulator"), bool) else False
    if raw_token not in (None, ""):
        if not isinstance(raw_token, str):
            raise SessionFileError(
                file, f"device.token must be a text, got {type(raw_token).__name__}", field="device.token"
            )
        if platform == "ios" and not is_apns_token(raw_token):
            if not is_simulator_id(raw_token):
                raise SessionFileError(
                    file,
                    "device.token is neither an APNs token (64 hexadecimal digits) nor a simulator UDID",
                    field="device.token",
                )
            simulator = True
        try:
            token = normalize_token(platform, raw_token, simulator=simulator and platform == "ios")
        except InvalidDeviceError as exc:
            raise SessionFileError(file, f"device.token: {exc}", field="device.token") from None

    email = data.get("email")
    if email in (None, ""):
        email = None
    elif not isinstance(email, str):
        raise SessionFileError(file, f"email must be a text, got {type(email).__name__}", field="email")
    elif not is_email(email.strip()):
        notes.append(f"email {email!r} is not an e-mail address; the device is imported without one")
        email = None
    else:
        email = email.strip()

    lang = _text(language, "id", file, "language", 35)
    if lang is None:
        code = _text(language, "code", file, "language", 8)
        region = _text(language, "region", file, "language", 8)
        lang = f"{code}-{region}" if code and region else code

    time_zone = None
    zone = device.get("timeZone", data.get("timeZone"))
    if zone not in (None, ""):
        try:
            time_zone = check_time_zone(zone)
        except InvalidDeviceError:
            notes.append(f"time zone {zone!r} is not an IANA time zone; the device is imported without one")

    status = data.get("status")
    return FourDSession(
        file=file,
        bundle_id=_text(application, "id", file, "application", 200),
        email=email,
        platform=platform,
        token=token,
        simulator=simulator and platform == "ios",
        language=lang,
        time_zone=time_zone,
        app_version=_text(application, "version", file, "application", 64),
        os=os_name,
        os_version=_text(device, "version", file, "device", 64),
        device_model=_text(device, "description", file, "device", 128),
        device_id=_text(device, "id", file, "device", 128),
        status=status if isinstance(status, str) else None,
        modified=modified,
        notes=tuple(notes),
    )


def read_session(file: Path) -> FourDSession:
    """Read and interpret one session file. Raises :class:`SessionFileError`, never aborts on
    content: the caller reports the file and goes on with the next."""
    try:
        stat = file.stat()
        if stat.st_size > MAX_SESSION_FILE_SIZE:
            raise SessionFileError(
                file, f"larger than {MAX_SESSION_FILE_SIZE // 1024} KiB: not a session file"
            )
        raw = file.read_bytes()
    except OSError as exc:
        raise SessionFileError(file, f"cannot be read: {exc.strerror or exc}") from None
    # The file's modification time is when 4D last wrote the session: the best "last seen" we have,
    # and a stable one, so importing the same folder twice changes nothing.
    return parse_session_bytes(raw, file=file, modified=datetime.fromtimestamp(stat.st_mtime, UTC))


def parse_session_bytes(raw: bytes, *, file: Path, modified: datetime) -> FourDSession:
    """Decode and interpret the bytes of one session file. Raises :class:`SessionFileError`."""
    if len(raw) > MAX_SESSION_FILE_SIZE:
        raise SessionFileError(file, f"larger than {MAX_SESSION_FILE_SIZE // 1024} KiB: not a session file")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise SessionFileError(file, "is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SessionFileError(
            file, f"is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    return parse_session(data, file=file, modified=modified)
