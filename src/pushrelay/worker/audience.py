"""Who a notification goes to: the worker's view of the device registry.

Expansion turns a notification's recipients into device rows in chunks, so that ``all`` over a
million devices streams with bounded memory, and resumes from a cursor after a crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..local_time import QuietHours
from ..outcome import DeliveryResult
from ..queue.interface import DeviceRef, ExpansionJob

__all__ = ["Audience", "DeviceRef", "Expansion"]


@dataclass
class Expansion:
    """Chunks of devices, each with the cursor to resume after it, and the recipient warnings and
    errors in 4D's words."""

    chunks: Iterator[tuple[list[DeviceRef], str | None]]
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Audience(Protocol):
    def expand(self, job: ExpansionJob, *, chunk: int) -> Expansion: ...

    def expand_many(self, jobs: Sequence[ExpansionJob], *, chunk: int) -> list[Expansion]:
        """:meth:`expand` for many small jobs at once (one registry round trip for all of them)."""
        ...

    def time_zones(self, app: str, tokens: Sequence[str]) -> Mapping[str, str]:
        """``{token: IANA zone}`` for the registered devices among ``tokens`` that have one."""
        ...

    def quiet_hours(self, app: str) -> QuietHours | None:
        """The app's quiet hours, if it has some."""
        ...

    def languages(self, app: str, tokens: Sequence[str]) -> Mapping[str, str]:
        """``{token: language}`` for the registered devices among ``tokens`` that have one."""
        ...

    def retire(self, app: str, results: Iterable[DeliveryResult], *, sent_at: datetime) -> list[str]:
        """Retire the devices that ``results`` report dead; returns the tokens retired."""
        ...
