"""Who a notification goes to: the worker's view of the device registry.

Expansion turns a notification's recipients into device rows in chunks, so that ``all`` over a
million devices streams with bounded memory, and resumes from a cursor after a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from ..queue.interface import ExpansionJob

__all__ = ["Audience", "DeviceRef", "Expansion"]

DeviceRef = tuple[str, str, str | None, str | None]
"""(platform, token, environment, email)"""


@dataclass
class Expansion:
    """Chunks of devices with the cursor to resume after each; warnings/errors are complete once the
    iteration is over (4D's texts)."""

    chunks: Iterator[tuple[list[DeviceRef], str | None]]
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Audience(Protocol):
    def expand(self, job: ExpansionJob, *, chunk: int) -> Expansion: ...

    def retire(self, app: str, token: str, reason: str, invalid_since_ms: int | None) -> bool: ...
