"""What the sandbox's devices received: every accepted notification, kept compactly, queried by token."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Received", "ReceivedLog"]


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
