"""Scripted devices: tell the sandbox how a device token should misbehave, and for how many requests.

Each token has a queue of scripts. The first one applies to the token's next request (after the request
passed APNs' validation) and is used up after ``times`` requests, then the next one applies, then normal
delivery. A script with ``times=None`` never runs out; queuing another script after it replaces it.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BEHAVIOURS", "DeviceScripts", "Script", "normalise_token"]

_HEX_RE = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True)
class _Behaviour:
    description: str
    params: dict[str, type | tuple[type, ...]] = field(default_factory=dict)


BEHAVIOURS: dict[str, _Behaviour] = {
    "unregistered": _Behaviour("410 Unregistered (+ timestamp)", {"timestamp_ms": int}),
    "expired_token": _Behaviour("410 ExpiredToken (+ timestamp)", {"timestamp_ms": int}),
    "bad_token": _Behaviour("400 BadDeviceToken"),
    "not_for_topic": _Behaviour("400 DeviceTokenNotForTopic"),
    "rate_limited": _Behaviour("429 TooManyRequests"),
    "unavailable": _Behaviour("503 ServiceUnavailable"),
    "internal": _Behaviour("500 InternalServerError"),
    "shutdown": _Behaviour("503 Shutdown"),
    "goaway": _Behaviour(
        "GOAWAY (NO_ERROR, last stream = the one before), connection closed", {"reason": str}
    ),
    "reset": _Behaviour("RST_STREAM REFUSED_STREAM on that stream"),
    "drop": _Behaviour("the TCP connection is aborted, nothing answered"),
    "delay": _Behaviour("answered normally after `seconds` (default 1.0)", {"seconds": (int, float)}),
}


def normalise_token(token: object, field_name: str = "token") -> str:
    """Device tokens are compared in lower case."""
    if not isinstance(token, str) or not token or _HEX_RE.fullmatch(token) is None:
        raise ValueError(f"{field_name}: expected a hex device token, got {token!r}")
    return token.lower()


@dataclass(slots=True)
class Script:
    behaviour: str
    remaining: int | None  # None: forever
    params: dict[str, Any]


class DeviceScripts:
    def __init__(self) -> None:
        self._scripts: dict[str, deque[Script]] = {}

    def add(
        self, token: str, behaviour: str, times: int | None = None, params: dict[str, Any] | None = None
    ) -> None:
        """Queue ``behaviour`` for ``token``; raises ValueError naming the bad argument."""
        token = normalise_token(token)
        spec = BEHAVIOURS.get(behaviour)
        if spec is None:
            raise ValueError(f"behaviour: expected one of {', '.join(BEHAVIOURS)}, got {behaviour!r}")
        if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
            raise ValueError(f"times: expected a positive integer or None (always), got {times!r}")
        params = dict(params or {})
        for name, value in params.items():
            expected = spec.params.get(name)
            if expected is None:
                allowed = ", ".join(spec.params) or "none"
                raise ValueError(f"params: {behaviour!r} takes no parameter {name!r} (allowed: {allowed})")
            if (
                not isinstance(value, expected)
                or isinstance(value, bool)
                or (isinstance(value, int | float) and value < 0)
            ):
                raise ValueError(
                    f"params.{name}: expected a non-negative {_type_name(expected)}, got {value!r}"
                )
        queue = self._scripts.setdefault(token, deque())
        if queue and queue[-1].remaining is None:
            queue.pop()  # an open-ended script would otherwise hide the new one forever
        queue.append(Script(behaviour, times, params))

    def take(self, token: str) -> Script | None:
        """The script that applies to this request of ``token`` (lower case), using up one of its turns."""
        queue = self._scripts.get(token)
        if not queue:
            return None
        script = queue[0]
        if script.remaining is not None:
            script.remaining -= 1
            if script.remaining <= 0:
                queue.popleft()
                if not queue:
                    del self._scripts[token]
        return script

    def clear(self, token: str | None = None) -> None:
        if token is None:
            self._scripts.clear()
        else:
            self._scripts.pop(normalise_token(token), None)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {
            token: [{"behaviour": s.behaviour, "times": s.remaining, "params": dict(s.params)} for s in queue]
            for token, queue in self._scripts.items()
        }


def _type_name(expected: type | tuple[type, ...]) -> str:
    if isinstance(expected, tuple):
        return "number"
    return {int: "integer", str: "string"}.get(expected, expected.__name__)
