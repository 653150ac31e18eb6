"""The sandbox's HPACK shortcuts give exactly what hpack itself gives (differential tests)."""

from __future__ import annotations

import random

import pytest
from hpack import Decoder
from hpack.exceptions import HPACKDecodingError
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman as reference_decode

from pushrelay.sandbox import fast_hpack

ENCODER = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


@pytest.fixture(scope="module", autouse=True)
def table() -> None:
    fast_hpack.install_fast_huffman_decoder()


def outcome(decode: object, data: bytes) -> bytes | str:
    try:
        return decode(data)  # type: ignore[operator, no-any-return]
    except HPACKDecodingError as exc:
        return f"error: {exc}"


def test_valid_huffman_strings_decode_identically() -> None:
    rng = random.Random(1)
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(500)]
    samples += [b"/3/device/" + bytes(rng.choice(b"0123456789abcdef") for _ in range(64)) for _ in range(50)]
    for sample in samples:
        encoded = ENCODER.encode(sample)
        assert fast_hpack.decode_huffman(encoded) == sample == reference_decode(encoded)


def test_arbitrary_bytes_succeed_or_fail_identically() -> None:
    rng = random.Random(2)
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) for _ in range(3000)]
    samples += [b"\xff\xff\xff\xff", b"\xff", b"\x00", b"\x1f\xff\xff\xff"]  # EOS, bad padding
    for sample in samples:
        assert outcome(fast_hpack.decode_huffman, sample) == outcome(reference_decode, sample)


def test_response_encoder_round_trips_through_hpack() -> None:
    encoder = fast_hpack.LiteralResponseEncoder()
    decoder = Decoder()
    blocks = [
        [(":status", "200"), ("apns-id", "8e6b7d3c-5a4f-4b2e-9c1d-0f1e2d3c4b5a")],
        [(":status", "410"), ("apns-id", "x" * 300), ("content-type", "application/json")],
        [(b":status", b"404"), (b"x-custom-header-with-a-long-name" * 5, b"v")],
    ]
    for headers in blocks:
        expected = [
            (k.encode() if isinstance(k, str) else k, v.encode() if isinstance(v, str) else v)
            for k, v in headers
        ]
        assert decoder.decode(encoder.encode(headers), raw=True) == expected
    encoder.header_table_size = 0  # the client shrank its table: the next block must say so
    block = encoder.encode([(":status", "200")])
    assert block[0] == 0x20  # dynamic table size update to 0
    decoder.max_allowed_table_size = 0
    assert decoder.decode(block, raw=True) == [(b":status", b"200")]
