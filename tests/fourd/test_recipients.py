"""The recipients argument, read as 4D reads it."""

from __future__ import annotations

import pytest

from pushrelay import NotificationError
from pushrelay.fourd import Recipients, parse_recipients

HEX = "ab" * 32


def test_a_text_is_an_email_or_else_a_token() -> None:
    assert parse_recipients("test@4d.com") == Recipients(emails=("test@4d.com",))
    assert parse_recipients(HEX) == Recipients(tokens=(HEX,))
    assert parse_recipients("booted") == Recipients(tokens=("booted",))


def test_a_list_mixes_both_and_drops_duplicates() -> None:
    parsed = parse_recipients(["a@x.com", HEX, "A@X.com", HEX, " b@x.com ", ""])
    assert parsed == Recipients(emails=("a@x.com", "b@x.com"), tokens=(HEX,))


def test_the_4d_object() -> None:
    parsed = parse_recipients({"mails": ["a@x.com"], "deviceTokens": [HEX], "simulators": ["booted"]})
    assert parsed == Recipients(emails=("a@x.com",), tokens=(HEX, "booted"))
    assert parse_recipients({"emails": "a@x.com", "tokens": HEX}) == parsed.__class__(("a@x.com",), (HEX,))
    assert parse_recipients({"mails": [], "deviceTokens": []}).empty
    assert parse_recipients([]).empty


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "must be a text or a list"),
        (["a@x.com", 7], r"recipients\[1\] must be a text"),
        ({"phones": ["+33"]}, "unknown recipients key 'phones'"),
        ({"mails": {"a": 1}}, "recipients.mails must be a text or a list"),
    ],
)
def test_wrong_shapes_raise_naming_recipients(value: object, expected: str) -> None:
    with pytest.raises(NotificationError, match=expected) as info:
        parse_recipients(value)
    assert info.value.field == "recipients"
