"""The sans-IO HTTP/2 client core against the independent ``h2`` server state machine, in memory."""

from __future__ import annotations

import json

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from pushrelay import ProtocolError
from pushrelay.http2.protocol import (
    ClientProtocol,
    ConnectionTerminated,
    ErrorCode,
    PingAcknowledged,
    ResponseReceived,
    SettingsChanged,
    StreamReset,
)

HEADERS = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"x"), (b":path", b"/3/device/ab")]


class Pair:
    def __init__(self, **server_settings: int) -> None:
        self.client = ClientProtocol(indexable_headers=frozenset({b":authority"}))
        self.server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.server.initiate_connection()
        if server_settings:
            self.server.update_settings(
                {getattr(h2.settings.SettingCodes, k): v for k, v in server_settings.items()}
            )
        self.client.initiate()
        self.server_events: list[h2.events.Event] = []
        self.bodies: dict[int, bytes] = {}

    def pump(self) -> list[object]:
        """Exchange bytes until both sides are quiet; returns the client's events."""
        events: list[object] = []
        for _ in range(50):
            c2s = self.client.data_to_send()
            if c2s:
                for ev in self.server.receive_data(c2s):
                    self.server_events.append(ev)
                    if isinstance(ev, h2.events.DataReceived):
                        self.bodies[ev.stream_id] = self.bodies.get(ev.stream_id, b"") + ev.data
                        self.server.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            s2c = self.server.data_to_send()
            if s2c:
                events += self.client.receive(s2c)
            if not c2s and not s2c:
                break
        return events

    def respond(
        self, sid: int, status: int, body: bytes = b"", extra: list[tuple[str, str]] | None = None
    ) -> None:
        hdrs = [(":status", str(status)), ("apns-id", f"id-{sid}"), *(extra or [])]
        self.server.send_headers(sid, hdrs, end_stream=not body)
        if body:
            self.server.send_data(sid, body, end_stream=True)


def requests_seen(pair: Pair) -> list[int]:
    return [ev.stream_id for ev in pair.server_events if isinstance(ev, h2.events.RequestReceived)]


def test_request_and_responses_with_and_without_body() -> None:
    p = Pair()
    p.pump()
    s1 = p.client.send_request(HEADERS, b'{"aps":{}}')
    s3 = p.client.send_request(HEADERS, b"")
    p.pump()
    assert requests_seen(p) == [1, 3] and (s1, s3) == (1, 3)
    assert p.bodies[1] == b'{"aps":{}}'
    p.respond(1, 200)
    p.respond(3, 410, json.dumps({"reason": "Unregistered", "timestamp": 5}).encode())
    events = [e for e in p.pump() if isinstance(e, ResponseReceived)]
    assert [(e.stream_id, e.status) for e in events] == [(1, 200), (3, 410)]
    assert (b"apns-id", b"id-1") in events[0].headers
    assert json.loads(events[1].body)["reason"] == "Unregistered"
    assert p.client.open_streams == 0


def test_no_request_before_the_server_settings_arrive() -> None:
    client = ClientProtocol()
    client.initiate()
    assert not client.can_open_stream  # the server's limit is not known yet
    client.receive(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x01")  # SETTINGS: 1 stream
    assert client.can_open_stream and client.max_concurrent_streams == 1


def test_follows_max_concurrent_streams_as_it_changes() -> None:
    p = Pair(MAX_CONCURRENT_STREAMS=1)
    events = p.pump()
    assert SettingsChanged(1) in events
    p.client.send_request(HEADERS, b"{}")
    assert not p.client.can_open_stream
    p.server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 500})
    assert SettingsChanged(500) in p.pump()
    assert p.client.can_open_stream


def test_request_bodies_wait_for_the_peer_window() -> None:
    p = Pair(INITIAL_WINDOW_SIZE=100)
    p.pump()
    body = bytes(range(256)) * 8  # 2048 bytes, 20x the stream window
    sid = p.client.send_request(HEADERS, body)
    p.pump()  # the server acknowledges what it got, opening the window again and again
    assert p.bodies[sid] == body
    ends = [ev for ev in p.server_events if isinstance(ev, h2.events.StreamEnded)]
    assert [e.stream_id for e in ends] == [sid]


def test_large_response_body_is_acknowledged_so_the_server_can_finish() -> None:
    p = Pair()
    p.pump()
    sid = p.client.send_request(HEADERS, b"{}")
    p.pump()
    big = b"x" * (3 * 1024 * 1024)  # larger than our 1 MiB stream window
    p.server.send_headers(sid, [(":status", "200")])
    sent = 0
    got: list[object] = []
    while sent < len(big):
        window = min(p.server.local_flow_control_window(sid), p.server.max_outbound_frame_size)
        assert window > 0, "client never gave the window back"
        chunk = big[sent : sent + window]
        sent += len(chunk)
        p.server.send_data(sid, chunk, end_stream=sent == len(big))
        got += p.pump()
    (resp,) = [e for e in got if isinstance(e, ResponseReceived)]
    assert resp.body == big


def test_goaway_reports_the_streams_the_server_never_processed() -> None:
    p = Pair()
    p.pump()
    for _ in range(4):
        p.client.send_request(HEADERS, b"{}")
    p.pump()
    p.respond(1, 200)
    p.server.close_connection(error_code=0, additional_data=b'{"reason":"Shutdown"}', last_stream_id=3)
    events = p.pump()
    (term,) = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert (term.last_stream_id, term.unprocessed, term.debug_data) == (3, [5, 7], b'{"reason":"Shutdown"}')
    assert not p.client.can_open_stream and p.client.exhausted
    assert p.client.open_streams == 1  # stream 3 may still be answered


def test_refused_stream_is_marked_unprocessed() -> None:
    p = Pair()
    p.pump()
    p.client.send_request(HEADERS, b"{}")
    p.client.send_request(HEADERS, b"{}")
    p.pump()
    p.server.reset_stream(1, error_code=ErrorCode.REFUSED_STREAM)
    p.server.reset_stream(3, error_code=ErrorCode.INTERNAL_ERROR)
    resets = [e for e in p.pump() if isinstance(e, StreamReset)]
    assert [(r.stream_id, r.unprocessed) for r in resets] == [(1, True), (3, False)]


def test_header_block_split_over_continuation_frames() -> None:
    p = Pair()
    p.pump()
    sid = p.client.send_request(HEADERS, b"{}")
    p.pump()
    p.respond(sid, 400, b'{"reason":"BadTopic"}', extra=[("x-huge", "v" * 40000)])
    (resp,) = [e for e in p.pump() if isinstance(e, ResponseReceived)]
    assert resp.status == 400 and (b"x-huge", b"v" * 40000) in resp.headers


def test_ping_is_answered_and_our_ping_acknowledged() -> None:
    p = Pair()
    p.pump()
    p.server.ping(b"12345678")
    p.client.ping(b"pushrely")
    events = p.pump()
    assert PingAcknowledged(b"pushrely") in events
    assert any(isinstance(e, h2.events.PingAckReceived) for e in p.server_events)


def test_informational_response_is_skipped() -> None:
    p = Pair()
    p.pump()
    sid = p.client.send_request(HEADERS, b"{}")
    p.pump()
    p.server.send_headers(sid, [(":status", "100")])
    p.respond(sid, 200)
    (resp,) = [e for e in p.pump() if isinstance(e, ResponseReceived)]
    assert resp.status == 200


def test_late_answer_to_a_cancelled_stream_keeps_hpack_in_sync() -> None:
    p = Pair()
    p.pump()
    a = p.client.send_request(HEADERS, b"{}")
    b = p.client.send_request(HEADERS, b"{}")
    p.pump()
    # the server answers both before it sees our RST for the first
    p.respond(a, 200, extra=[("x-dyn", "first")])
    p.respond(b, 200, extra=[("x-dyn", "first")])
    s2c = p.server.data_to_send()
    p.client.reset_stream(a)
    events = p.client.receive(s2c)
    assert [(e.stream_id, e.status) for e in events if isinstance(e, ResponseReceived)] == [(b, 200)]


def test_server_push_is_a_protocol_error() -> None:
    p = Pair()
    p.pump()
    # a PUSH_PROMISE frame on stream 1 (h2 will not send one to a peer that disabled push)
    frame = b"\x00\x00\x04\x05\x04\x00\x00\x00\x01\x00\x00\x00\x02"
    p.client.send_request(HEADERS, b"")
    with pytest.raises(ProtocolError) as exc:
        p.client.receive(frame)
    assert exc.value.error_code == ErrorCode.PROTOCOL_ERROR


def test_garbage_frame_sizes_are_protocol_errors() -> None:
    p = Pair()
    p.pump()
    with pytest.raises(ProtocolError) as exc:
        p.client.receive(b"\x00\x00\x03\x06\x00\x00\x00\x00\x00abc")  # PING of 3 bytes
    assert exc.value.error_code == ErrorCode.FRAME_SIZE_ERROR
