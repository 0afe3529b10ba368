"""Edges of the engine that the RFC-ordered suites do not reach: the event budget in every
parser state, local misuse, extension negotiation faults, and small helpers. Both builds."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import pytest

from wsfast import (
    BinaryMessage,
    ClientConnection,
    CloseReceived,
    ConnectionFailed,
    HandshakeFailed,
    InvalidState,
    Ping,
    Rejected,
    Request,
    ServerConnection,
    State,
    TextMessage,
    TransportClosed,
)
from wsfast._state import CLOSED, transition
from wsfast.extensions import ClientExtensionFactory, Extension, ServerExtensionFactory
from wsfast.permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate

from .helpers import KEY, frame, open_server, out, pair


def deflate_pair(**server_kw):
    c, s = pair({"extensions": [ClientPerMessageDeflate()]}, {"extensions": [ServerPerMessageDeflate()], **server_kw})
    assert s.extensions
    return c, s


def deflated(data: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]


# ---------------------------------------------------------------- the event budget


def test_budget_holds_in_the_payload_state():
    # Frames whose payload completes in a later read (the PAYLOAD state) hold too.
    s = open_server(max_message_size=100_000)
    msg = frame(0x2, b"y" * 70_000)
    data = msg * 5
    s.receive_data(data[:50_000])
    s.receive_data(data[50_000:])
    assert len(s._events) == 2 and s._parser.held is not None
    evs = list(s.events())
    assert evs == [BinaryMessage(b"y" * 70_000)] * 5


def test_budget_holds_on_control_frames():
    s = open_server(max_message_size=1000)  # budget: its 64 KiB floor
    s.receive_data(frame(0x9, b"") * 3000)
    assert 0 < len(s._events) < 3000
    assert len(list(s.events())) == 3000
    assert out(s) == b"\x8a\x00" * 3000  # every ping answered, in order


def test_budget_holds_on_empty_final_fragments():
    s = open_server(max_message_size=1000)
    s.receive_data((frame(0x1, b"a", fin=False) + frame(0x0, b"")) * 3000)
    assert 0 < len(s._events) < 3000
    assert list(s.events()) == [TextMessage("a")] * 3000


def test_fault_in_held_input_is_delivered_after_the_messages_before_it():
    s = open_server(max_message_size=1000)
    s.receive_data(frame(0x2, b"z" * 1000) * 200 + frame(0x3, b""))
    assert s._parser.held is not None
    wire = b""
    evs = []
    for ev in s.events():
        evs.append(ev)
        if isinstance(ev, BinaryMessage):
            s.send_binary(ev.data[:1])
        wire += out(s)
    assert evs[:200] == [BinaryMessage(b"z" * 1000)] * 200
    assert isinstance(evs[200], ConnectionFailed) and evs[200].code == 1002 and len(evs) == 201
    assert wire == b"\x82\x01z" * 200 + b"\x88\x15\x03\xeareserved opcode 0x3"


def test_held_input_after_an_iterator_dropped_half_way_holds_again():
    s = open_server(max_message_size=1000)
    msg = frame(0x2, b"x" * 1000)
    s.receive_data(msg * 300)
    first = len(s._events)
    it = s.events()
    next(it)
    it.close()  # the rest of that batch is dropped with it; the held input is not
    s.receive_data(msg * 10)  # resumes (nothing untaken), holds again, keeps these bytes
    assert s._parser.held is not None
    rest = list(s.events())
    assert len(rest) == 310 - first and all(e == BinaryMessage(b"x" * 1000) for e in rest)


def test_resume_with_nothing_held_is_a_no_op():
    s = open_server()
    s._parser.resume()
    assert list(s.events()) == []


def test_receive_data_after_a_deferred_eof_is_ignored():
    s = open_server()
    s.receive_data(frame(0x2, b"x" * 1000) * 100)
    s.receive_eof()
    s.receive_eof()  # idempotent
    s.receive_data(frame(0x1, b"late"))
    evs = list(s.events())
    assert evs[:-1] == [BinaryMessage(b"x" * 1000)] * 100 and isinstance(evs[-1], TransportClosed)


# ---------------------------------------------------------------- compressed edges


def test_rsv1_on_a_control_frame_with_deflate_is_a_fault():
    c, s = deflate_pair()
    s.receive_data(frame(0x9, b"", rsv=0x40))
    evs = list(s.events())
    assert isinstance(evs[0], ConnectionFailed) and "control frame" in evs[0].reason


def test_rsv1_on_a_continuation_with_deflate_is_a_fault():
    c, s = deflate_pair()
    s.receive_data(frame(0x2, deflated(b"ab"), fin=False, rsv=0x40) + frame(0x0, b"", rsv=0x40))
    evs = list(s.events())
    assert isinstance(evs[0], ConnectionFailed) and "continuation" in evs[0].reason


def test_compressed_frame_over_its_allowance_is_refused_on_the_header():
    c, s = deflate_pair(max_message_size=1000)
    s.receive_data(frame(0x2, b"", rsv=0x40, length=1000 + 125 + 1024 + 1)[:14])
    evs = list(s.events())
    assert isinstance(evs[0], ConnectionFailed) and evs[0].code == 1009


def test_streamed_compressed_message_over_the_limit():
    c, s = deflate_pair(max_message_size=1000)
    payload = deflated(bytes(5000))
    data = frame(0x2, payload[:5], fin=False, rsv=0x40) + frame(0x0, payload[5:])
    s.receive_data(data)
    evs = list(s.events())
    assert isinstance(evs[-1], ConnectionFailed) and evs[-1].code == 1009


# ---------------------------------------------------------------- sending and local misuse


def test_large_unmasked_text_is_sent_without_copying():
    s = open_server()
    text = "x" * 5000
    s.send_text(text)
    chunks = s.data_to_send()
    assert chunks[0] == b"\x81\x7e\x13\x88" and chunks[1] == text.encode()


def test_send_binary_owns_a_bytearray():
    s = open_server()
    buf = bytearray(b"abc")
    s.send_binary(buf)
    buf[0] = 0
    assert out(s) == b"\x82\x03abc"


def test_close_applies_a_pending_close_first():
    s = open_server()
    s.receive_data(frame(0x8, b"\x03\xe8"))
    s.close(1001)  # the peer's close came first: ours is the echo of theirs
    assert out(s) == b"\x88\x02\x03\xe8"
    assert s.state is State.CLOSED and s.close_tcp


def test_close_then_the_peers_close_ends_the_handshake():
    s = open_server()
    s.close(1000)
    assert out(s) == b"\x88\x02\x03\xe8"
    s.receive_data(frame(0x8, b"\x03\xe8"))
    assert [type(e) for e in s.events()] == [CloseReceived]
    assert s.state is State.CLOSED and s.close_tcp and out(s) == b""


@pytest.mark.parametrize("behind", [frame(0x8, b"\x03\xe8"), frame(0x3, b"")])  # a close; a reserved opcode
def test_fail_supersedes_a_pending_close_or_fault(behind):
    """The application fails the connection (a slow consumer, 1008) while the peer's close or
    a protocol fault waits behind a message not yet handed out: our 1008 is what goes out,
    and taking the events afterwards applies nothing more (no second close, no error)."""
    s = open_server()
    s.receive_data(frame(0x1, b"hi") + behind)
    s.fail(1008, "slow")
    assert out(s) == b"\x88\x06\x03\xf0slow"
    assert s.state is State.CLOSED and s.close_tcp
    evs = list(s.events())
    assert isinstance(evs[0], TextMessage) and evs[0].data == "hi"
    assert out(s) == b"" and s.state is State.CLOSED and s.close_code_sent == 1008


def test_fail_truncates_a_long_reason_on_a_character_boundary():
    s = open_server()
    s.fail(1011, "é" * 100)
    body = out(s)[2:]
    assert body[:2] == b"\x03\xf3" and len(body) - 2 <= 123
    body[2:].decode("utf-8")


def test_fail_before_the_handshake():
    s = ServerConnection()
    s.fail()
    assert s.state is State.CLOSED and s.close_tcp
    s.fail()  # and again in CLOSED
    assert s.state is State.CLOSED


def test_receive_eof_applies_a_pending_failure():
    s = open_server()
    s.receive_data(frame(0x3, b""))
    s.receive_eof()
    assert out(s) == b"\x88\x15\x03\xeareserved opcode 0x3"
    evs = list(s.events())
    assert isinstance(evs[0], ConnectionFailed) and isinstance(evs[-1], TransportClosed)


def test_receive_data_takes_any_buffer():
    s = open_server()
    s.receive_data(memoryview(frame(0x1, b"mv")))
    s.receive_data(bytearray(frame(0x1, b"ba")))
    assert list(s.events()) == [TextMessage("mv"), TextMessage("ba")]


def test_data_after_eof_during_the_handshake_is_ignored():
    s = ServerConnection()
    s.receive_data(b"GET / HTTP/1.1\r\n")
    s.receive_eof()
    s.receive_data(b"Host: h\r\n\r\n")
    assert s.state is State.CLOSED


def test_reject_cannot_answer_101():
    s = ServerConnection()
    s.receive_data(out(ClientConnection("h", key=KEY)))
    list(s.events())
    with pytest.raises(ValueError, match="101"):
        s.reject(101)


def test_too_much_early_data_before_accept():
    s = ServerConnection()
    s.receive_data(out(ClientConnection("h", key=KEY)))
    assert [type(e) for e in s.events()] == [Request]
    s.receive_data(b"\x82" * ((1 << 20) + 1))
    evs = list(s.events())
    assert isinstance(evs[0], HandshakeFailed) and evs[0].status == 400
    assert out(s).startswith(b"HTTP/1.1 400 Bad Request\r\n") and s.close_tcp


def test_client_rejection_body_is_cut_at_the_handshake_limit():
    c = ClientConnection("h", key=KEY, max_handshake_size=100)
    c.receive_data(b"HTTP/1.1 403 Forbidden\r\nX-Other: 1\r\nContent-Length: 500\r\n\r\n" + b"b" * 300)
    (ev,) = c.events()
    assert isinstance(ev, Rejected) and ev.body == b"b" * 100


def test_transition_refuses_a_missing_edge():
    with pytest.raises(InvalidState, match="open"):
        transition(CLOSED, "open")


def test_request_helpers():
    s = ServerConnection()
    s.receive_data(out(ClientConnection("h", "/p?q=1", key=KEY)))
    (req,) = s.events()
    assert (req.path, req.query, req.header("HOST"), req.header("nope", "d")) == ("/p", "q=1", "h", "d")
    s2 = ServerConnection()
    s2.receive_data(out(ClientConnection("h", "/p", key=KEY)))
    (req2,) = s2.events()
    assert req2.query == ""


def test_message_events_hash_and_repr():
    assert hash(Ping(b"x")) == hash(Ping(b"x")) and "Ping" in repr(Ping(b"x"))
    assert len({TextMessage("a"), TextMessage("a"), BinaryMessage(b"a")}) == 2
    from wsfast.events import Pong

    assert hash(Pong(b"")) == hash(Pong(b"")) and Pong(b"") != Ping(b"")


def test_env_refuses_both_switches():
    env = dict(os.environ, WSFAST_NO_EXTENSIONS="1", WSFAST_REQUIRE_EXTENSIONS="1")
    r = subprocess.run([sys.executable, "-c", "import wsfast"], env=env, capture_output=True, timeout=60)
    assert r.returncode != 0 and b"both set" in r.stderr


# ---------------------------------------------------------------- client-side negotiation faults


class _Ext(Extension):
    def __init__(self, name: str, rsv: int) -> None:
        self.name = name
        self.rsv = rsv


class _Factory(ClientExtensionFactory):
    def __init__(self, name: str, rsv: int = 0x40) -> None:
        self.name = name
        self._rsv = rsv

    def offer(self):
        return []

    def accept(self, params):
        return _Ext(self.name, self._rsv)


def _response(extensions: str) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Extensions: "
        + extensions.encode()
        + b"\r\n\r\n"
    )


@pytest.mark.parametrize(
    "factories, header, match",
    [
        ([_Factory("x-a")], "x-a, x-a", "twice"),
        ([_Factory("x-a"), _Factory("x-b")], "x-a, x-b", "RSV bits"),
        ([_Factory("x-a", 0x40), _Factory("x-b", 0x20)], "x-a, x-b", "at most one extension"),
    ],
)
def test_client_refuses_bad_extension_responses(factories, header, match):
    c = ClientConnection("h", key=KEY, extensions=factories)
    c.receive_data(_response(header))
    (ev,) = c.events()
    assert isinstance(ev, HandshakeFailed) and match in ev.reason
    assert c.state is State.CLOSED


class _Declines(ServerExtensionFactory):
    name = "permessage-deflate"

    def negotiate(self, offers):
        return None


def test_accept_skips_factories_not_offered_or_declining():
    class _Other(ServerExtensionFactory):
        name = "x-other"

    s = ServerConnection(extensions=[_Other(), _Declines(), ServerPerMessageDeflate()])
    s.receive_data(out(ClientConnection("h", key=KEY, extensions=[ClientPerMessageDeflate()])))
    list(s.events())
    s.accept()
    assert [e.name for e in s.extensions] == ["permessage-deflate"]


def test_budget_holds_when_a_streamed_payload_completes():
    s = open_server(max_message_size=100_000)
    data = frame(0x2, b"y" * 70_000) * 5
    for piece in (data[:50_000], data[50_000:100_000], data[100_000:]):
        s.receive_data(piece)  # the second message completes in the PAYLOAD state, over budget
    assert s._parser.held is not None
    assert list(s.events()) == [BinaryMessage(b"y" * 70_000)] * 5


def test_whole_frame_under_the_frame_limit_over_the_message_limit():
    s = open_server(max_message_size=10, max_frame_size=100)
    s.receive_data(frame(0x2, b"x" * 50))
    (ev,) = s.events()
    assert isinstance(ev, ConnectionFailed) and ev.code == 1009


def test_fault_after_our_close_sends_no_second_close():
    s = open_server()
    s.close(1000)
    assert out(s) == b"\x88\x02\x03\xe8"
    s.receive_data(frame(0x3, b""))
    evs = list(s.events())
    assert isinstance(evs[0], ConnectionFailed)
    assert out(s) == b"" and s.state is State.CLOSED and s.close_code_sent == 1000


def test_empty_reads_and_frames_between_request_and_accept():
    s = ServerConnection()
    s.receive_data(b"")
    s.receive_data(out(ClientConnection("h", key=KEY)))
    assert [type(e) for e in s.events()] == [Request]
    s.receive_data(frame(0x1, b"kept"))
    seen = []
    for ev in s.events():
        seen.append(ev)
    assert seen == []
    s.accept()
    assert list(s.events()) == [TextMessage("kept")]


def test_receive_data_after_a_deferred_eof_with_held_input_is_ignored():
    s = open_server(max_message_size=1000)
    s.receive_data(frame(0x2, b"x" * 1000) * 100)
    assert s._parser.held is not None
    s.receive_eof()
    s.receive_data(frame(0x1, b"late"))
    evs = list(s.events())
    assert evs[:-1] == [BinaryMessage(b"x" * 1000)] * 100 and isinstance(evs[-1], TransportClosed)


def test_find_head_end_takes_a_memoryview_and_headers_must_be_str():
    from wsfast import handshake as hs

    req = out(ClientConnection("h", key=KEY))
    assert hs.find_head_end(memoryview(req)) == len(req)
    with pytest.raises(ValueError, match="must be str"):
        hs.build_response(400, headers=[("X", 1)])  # type: ignore[list-item]


def test_serialize_close_refuses_a_code_not_for_the_wire():
    from wsfast.frames import serialize_close

    with pytest.raises(ValueError, match="1006"):
        serialize_close(1006)
