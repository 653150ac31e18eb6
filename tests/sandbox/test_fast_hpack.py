"""The sandbox's HPACK shortcuts give exactly what hpack itself gives (differential tests)."""

from __future__ import annotations

import random

import pytest
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hpack.exceptions import HPACKDecodingError, OversizedHeaderListError

from pushrelay.sandbox import fast_hpack


def _request_blocks(seed: int) -> list[list[tuple[bytes, bytes]]]:
    rng = random.Random(seed)
    jwt = b"bearer " + bytes(rng.choice(b"abcdefABCDEF0123456789-_.") for _ in range(180))
    return [
        [
            (b":method", b"POST"),
            (b":path", b"/3/device/" + bytes(rng.choice(b"0123456789abcdef") for _ in range(64))),
            (b"authorization", jwt),
            (b"apns-topic", b"com.sample.myappname"),
            (b"x-random", bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))),
        ]
        for _ in range(300)
    ]


@pytest.mark.parametrize("huffman", [True, False])
def test_compiled_decoder_matches_hpack_on_a_whole_connection(huffman: bool) -> None:
    encoder = Encoder()  # an independent encoder: Huffman or not, dynamic table, never-indexed values
    ours, reference = fast_hpack.CompiledRequestDecoder(), Decoder()
    for headers in _request_blocks(1):
        block = encoder.encode(
            [NeverIndexedHeaderTuple(*h) if h[0] == b"authorization" else h for h in headers], huffman=huffman
        )
        got = ours.decode(block, raw=True)
        assert got == reference.decode(block, raw=True) == headers
        assert isinstance(got[2], NeverIndexedHeaderTuple)  # sensitivity survives, as h2 expects


def test_compiled_decoder_raises_hpack_errors() -> None:
    decoder = fast_hpack.CompiledRequestDecoder()
    with pytest.raises(HPACKDecodingError):
        decoder.decode(b"\xff\xff\xff\xff\x0f", raw=True)  # an index far beyond both tables
    decoder = fast_hpack.CompiledRequestDecoder()
    decoder.max_header_list_size = 100
    with pytest.raises(OversizedHeaderListError):
        decoder.decode(Encoder().encode([(b"x-big", b"v" * 500)]), raw=True)


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
