"""Prepared frames (``wsfast.frames.prepare``, ``Connection.send_prepared``): a message
encoded once and queued as the same bytes object wherever a connection's frame would be
those bytes, encoded as ``send_text``/``send_binary`` would everywhere else. No sockets."""

from __future__ import annotations

import pytest

from wsfast.events import BinaryMessage, TextMessage
from wsfast.exceptions import InvalidState
from wsfast.frames import Opcode, PreparedFrame, frame_size, prepare
from wsfast.permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate

from .helpers import frame, pair


def deflate_pair():
    return pair({"extensions": [ClientPerMessageDeflate()]}, {"extensions": [ServerPerMessageDeflate()]})


def messages(events):
    return [(type(e).__name__, e.data) for e in events if isinstance(e, (TextMessage, BinaryMessage))]


# ---------------------------------------------------------------------------- prepare


@pytest.mark.parametrize(
    "payload",
    [b"", b"x", b"a" * 125, b"b" * 126, b"c" * 65535, b"d" * 65536, bytes(range(256)) * 300],
)
def test_prepare_binary_exact_bytes(payload: bytes) -> None:
    p = prepare(payload)
    assert p.opcode == Opcode.BINARY == 2
    assert p.payload == payload
    assert p.data == frame(0x2, payload, mask=None)  # the hand-built reference frame
    assert frame_size(p.data) == len(p.data)


def test_prepare_text_and_bytes_like() -> None:
    p = prepare("héllo")
    assert (p.opcode, p.payload) == (1, "héllo".encode())
    assert p.data == b"\x81\x06" + "héllo".encode()
    assert prepare(bytearray(b"ab")).data == b"\x82\x02ab"
    assert prepare(memoryview(b"abc")[1:]).data == b"\x82\x02bc"
    assert type(prepare(bytearray(b"ab")).payload) is bytes  # owned: the caller's buffer may change
    assert "text" in repr(prepare("x")) and "binary" in repr(prepare(b"x"))


def test_prepared_frame_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        PreparedFrame(Opcode.PING, b"")
    with pytest.raises(ValueError):
        PreparedFrame(Opcode.CONTINUATION, b"")
    with pytest.raises(TypeError):
        PreparedFrame(Opcode.BINARY, bytearray(b"x"))  # type: ignore[arg-type]


def test_frame_size_of_every_length_form_masked_or_not() -> None:
    for payload in (b"", b"x" * 125, b"x" * 126, b"x" * 70000):
        for mask in (None, b"\x01\x02\x03\x04"):
            f = frame(0x2, payload, mask=mask)
            assert frame_size(f) == len(f)
            assert frame_size(b"zz" + f + b"\x82", 2) == len(f)
            assert all(frame_size(f[:i]) == -1 for i in range(min(len(f) - len(payload), 14)))


# ---------------------------------------------------------------------------- send_prepared


def test_plain_server_queues_the_same_bytes_object() -> None:
    c, s = pair()
    p = prepare("hello")
    assert s.send_prepared(p) is True
    out = s.data_to_send()
    assert out == [p.data] and out[0] is p.data
    c.receive_data(b"".join(out))
    assert messages(c.events()) == [("TextMessage", "hello")]
    big = prepare(b"z" * 100000)  # one object even above the engine's copy limit
    assert s.send_prepared(big) is True
    out = s.data_to_send()
    assert len(out) == 1 and out[0] is big.data


def test_masked_client_encodes_its_own_frame() -> None:
    c, s = pair()
    p = prepare(b"payload")
    assert c.send_prepared(p) is False
    out = b"".join(c.data_to_send())
    assert out != p.data
    assert out[:2] == b"\x82\x87"  # FIN|binary, MASK|7
    s.receive_data(out)
    assert messages(s.events()) == [("BinaryMessage", b"payload")]


def test_deflate_connection_compresses_and_shares_what_it_would_not_compress() -> None:
    c, s = deflate_pair()
    assert s.extensions and s.extensions[0].name == "permessage-deflate"
    long = prepare("compress me " * 50)
    assert s.send_prepared(long) is False
    out = s.data_to_send()
    assert all(chunk is not long.data for chunk in out)
    wire = b"".join(out)
    assert wire[0] == 0xC1  # FIN|RSV1|text: compressed
    assert len(wire) < len(long.data)
    short = prepare("hi")  # below the 32-byte threshold: no transform, the same bytes
    assert s.send_prepared(short) is True
    out2 = s.data_to_send()
    assert out2 == [short.data] and out2[0] is short.data
    forced = prepare(b"x" * 200)
    assert s.send_prepared(forced, compress=False) is True
    assert s.data_to_send()[0] is forced.data
    c.receive_data(wire + short.data + forced.data)
    assert messages(c.events()) == [
        ("TextMessage", "compress me " * 50),
        ("TextMessage", "hi"),
        ("BinaryMessage", b"x" * 200),
    ]


def test_deflate_with_context_takeover_stays_in_sync_across_mixed_sends() -> None:
    c, s = deflate_pair()
    sent = []
    for i in range(20):
        msg = ("tick %d " % i) * (1 if i % 3 else 20)
        if i % 2:
            s.send_text(msg)
        else:
            s.send_prepared(prepare(msg))
        sent.append(("TextMessage", msg))
    c.receive_data(b"".join(s.data_to_send()))
    assert messages(c.events()) == sent


def test_mid_fragment_falls_back_to_a_normal_send() -> None:
    c, s = pair()
    s.send_binary(b"part1", fin=False)
    p = prepare(b"part2")
    assert s.send_prepared(p) is False  # as send_binary would: the last fragment
    out = s.data_to_send()
    assert out[-1] == b"\x80\x05part2" and all(chunk is not p.data for chunk in out)
    s.send_text("after", fin=False)
    with pytest.raises(InvalidState):
        s.send_prepared(prepare(b"other type"))  # as send_binary would, mid-text message
    s.send_prepared(prepare("end"))
    c.receive_data(b"".join(out + s.data_to_send()))
    assert messages(c.events()) == [("BinaryMessage", b"part1part2"), ("TextMessage", "afterend")]


@pytest.mark.parametrize("how", ["close_sent", "close_received", "failed", "connecting"])
def test_not_open_raises_invalid_state(how: str) -> None:
    from wsfast import ServerConnection

    c, s = pair()
    if how == "close_sent":
        s.close(1000)
    elif how == "close_received":
        c.close(1000)
        s.receive_data(b"".join(c.data_to_send()))
        list(s.events())
    elif how == "failed":
        s.fail(1008, "policy")
    else:
        s = ServerConnection()
    s.data_to_send()
    with pytest.raises(InvalidState):
        s.send_prepared(prepare(b"late"))
    assert s.data_to_send() == []
