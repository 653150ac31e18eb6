"""HTTP/2 limits against hostile servers: a frame over our SETTINGS_MAX_FRAME_SIZE is a
FRAME_SIZE_ERROR, a header block over our SETTINGS_MAX_HEADER_LIST_SIZE (or a CONTINUATION flood) is
ENHANCE_YOUR_CALM. Each is a connection error: GOAWAY with that code, the connection dropped, the
requests on it returned as ``retry`` with the error, and nothing buffered beyond the limit.

The sans-IO tests feed the core byte by byte to show where it stops reading; the socket tests run a
raw TLS server, written here, that speaks just enough HTTP/2 to attack.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pushrelay import Notification, Outcome, ProtocolError
from pushrelay.apns import ApnsClient, TokenAuth
from pushrelay.http2.protocol import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    SETTINGS,
    ClientProtocol,
    ErrorCode,
    FrameTooLargeError,
    HeaderListTooLargeError,
)
from pushrelay.sandbox.tls import CertificateAuthority, server_ssl_context

_HEAD = struct.Struct(">HBBBL")
STATUS_200 = b"\x88"  # HPACK: indexed ":status: 200"


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"", *, length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    return _HEAD.pack(n >> 8, n & 0xFF, ftype, flags, sid) + payload


def started_client() -> tuple[ClientProtocol, int]:
    """A client core that has the server's SETTINGS and one request in flight (stream 1)."""
    client = ClientProtocol()
    client.initiate()
    client.receive(frame(SETTINGS, 0, 0))
    sid = client.send_request([(b":method", b"POST"), (b":path", b"/")], b"{}")
    client.data_to_send()
    return client, sid


def settings_sent() -> dict[int, int]:
    fresh = ClientProtocol()
    fresh.initiate()
    data = fresh.data_to_send()[24:]  # after the preface: our SETTINGS frame
    hi, lo, ftype, _flags, _sid = _HEAD.unpack_from(data)
    assert ftype == SETTINGS
    payload = data[9 : 9 + ((hi << 8) | lo)]
    return dict(struct.iter_unpack(">HL", payload))


# -- the sans-IO core ----------------------------------------------------------------------------
def test_we_advertise_the_limits_we_enforce() -> None:
    advertised = settings_sent()
    assert advertised[MAX_FRAME_SIZE] == ClientProtocol.MAX_FRAME_SIZE == 16384
    assert advertised[MAX_HEADER_LIST_SIZE] == ClientProtocol.MAX_HEADER_LIST_SIZE == 65536


def test_an_oversized_frame_is_refused_from_its_header_before_its_payload() -> None:
    client, sid = started_client()
    client.receive(frame(HEADERS, END_HEADERS, sid, STATUS_200))
    # only the 9-byte header of a 1 MiB DATA frame has arrived: that is enough to refuse it
    with pytest.raises(FrameTooLargeError) as info:
        client.receive(frame(DATA, END_STREAM, sid, length=1 << 20))
    assert info.value.error_code == ErrorCode.FRAME_SIZE_ERROR
    assert isinstance(info.value, ProtocolError) and "1048576" in str(info.value)


def test_a_frame_of_exactly_the_maximum_size_is_accepted() -> None:
    client, sid = started_client()
    client.receive(frame(HEADERS, END_HEADERS, sid, STATUS_200))
    (resp,) = client.receive(frame(DATA, END_STREAM, sid, b"x" * 16384))
    assert len(resp.body) == 16384  # type: ignore[union-attr]


def test_a_continuation_flood_stops_at_the_header_list_limit() -> None:
    client, sid = started_client()
    client.receive(frame(HEADERS, 0, sid, STATUS_200))  # no END_HEADERS: CONTINUATION follows
    fed = 0
    with pytest.raises(HeaderListTooLargeError) as info:
        for _ in range(200):  # 3.2 MB if nobody stopped it
            client.receive(frame(CONTINUATION, 0, sid, b"\x00" * 16384))
            fed += 16384
            held = client._streams[sid].header_block
            assert held is not None and len(held) <= ClientProtocol.MAX_HEADER_LIST_SIZE
    assert info.value.error_code == ErrorCode.ENHANCE_YOUR_CALM
    assert fed <= ClientProtocol.MAX_HEADER_LIST_SIZE  # refused on the frame that went over


def test_a_flood_of_tiny_continuation_frames_is_refused_too() -> None:
    client, sid = started_client()
    client.receive(frame(HEADERS, 0, sid, STATUS_200))
    with pytest.raises(HeaderListTooLargeError):
        for _ in range(10_000):
            client.receive(frame(CONTINUATION, 0, sid, b""))
    assert client._streams[sid].continuations == ClientProtocol.MAX_CONTINUATIONS + 1


def test_a_header_list_that_decodes_over_the_limit_is_refused() -> None:
    import hpack

    client, sid = started_client()
    # under 64 KiB on the wire, but it references a 4 KiB dynamic-table entry twenty times
    enc = hpack.Encoder()
    block = enc.encode([(b":status", b"200"), (b"x-big", b"v" * 4000)])
    block += enc.encode([(b"x-big", b"v" * 4000)] * 20)
    assert len(block) <= ClientProtocol.MAX_FRAME_SIZE
    with pytest.raises(HeaderListTooLargeError):
        client.receive(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))


# -- over TLS sockets, with a hostile server -----------------------------------------------------
Attack = Callable[[asyncio.StreamWriter, int], None]


@dataclass
class Hostile:
    url: str
    ca_file: Path
    goaway_codes: list[int] = field(default_factory=list)
    attacks: int = 0


def data_too_large(writer: asyncio.StreamWriter, sid: int) -> None:
    writer.write(frame(HEADERS, END_HEADERS, sid, STATUS_200))
    writer.write(frame(DATA, END_STREAM, sid, b"\0" * (1 << 20)))  # one 1 MiB DATA frame


def continuation_flood(writer: asyncio.StreamWriter, sid: int) -> None:
    writer.write(frame(HEADERS, 0, sid, STATUS_200))
    for _ in range(200):  # 3.2 MB of header block, never ended
        writer.write(frame(CONTINUATION, 0, sid, b"\0" * 16384))


@pytest.fixture
async def hostile(tmp_path: Path) -> AsyncIterator[Callable[[Attack], Awaitable[Hostile]]]:
    ca = CertificateAuthority.generate()
    material = ca.write_server_material(tmp_path, ["127.0.0.1"])
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(attack: Attack) -> Hostile:
        state = Hostile("", material.ca_file)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                await reader.readexactly(24)  # the client preface
                writer.write(frame(SETTINGS, 0, 0))
                while True:
                    head = await reader.readexactly(9)
                    hi, lo, ftype, flags, sid = _HEAD.unpack(head)
                    payload = await reader.readexactly((hi << 8) | lo)
                    if ftype == SETTINGS and not flags & 1:
                        writer.write(frame(SETTINGS, 1, 0))
                    elif ftype == HEADERS and state.attacks == 0:
                        state.attacks += 1
                        attack(writer, sid)
                    elif ftype == GOAWAY:
                        state.goaway_codes.append(struct.unpack(">LL", payload[:8])[1])
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass  # the client closed the connection on us: the point of the test
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ssl_context(material))
        servers.append(server)
        state.url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return state

    try:
        yield start
    finally:
        for s in servers:
            s.close()
        for w in writers:
            w.close()
        for s in servers:
            await s.wait_closed()


@pytest.mark.parametrize(
    ("attack", "code", "error"),
    [
        (data_too_large, ErrorCode.FRAME_SIZE_ERROR, "FrameTooLargeError"),
        (continuation_flood, ErrorCode.ENHANCE_YOUR_CALM, "HeaderListTooLargeError"),
    ],
    ids=["1MiB-DATA-frame", "CONTINUATION-flood"],
)
async def test_a_hostile_server_gets_goaway_and_the_requests_come_back_as_retry(
    hostile: Callable[[Attack], Awaitable[Hostile]], attack: Attack, code: int, error: str
) -> None:
    server = await hostile(attack)
    auth = TokenAuth(ec.generate_private_key(ec.SECP256R1()), key_id="HOSTILE001", team_id="TEAM123456")
    note = Notification(title="t", body="b")
    async with ApnsClient(auth, topic="com.sample.x", endpoint=server.url, ca_file=server.ca_file) as client:
        results = await asyncio.wait_for(
            asyncio.gather(*(client.send(note, f"{i:064x}") for i in range(5))), 30
        )
        stats = client.pool.stats
    assert {(r.outcome, r.status) for r in results} == {(Outcome.RETRY, 0)}
    assert all(r.reason is not None and r.reason.startswith(error) for r in results), results
    assert stats.resent_unprocessed == 0 and stats.responses == 0  # returned, not resent
    assert server.attacks == 1
    assert server.goaway_codes == [code]  # the server was told why, with the RFC 9113 code
