"""The local-time rules (pure): the next HH:MM in a zone, quiet hours, DST, and the config key."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from pushrelay import ConfigurationError
from pushrelay.config import config_from_dict
from pushrelay.local_time import QuietHours, parse_local_time, scheduled_for

NIGHT = QuietHours(time(22), time(8))


@pytest.mark.parametrize(
    ("now", "zone", "at", "quiet", "expected"),
    [
        # 06:00 UTC is 07:00 in Paris: 09:00 there is 08:00 UTC
        (datetime(2027, 1, 15, 6), "Europe/Paris", time(9), None, datetime(2027, 1, 15, 8)),
        # past 09:00 in Tokyo (15:00): tomorrow's
        (datetime(2027, 1, 15, 6), "Asia/Tokyo", time(9), None, datetime(2027, 1, 16, 0)),
        # within the minute asked for: now
        (datetime(2027, 1, 15, 8, 0, 30), "Europe/Paris", time(9), None, None),
        # summer time: 09:00 in Paris is 07:00 UTC in July
        (datetime(2027, 7, 1, 3), "Europe/Paris", time(9), None, datetime(2027, 7, 1, 7)),
        # the spring-forward night in New York (02:30 does not exist): moved by the gap
        (datetime(2027, 3, 14, 5), "America/New_York", time(2, 30), None, datetime(2027, 3, 14, 7, 30)),
        # no zone, or an unknown one: UTC
        (datetime(2027, 1, 15, 6), None, time(9), None, datetime(2027, 1, 15, 9)),
        (datetime(2027, 1, 15, 6), "Mars/Olympus", time(9), None, datetime(2027, 1, 15, 9)),
        # quiet hours across midnight: 23:00 in Paris waits for 08:00 there
        (datetime(2027, 1, 15, 22), "Europe/Paris", None, NIGHT, datetime(2027, 1, 16, 7)),
        # 16:00 in Mexico City: not quiet
        (datetime(2027, 1, 15, 22), "America/Mexico_City", None, NIGHT, None),
        # a local time that falls in the quiet hours is held until they end
        (datetime(2027, 1, 15, 12), "Europe/Paris", time(23), NIGHT, datetime(2027, 1, 16, 7)),
        # a daytime window, and an empty one
        (datetime(2027, 1, 15, 12), None, None, QuietHours(time(12), time(14)), datetime(2027, 1, 15, 14)),
        (datetime(2027, 1, 15, 12), None, None, QuietHours(time(12), time(12)), None),
    ],
)
def test_scheduled_for(
    now: datetime, zone: str | None, at: time | None, quiet: QuietHours | None, expected: datetime | None
) -> None:
    assert scheduled_for(now, zone, deliver_at_local=at, quiet_hours=quiet) == expected


@pytest.mark.parametrize("text", ["9:00", "24:00", "09:60", "0900", " 09:00", 900, None])
def test_bad_local_times(text: object) -> None:
    with pytest.raises(ValueError, match="deliver_at_local must be a local time HH:MM"):
        parse_local_time(text, "deliver_at_local")


def test_quiet_hours_setting() -> None:
    def app(quiet: object) -> dict[str, object]:
        return {"apps": {"a": {"bundle_id": "com.x.a", "quiet_hours": quiet}}}

    assert config_from_dict(app({"start": "22:00", "end": "08:00"})).apps["a"].quiet_hours == NIGHT
    for quiet, key in [
        ({"start": "22:00"}, "apps.a.quiet_hours.end"),
        ({"start": "10pm", "end": "08:00"}, "apps.a.quiet_hours.start"),
        ({"start": "22:00", "end": "08:00", "zone": "UTC"}, "apps.a.quiet_hours.zone"),
        ("22:00-08:00", "apps.a.quiet_hours"),
    ]:
        with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
            config_from_dict(app(quiet))
