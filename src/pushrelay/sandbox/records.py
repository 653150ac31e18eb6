"""What the sandbox's devices received: every accepted notification, kept compactly, queried by token.

:class:`ReceivedLog` keeps every APNs push a device accepted (nothing dropped: tests query it).
:class:`InboxLog` is what the inbox page shows: every request the APNs, FCM and Web Push sandboxes
answered, accepted or refused, each kept as the bytes it came with (parsed only when looked at), the
newest ``limit`` of them. The sandboxes call :meth:`InboxLog.observe` once per answered request when
an inbox is attached; without one they pay a single ``is None`` test.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["DeviceSummary", "InboxEntry", "InboxLog", "Platform", "Received", "ReceivedLog"]

Platform = Literal["apns", "fcm", "webpush"]
PLATFORMS: tuple[Platform, ...] = ("apns", "fcm", "webpush")


def fcm_target(body: bytes) -> str:
    """The token (or FID), ``topic:<name>`` or ``condition:<expr>`` an FCM request is for ("" if none)."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(message, dict):
        return ""
    for key, prefix in (("token", ""), ("fid", ""), ("topic", "topic:"), ("condition", "condition:")):
        value = message.get(key)
        if isinstance(value, str):
            return prefix + value
    return ""


@dataclass(frozen=True)
class Received:
    """One notification the sandbox accepted (answered 200) for a device."""

    token: str  # lower case
    apns_id: str
    topic: str | None
    push_type: str | None  # the apns-push-type header as sent (None when absent)
    priority: int  # as sent, or the push type's default
    expiration: int | None
    collapse_id: str | None
    payload: dict[str, Any]
    headers: dict[str, str]  # request headers as sent, except ``authorization``
    connection_id: int
    stream_id: int
    at: float  # sandbox clock

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Record:
    """Compact form of :class:`Received`: the body stays bytes until someone asks for it."""

    __slots__ = (
        "apns_id",
        "at",
        "body",
        "collapse_id",
        "connection_id",
        "expiration",
        "headers",
        "priority",
        "push_type",
        "stream_id",
        "token",
        "topic",
    )

    def __init__(
        self,
        token: str,
        apns_id: str,
        topic: str | None,
        push_type: str | None,
        priority: int,
        expiration: int | None,
        collapse_id: str | None,
        body: bytes,
        headers: tuple[tuple[str, str], ...],
        connection_id: int,
        stream_id: int,
        at: float,
    ) -> None:
        self.token = token
        self.apns_id = apns_id
        self.topic = topic
        self.push_type = push_type
        self.priority = priority
        self.expiration = expiration
        self.collapse_id = collapse_id
        self.body = body
        self.headers = headers
        self.connection_id = connection_id
        self.stream_id = stream_id
        self.at = at

    def expand(self) -> Received:
        return Received(
            token=self.token,
            apns_id=self.apns_id,
            topic=self.topic,
            push_type=self.push_type,
            priority=self.priority,
            expiration=self.expiration,
            collapse_id=self.collapse_id,
            payload=json.loads(self.body),
            headers=dict(self.headers),
            connection_id=self.connection_id,
            stream_id=self.stream_id,
            at=self.at,
        )


class ReceivedLog:
    """Every accepted notification, in arrival order, with an index by token. Nothing is dropped."""

    def __init__(self) -> None:
        self._all: list[_Record] = []
        self._by_token: dict[str, list[_Record]] = {}

    def add(self, record: _Record) -> None:
        self._all.append(record)
        bucket = self._by_token.get(record.token)
        if bucket is None:
            self._by_token[record.token] = [record]
        else:
            bucket.append(record)

    def for_token(self, token: str) -> list[Received]:
        return [r.expand() for r in self._by_token.get(token, ())]

    def everything(self) -> list[Received]:
        return [r.expand() for r in self._all]

    def clear(self) -> None:
        self._all.clear()
        self._by_token.clear()

    def __len__(self) -> int:
        return len(self._all)


class InboxEntry:
    """One request a sandbox answered: what the device got (or would have got) and the answer.

    ``status`` is the HTTP status, or 0 when the sandbox answered at the transport level (a scripted
    RST_STREAM, GOAWAY or dropped connection; ``note`` says which). ``body`` is the request body as
    sent, except for Web Push where it is the plaintext the sandbox decrypted (empty when refused).
    """

    __slots__ = (
        "at",
        "body",
        "device",
        "headers",
        "id",
        "method",
        "note",
        "path",
        "platform",
        "response",
        "status",
    )

    def __init__(
        self,
        entry_id: int,
        platform: Platform,
        device: str,
        method: str,
        path: str,
        status: int,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        response: bytes,
        note: str | None,
        at: float,
    ) -> None:
        self.id = entry_id
        self.platform = platform
        self.device = device
        self.method = method
        self.path = path
        self.status = status
        self.headers = headers
        self.body = body
        self.response = response
        self.note = note
        self.at = at

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    def request_headers(self) -> list[tuple[str, str]]:
        """The request headers as sent, without ``authorization`` (a credential)."""
        return [(k, v) for k, v in self.headers if k != "authorization"]

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def reason(self) -> str | None:
        """Apple's ``reason``, FCM's ``errorCode`` (else its status) or the push service's error."""
        if self.accepted:
            return None
        if self.status == 0:
            return self.note
        try:
            doc = json.loads(self.response)
        except ValueError:
            return self.note
        if not isinstance(doc, dict):
            return self.note
        if self.platform == "apns":
            return str(doc.get("reason")) if "reason" in doc else self.note
        error = doc.get("error")
        if self.platform == "fcm" and isinstance(error, dict):
            for detail in error.get("details") or ():
                if isinstance(detail, dict) and "errorCode" in detail:
                    return str(detail["errorCode"])
            return str(error.get("status") or error.get("message") or self.note)
        return str(error) if error is not None else self.note

    def detail(self) -> str | None:
        """FCM's human-readable message (Apple's answers carry none)."""
        try:
            doc = json.loads(self.response)
        except ValueError:
            return None
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        return None


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    platform: Platform
    device: str
    accepted: int
    refused: int
    last_at: float
    last_id: int


class InboxLog:
    """The newest ``limit`` requests the sandboxes answered, for the inbox page; thread-safe.

    The sandboxes run on their own event loops (threads, in ``pushrelay demo``) while the page reads
    from another, hence the lock: it is held for an append or a copy, never while parsing.
    """

    def __init__(self, limit: int = 10_000, *, clock: Callable[[], float] = time.time) -> None:
        if limit < 1:
            raise ValueError(f"limit: expected a positive number of entries, got {limit!r}")
        self.limit = limit
        self._clock = clock
        self._entries: deque[InboxEntry] = deque(maxlen=limit)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._devices: dict[tuple[Platform, str], list[int | float]] = {}
        self._labels: dict[tuple[Platform, str], str] = {}
        self.total = 0

    # -- written by the sandboxes -----------------------------------------------------------------
    def observe(
        self,
        platform: Platform,
        device: str,
        method: str,
        path: str,
        status: int,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        response: bytes = b"",
        note: str | None = None,
    ) -> None:
        """Record one answered request (``headers`` may hold a credential: it is never shown)."""
        at = self._clock()
        with self._lock:
            entry = InboxEntry(
                next(self._ids), platform, device, method, path, status, headers, body, response, note, at
            )
            self._entries.append(entry)
            self.total += 1
            counts = self._devices.get((platform, device))
            if counts is None:
                self._devices[(platform, device)] = [
                    int(entry.accepted),
                    int(not entry.accepted),
                    at,
                    entry.id,
                ]
            else:
                counts[0 if entry.accepted else 1] += 1
                counts[2] = at
                counts[3] = entry.id

    def add_device(self, platform: Platform, device: str, label: str | None = None) -> None:
        """A device that exists before anything was sent to it (an issued token, a subscription);
        ``label`` names it on the page (``"iPhone15,2"``)."""
        with self._lock:
            self._devices.setdefault((platform, device), [0, 0, self._clock(), 0])
            if label:
                self._labels[(platform, device)] = label

    def label(self, platform: Platform, device: str) -> str | None:
        return self._labels.get((platform, device))

    # -- read by the page ---------------------------------------------------------------------------
    @property
    def last_id(self) -> int:
        with self._lock:
            return self._entries[-1].id if self._entries else 0

    @property
    def dropped(self) -> int:
        """How many older entries were let go to stay within ``limit``."""
        with self._lock:
            return self.total - len(self._entries)

    def entries(
        self,
        *,
        after: int = 0,
        before: int | None = None,
        platform: Platform | None = None,
        device: str | None = None,
        limit: int = 50,
    ) -> list[InboxEntry]:
        """Newest first: entries with ``after < id < before`` (of one device when given), at most ``limit``."""
        with self._lock:
            snapshot = list(self._entries)
        out: list[InboxEntry] = []
        for entry in reversed(snapshot):
            if entry.id <= after or len(out) >= limit:
                break
            if before is not None and entry.id >= before:
                continue
            if device is not None and (entry.device != device or entry.platform != platform):
                continue
            out.append(entry)
        return out

    def get(self, entry_id: int) -> InboxEntry | None:
        with self._lock:
            snapshot = list(self._entries)
        for entry in reversed(snapshot):
            if entry.id == entry_id:
                return entry
        return None

    def devices(self) -> list[DeviceSummary]:
        """Every device that was sent to (or added), the most recently active first."""
        with self._lock:
            items = [(key, list(counts)) for key, counts in self._devices.items()]
        summaries = [DeviceSummary(p, d, int(c[0]), int(c[1]), float(c[2]), int(c[3])) for (p, d), c in items]
        summaries.sort(key=lambda s: (s.last_id, s.last_at), reverse=True)
        return summaries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._devices.clear()
            self.total = 0
