"""Two HPACK speed-ups for the sandbox's hot path, both exact (RFC 7541) and measured worthwhile.

1. :class:`CompiledRequestDecoder` decodes request headers with jh2's compiled HPACK codec instead of
   the pure-Python ``hpack`` one (per connection; nothing is patched process-wide).
2. :class:`LiteralResponseEncoder` encodes response headers with static-table indexes and literals
   "without indexing" only: no dynamic-table bookkeeping, no Huffman coding (responses are tiny and
   mostly unique, e.g. ``apns-id``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack.exceptions import HPACKDecodingError, OversizedHeaderListError
from hpack.struct import HeaderTuple, NeverIndexedHeaderTuple
from hpack.table import HeaderTable

__all__ = ["CompiledRequestDecoder", "LiteralResponseEncoder"]

try:  # jh2 ships a compiled HPACK decoder; without it h2's own (pure-Python) decoder stays in place
    from jh2._hazmat import Decoder as _NativeDecoder
    from jh2._hazmat import HPACKError as _NativeError
    from jh2._hazmat import OversizedHeaderListError as _NativeOversized
except ImportError:  # pragma: no cover - platforms without a jh2 wheel
    _NativeDecoder = None


class CompiledRequestDecoder:
    """Drop-in for ``hpack.Decoder`` on one server connection, backed by jh2's compiled codec.

    h2 clients send ``authorization`` as a never-indexed literal and a new device token in every
    ``:path``, so Huffman decoding was about half of the sandbox's CPU per request. h2 uses
    ``decode`` and the three size properties; errors are translated into hpack's so that h2 answers a
    bad header block with the same connection error as before.
    """

    def __init__(self) -> None:
        assert _NativeDecoder is not None
        self._decoder = _NativeDecoder()

    @staticmethod
    def available() -> bool:
        return _NativeDecoder is not None

    def decode(self, data: bytes, raw: bool = False) -> list[HeaderTuple]:
        try:
            decoded = self._decoder.decode(data, raw=True)
        except _NativeOversized as exc:
            raise OversizedHeaderListError(str(exc)) from None
        except _NativeError as exc:
            raise HPACKDecodingError(str(exc)) from None
        return [
            NeverIndexedHeaderTuple(n, v) if sensitive else HeaderTuple(n, v) for n, v, sensitive in decoded
        ]

    @property
    def header_table_size(self) -> int:
        return int(self._decoder.header_table_size)

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._decoder.header_table_size = value

    @property
    def max_allowed_table_size(self) -> int:
        return int(self._decoder.max_allowed_table_size)

    @max_allowed_table_size.setter
    def max_allowed_table_size(self, value: int) -> None:
        self._decoder.max_allowed_table_size = value

    @property
    def max_header_list_size(self) -> int:
        return int(self._decoder.max_header_list_size)

    @max_header_list_size.setter
    def max_header_list_size(self, value: int) -> None:
        self._decoder.max_header_list_size = value


_STATIC_FULL: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, start=1):
    _STATIC_FULL.setdefault((_name, _value), _index)
    _STATIC_NAME.setdefault(_name, _index)


def _integer(value: int, prefix_bits: int, flags: int, out: bytearray) -> None:
    """RFC 7541 §5.1 integer with an N-bit prefix; ``flags`` fill the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        out.append(flags | value)
        return
    out.append(flags | limit)
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class LiteralResponseEncoder:
    """Drop-in for ``hpack.Encoder`` on a server connection (h2 uses ``encode`` and ``header_table_size``).

    Never adds to the dynamic table, so the peer's decoder state stays trivially in sync. When the peer
    changes SETTINGS_HEADER_TABLE_SIZE, the next header block starts with the required size update.
    """

    def __init__(self) -> None:
        self._table_size = 4096
        self._pending_size_update = False

    @property
    def header_table_size(self) -> int:
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._table_size = value
        self._pending_size_update = True

    def encode(self, headers: Iterable[Any], huffman: bool = False) -> bytes:
        out = bytearray()
        if self._pending_size_update:
            _integer(self._table_size, 5, 0x20, out)
            self._pending_size_update = False
        for header in headers:
            name, value = header[0], header[1]
            if isinstance(name, str):
                name = name.encode()
            if isinstance(value, str):
                value = value.encode()
            index = _STATIC_FULL.get((name, value))
            if index is not None:
                _integer(index, 7, 0x80, out)  # indexed header field
                continue
            name_index = _STATIC_NAME.get(name)
            if name_index is not None:
                _integer(name_index, 4, 0x00, out)  # literal without indexing, indexed name
            else:
                out.append(0x00)  # literal without indexing, new name
                _integer(len(name), 7, 0x00, out)
                out += name
            _integer(len(value), 7, 0x00, out)
            out += value
        return bytes(out)
