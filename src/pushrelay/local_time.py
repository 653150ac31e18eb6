"""Local-time delivery: ``deliver_at_local = "09:00"`` (each device at 09:00 in its own zone) and
an app's ``quiet_hours`` (non-urgent notifications wait for them to end).

Pure functions of a UTC instant and a device's IANA zone; the worker applies them when it creates
a notification's deliveries, and the outbox holds each delivery until its time (``scheduled_for``),
so the schedule survives restarts and can be cancelled like any pending delivery. A device without
a (valid) zone is taken to be in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["URGENT_LEVELS", "QuietHours", "is_urgent", "parse_local_time", "scheduled_for", "zone_of"]

# what breaks through a device's Focus also breaks through the app's quiet hours
URGENT_LEVELS = frozenset({"time-sensitive", "critical"})


def is_urgent(explicit: bool | None, interruption_level: str | None) -> bool:
    """Whether a notification skips the quiet hours: as asked, else by its interruption level."""
    return explicit if explicit is not None else interruption_level in URGENT_LEVELS


_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def parse_local_time(text: object, field: str) -> time:
    """``"09:00"`` -> 09:00; raises ValueError naming ``field`` and the expected form."""
    m = _HHMM.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{field} must be a local time HH:MM between 00:00 and 23:59, got {text!r}")
    return time(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True, slots=True)
class QuietHours:
    """``start`` to ``end`` local time; across midnight when ``end`` <= ``start`` (22:00-08:00)."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, t: time) -> bool:
        if self.start == self.end:
            return False  # an empty window, not the whole day
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


def zone_of(name: str | None) -> tzinfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def _at(day: datetime, t: time, zone: tzinfo) -> datetime:
    # a wall-clock time on that local day; in a DST gap (02:30 on the spring-forward night) the
    # zone database moves it by the gap, which is what a person would expect
    return datetime(day.year, day.month, day.day, t.hour, t.minute, tzinfo=zone)


def scheduled_for(
    now: datetime,
    zone_name: str | None,
    *,
    deliver_at_local: time | None = None,
    quiet_hours: QuietHours | None = None,
) -> datetime | None:
    """When a device in ``zone_name`` should get a notification being delivered at ``now`` (naive
    UTC, the outbox's clock): the next ``deliver_at_local`` there, then past the quiet hours.
    Returns naive UTC, or None for "now"."""
    zone = zone_of(zone_name)
    local_now = now.replace(tzinfo=UTC).astimezone(zone)
    when = local_now
    if deliver_at_local is not None:
        when = _at(local_now, deliver_at_local, zone)
        if when < local_now.replace(second=0, microsecond=0):
            when = _at(local_now + timedelta(days=1), deliver_at_local, zone)
    if quiet_hours is not None and quiet_hours.contains(when.timetz().replace(tzinfo=None)):
        end = _at(when, quiet_hours.end, zone)
        if end <= when:
            end = _at(when + timedelta(days=1), quiet_hours.end, zone)
        when = end
    utc = when.astimezone(UTC).replace(tzinfo=None)
    return utc if utc > now else None
