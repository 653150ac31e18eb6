"""The hand-written HPACK encoder is checked against the independent ``hpack`` decoder."""

from __future__ import annotations

import random

import hpack
import pytest

from pushrelay.http2.hpack_encoder import HeaderEncoder, encode_integer

INDEXABLE = frozenset({b"authorization", b"apns-topic", b"apns-push-type", b":authority", b"apns-priority"})


@pytest.mark.parametrize(
    ("value", "prefix", "expected"), [(10, 5, b"\x0a"), (1337, 5, b"\x1f\x9a\x0a"), (42, 8, b"\x2a")]
)
def test_integer_encoding_matches_rfc7541_examples(value: int, prefix: int, expected: bytes) -> None:
    assert encode_integer(value, prefix) == expected


def _request(i: int, rng: random.Random) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"api.push.apple.com"),
        (b":path", b"/3/device/%064x" % rng.getrandbits(256)),
        (b"authorization", b"bearer " + (b"jwt%d." % (i // 300)) * 40),  # refreshed every 300 requests
        (b"apns-topic", b"com.example.%d" % (i % 9)),
        (b"apns-push-type", rng.choice([b"alert", b"background", b"voip"])),
        (b"apns-id", b"%032x" % i),
        (b"apns-priority", b"10"),
        (b"x-long-%d" % (i % 3), b"v" * rng.randrange(0, 300)),  # not indexable, literal name
    ]


def test_round_trip_with_evictions_and_table_resizes() -> None:
    rng = random.Random(7)
    enc, dec = HeaderEncoder(INDEXABLE), hpack.Decoder()
    for i in range(4000):
        if i == 1000:
            enc.set_max_table_size(300)  # peer lowered SETTINGS_HEADER_TABLE_SIZE
        if i == 2500:
            enc.set_max_table_size(0)  # no dynamic table at all
        headers = _request(i, rng)
        assert dec.decode(enc.encode(headers), raw=True) == headers


def test_repeated_values_cost_one_byte_each() -> None:
    enc = HeaderEncoder(INDEXABLE)
    first = [(b"authorization", b"bearer " + b"x" * 200), (b"apns-topic", b"com.example.app")]
    assert len(enc.encode(first)) > 200
    assert enc.encode(first) == b"\xbf\xbe"  # indices 63 and 62: two bytes for both headers


def test_value_larger_than_the_table_is_sent_literally() -> None:
    enc, dec = HeaderEncoder(INDEXABLE, max_table_size=64), hpack.Decoder()
    dec.header_table_size = 64
    headers = [(b"authorization", b"z" * 100)]
    for _ in range(3):
        assert dec.decode(enc.encode(headers), raw=True) == headers
