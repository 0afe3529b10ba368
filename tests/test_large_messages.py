"""Large messages: built in place in their final object (one pass), through ``receive_data``
and through the zero-copy ``get_buffer``/``buffer_updated`` path, on every length boundary,
every chunking, both sides (masked and unmasked), text and binary, fragmented or not, with
the exact close codes of invalid UTF-8 (1007) and of the limits (1009)."""

from __future__ import annotations

import random
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsfast import BinaryMessage, ConnectionFailed, TextMessage
from wsfast.exceptions import InvalidState

from .helpers import MASK, frame, open_client, open_server

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, 200_003]


@cache
def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 7 + seed).randbytes(n)


@cache
def text_payload(n: int) -> bytes:
    """``n`` bytes of valid UTF-8 mixing 1- to 4-byte characters (cut on a boundary)."""
    chars = "aé€😀"
    rng = random.Random(n)
    out = bytearray()
    while len(out) < n:
        c = chars[rng.randrange(4)].encode()
        if len(out) + len(c) > n:
            c = b"z" * (n - len(out))
        out += c
    return bytes(out)


def connection(side: str, **kw):
    """The receiving side: a server parses masked frames, a client unmasked ones."""
    return open_server(**kw) if side == "server" else open_client(**kw)


def mask_for(side: str):
    return MASK if side == "server" else None


def events_by_feed(conn, chunks) -> list:
    evs = []
    for c in chunks:
        conn.receive_data(c)
        evs.extend(conn.events())
    return evs


def events_by_buffer(conn, data: bytes, reads) -> list:
    """Feed ``data`` through get_buffer/buffer_updated; ``reads`` yields read sizes."""
    evs = []
    pos = 0
    while pos < len(data):
        buf = conn.get_buffer(65536)
        assert len(buf) >= 1 and not buf.readonly
        k = min(len(buf), len(data) - pos, next(reads))
        buf[:k] = data[pos : pos + k]
        conn.buffer_updated(k)
        pos += k
        evs.extend(conn.events())
    return evs


def splits(data: bytes, seed: int):
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        j = i + rng.choice([1, 3, 14, 1000, 65536, 70000])
        out.append(data[i:j])
        i = j
    return out


def random_reads(seed: int):
    rng = random.Random(seed)
    while True:
        yield rng.choice([1, 2, 7, 100, 8192, 65536, 1 << 20])


def expected_event(opcode: int, data: bytes):
    return TextMessage(data.decode()) if opcode == 1 else BinaryMessage(data)


# ----------------------------------------------------------------------------- unfragmented


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("opcode", [1, 2])
def test_every_boundary_whole_and_split(side, n, opcode):
    data = text_payload(n) if opcode == 1 else payload(n)
    wire = frame(opcode, data, mask=mask_for(side)) + frame(2, b"after", mask=mask_for(side))
    want = [expected_event(opcode, data), BinaryMessage(b"after")]
    for chunks in ([wire], splits(wire, n), [wire[:2], wire[2:5], wire[5:]]):
        conn = connection(side, max_message_size=None)
        evs = events_by_feed(conn, chunks)
        assert evs == want
        assert type(evs[0].data) is (str if opcode == 1 else bytes)


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("n", [125, 126, 65535, 65536])
def test_byte_by_byte(side, n):
    data = payload(n)
    wire = frame(2, data, mask=mask_for(side))
    conn = connection(side)
    evs = events_by_feed(conn, [wire[i : i + 1] for i in range(len(wire))])
    assert evs == [BinaryMessage(data)]


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("opcode", [1, 2])
def test_buffer_path_matches_receive_data(side, n, opcode):
    data = text_payload(n) if opcode == 1 else payload(n)
    wire = b"".join(frame(opcode, data, mask=mask_for(side)) for _ in range(2))
    ref = events_by_feed(connection(side, max_message_size=None), [wire])
    for seed in range(3):
        got = events_by_buffer(connection(side, max_message_size=None), wire, random_reads(seed))
        assert got == ref == [expected_event(opcode, data)] * 2


@settings(max_examples=40, deadline=None)
@given(
    side=st.sampled_from(["server", "client"]),
    n=st.sampled_from([0, 125, 126, 65535, 65536, 70001]),
    cuts=st.lists(st.integers(min_value=0, max_value=70100), max_size=8),
    use_buffer=st.booleans(),
    fragments=st.integers(min_value=1, max_value=4),
)
def test_random_splits_any_path(side, n, cuts, use_buffer, fragments):
    data = payload(n, 1)
    parts = [data[i * n // fragments : (i + 1) * n // fragments] for i in range(fragments)]
    m = mask_for(side)
    wire = b"".join(
        frame(2 if i == 0 else 0, p, fin=i == fragments - 1, mask=m) for i, p in enumerate(parts)
    ) + frame(9, b"ping", mask=m)
    bounds = sorted({c for c in cuts if 0 < c < len(wire)})
    chunks = [wire[a:b] for a, b in zip([0] + bounds, bounds + [len(wire)], strict=True)]
    conn = connection(side)
    if use_buffer:
        sizes = iter([len(c) for c in chunks] + [1 << 30] * 1000)
        evs = events_by_buffer(conn, wire, sizes)
    else:
        evs = events_by_feed(conn, chunks)
    assert [type(e).__name__ for e in evs] == ["BinaryMessage", "Ping"]
    assert evs[0] == BinaryMessage(data)


# ----------------------------------------------------------------------------- fragmented


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("sizes", [[1, 200_000], [70_000, 70_000, 70_000], [100_000, 0], [0, 0, 5], [65536] * 5])
@pytest.mark.parametrize("opcode", [1, 2])
@pytest.mark.parametrize("use_buffer", [False, True])
def test_fragmented(side, sizes, opcode, use_buffer):
    whole = text_payload(sum(sizes)) if opcode == 1 else payload(sum(sizes))
    parts, pos = [], 0
    for s in sizes:
        parts.append(whole[pos : pos + s])
        pos += s
    if opcode == 1:  # cut on character boundaries: rebuild as ASCII when a cut splits one
        whole = b"x" * len(whole)
        parts = [b"x" * len(p) for p in parts]
    m = mask_for(side)
    wire = b"".join(
        frame(opcode if i == 0 else 0, p, fin=i == len(parts) - 1, mask=m) for i, p in enumerate(parts)
    )
    conn = connection(side, max_message_size=None)
    if use_buffer:
        evs = events_by_buffer(conn, wire, random_reads(len(sizes)))
    else:
        evs = events_by_feed(conn, splits(wire, 3))
    assert evs == [expected_event(opcode, whole)]


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("use_buffer", [False, True])
def test_stream_fragments_each_frame_alone(side, use_buffer):
    parts = [payload(70_000, 2), payload(9, 3), payload(66_000, 4)]
    m = mask_for(side)
    wire = b"".join(frame(2 if i == 0 else 0, p, fin=i == 2, mask=m) for i, p in enumerate(parts))
    conn = connection(side, stream_fragments=True)
    evs = events_by_buffer(conn, wire, random_reads(5)) if use_buffer else events_by_feed(conn, [wire])
    assert evs == [BinaryMessage(parts[0], False), BinaryMessage(parts[1], False), BinaryMessage(parts[2], True)]


# ----------------------------------------------------------------------------- UTF-8 and limits


def failure(evs) -> int:
    fails = [e for e in evs if isinstance(e, ConnectionFailed)]
    assert len(fails) == 1, evs
    return fails[0].code


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("offset", [0, 1, 124, 125, 65535, 65536, 100_000, 149_999])
@pytest.mark.parametrize("use_buffer", [False, True])
def test_invalid_utf8_fails_at_first_impossible_byte(side, offset, use_buffer):
    n = 150_000
    data = bytearray(b"a" * n)
    data[offset] = 0xFF  # never valid in UTF-8
    wire = frame(1, bytes(data), mask=mask_for(side))
    # Only the bytes up to and including the bad one: the failure must not wait for more.
    cut = wire[: len(wire) - n + offset + 1]
    conn = connection(side)
    if use_buffer:
        evs = events_by_buffer(conn, cut, random_reads(offset))
    else:
        evs = events_by_feed(conn, splits(cut, offset))
    assert failure(evs) == 1007
    assert conn.close_code_sent == 1007


@pytest.mark.parametrize("side", ["server", "client"])
def test_text_ending_inside_a_sequence_is_1007(side):
    conn = connection(side)
    evs = events_by_feed(conn, [frame(1, b"a" * 70_000 + "€".encode()[:2], mask=mask_for(side))])
    assert failure(evs) == 1007


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("limit", [125, 65535, 65536])
@pytest.mark.parametrize("use_buffer", [False, True])
def test_limits_on_the_header(side, limit, use_buffer):
    m = mask_for(side)
    ok = frame(2, payload(limit), mask=m)
    conn = connection(side, max_message_size=limit)
    assert events_by_feed(conn, [ok]) == [BinaryMessage(payload(limit))]
    # One byte over: 1009 from the header alone (no payload sent at all).
    head = frame(2, b"", mask=m, length=limit + 1)
    conn = connection(side, max_message_size=limit)
    evs = events_by_buffer(conn, head, random_reads(1)) if use_buffer else events_by_feed(conn, [head])
    assert failure(evs) == 1009
    # Fragmented: the second header takes the message over the limit.
    wire = frame(2, payload(limit), fin=False, mask=m) + frame(0, b"", mask=m, length=1)
    conn = connection(side, max_message_size=limit)
    evs = events_by_buffer(conn, wire, random_reads(2)) if use_buffer else events_by_feed(conn, [wire])
    assert failure(evs) == 1009


# ----------------------------------------------------------------------------- buffer API contract


def test_buffer_during_handshake_and_after_close():
    from wsfast import ClientConnection, Request, ServerConnection

    client = ClientConnection("example.com", "/")
    server = ServerConnection()
    request = b"".join(client.data_to_send())
    evs = events_by_buffer(server, request, iter([5] * 10_000))
    assert isinstance(evs[0], Request)
    server.accept()
    response = b"".join(server.data_to_send())
    assert [type(e).__name__ for e in events_by_buffer(client, response, iter([3] * 10_000))] == ["Accepted"]
    big = payload(100_000)
    client.send_binary(big)
    wire = b"".join(client.data_to_send())
    assert events_by_buffer(server, wire, random_reads(9)) == [BinaryMessage(big)]
    # Closing: everything after the close frame is discarded, whatever path it takes.
    client.close()
    wire = b"".join(client.data_to_send()) + frame(2, payload(70_000))
    evs = events_by_buffer(server, wire, random_reads(4))
    assert [type(e).__name__ for e in evs] == ["CloseReceived"]
    buf = server.get_buffer(100)
    buf[:3] = b"abc"
    server.buffer_updated(3)
    assert list(server.events()) == []


def test_buffer_misuse():
    conn = open_server()
    with pytest.raises(InvalidState):
        conn.buffer_updated(1)
    buf = conn.get_buffer(10)
    assert conn.get_buffer(10) is buf  # asked again: the same buffer
    with pytest.raises(ValueError):
        conn.buffer_updated(len(buf) + 1)
    conn.buffer_updated(0)  # gives it back, parses nothing
    assert list(conn.events()) == []
    with pytest.raises(InvalidState):
        conn.buffer_updated(0)


def test_region_buffer_is_the_message_and_released():
    data = payload(300_000)
    wire = frame(2, data)
    conn = open_server()
    conn.receive_data(wire[:20])
    region = conn.get_buffer(65536)
    # Inside the payload: the rest of the frame (not a 64 KiB read buffer).
    assert len(region) == len(wire) - 20
    region[:1000] = wire[20:1020]
    conn.buffer_updated(1000)
    with pytest.raises(ValueError):
        region[0]  # released: the adapter cannot keep it
    conn.receive_data(wire[1020:])
    assert list(conn.events()) == [BinaryMessage(data)]


def test_backpressure_through_the_buffer_path():
    # Many messages in one read: the budget holds input, events() resumes it.
    m = [payload(40_000, i) for i in range(8)]
    wire = b"".join(frame(2, p) for p in m)
    conn = open_server(max_message_size=65536)
    got = events_by_buffer(conn, wire, iter([len(wire)] * 10))
    assert got == [BinaryMessage(p) for p in m]


def test_region_after_a_bare_header_and_when_the_object_is_full():
    """get_buffer right after a header allocates the message object; inside a later
    fragment whose object is full it grows it and hands out only the frame's rest."""
    data = payload(30_000)
    wire = frame(2, data)
    conn = open_server()
    conn.receive_data(wire[:8])  # 2 + 2 length + 4 mask: the header, no payload
    region = conn.get_buffer(65536)
    assert len(region) == len(data)
    region[:] = wire[8:]
    conn.buffer_updated(len(data))
    assert list(conn.events()) == [BinaryMessage(data)]

    a, b = payload(30_000, 1), payload(20_000, 2)
    conn.receive_data(frame(2, a, fin=False))
    second = frame(0, b, fin=False)
    conn.receive_data(second[:8])  # the first fragment filled the object exactly
    region = conn.get_buffer(65536)
    assert len(region) == len(b)  # grown geometrically, handed out up to the frame's end
    region[:] = second[8:]
    conn.buffer_updated(len(b))
    conn.receive_data(frame(0, b"", fin=True))
    assert list(conn.events()) == [BinaryMessage(a + b)]


def test_stale_region_and_parser_misuse():
    data = payload(40_000)
    wire = frame(2, data)
    conn = open_server()
    conn.receive_data(wire[:8])
    conn.get_buffer(65536)
    conn.receive_data(wire[8:100])  # input in between breaks the contract
    with pytest.raises(ValueError, match="stale"):
        conn.buffer_updated(10)
    with pytest.raises(ValueError, match="without get_buffer"):
        conn._parser.buffer_updated(0)


def test_buffer_during_the_handshake_asked_twice_and_misused():
    from wsfast import ClientConnection, ServerConnection

    server = ServerConnection()
    buf = server.get_buffer(100)
    assert server.get_buffer(100) is buf
    with pytest.raises(ValueError):
        server.buffer_updated(len(buf) + 1)
    server.buffer_updated(0)  # nothing read: nothing happens
    assert list(server.events()) == []
    request = b"".join(ClientConnection("example.com", "/").data_to_send())
    buf = server.get_buffer(len(request))
    buf[: len(request)] = request
    server.buffer_updated(len(request))
    assert [type(e).__name__ for e in server.events()] == ["Request"]


def test_buffer_handed_out_before_a_deferred_eof_parses_nothing():
    m = [payload(40_000, i) for i in range(8)]
    conn = open_server(max_message_size=65536)
    conn.receive_data(b"".join(frame(2, p) for p in m))  # the budget holds most of it
    buf = conn.get_buffer(100)
    conn.receive_eof()  # deferred behind the held input
    with pytest.raises(ValueError):
        conn.buffer_updated(len(buf) + 1)
    buf[:5] = frame(1, b"x")[:5]
    conn.buffer_updated(5)  # after the end of file: discarded
    assert list(conn.events())[: len(m)] == [BinaryMessage(p) for p in m]


def test_region_grows_the_object_past_the_preallocation_bound():
    """A frame larger than PREALLOC_MAX: the object is allocated up to the bound, and
    get_buffer grows it when the bytes so far filled it."""
    from wsfast._speedups import Parser
    import wsfast._parser as pure

    bound = pure.PREALLOC_MAX if Parser is pure.Parser else 1 << 26
    if bound > 1 << 22:
        pytest.skip("the compiled build preallocates 64 MiB ahead: tested on the pure build")
    data = payload(bound + 100_000)
    wire = frame(2, data)
    conn = open_server(max_message_size=4 * bound)
    conn.receive_data(wire[: 14 + bound])  # header + exactly the preallocated bytes
    region = conn.get_buffer(65536)
    assert len(region) == 100_000
    region[:] = wire[14 + bound :]
    conn.buffer_updated(100_000)
    assert list(conn.events()) == [BinaryMessage(data)]


def events_by_payload_buffer(conn, data: bytes, reads) -> list:
    """An adapter with a shared read buffer: ``receive_data`` except where the engine has
    a payload buffer (``get_payload_buffer``), which it reads into instead."""
    evs = []
    pos = 0
    while pos < len(data):
        k = min(len(data) - pos, next(reads))
        region = conn.get_payload_buffer()
        if region is None:
            conn.receive_data(data[pos : pos + k])
        else:
            k = min(k, len(region))
            region[:k] = data[pos : pos + k]
            conn.buffer_updated(k)
        pos += k
        evs.extend(conn.events())
    return evs


@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("n", [0, 8191, 8192, 65537, 300_000])
def test_payload_buffer_path_matches_receive_data(side, n):
    msgs = [payload(n, 1), payload(n // 3 + 10_000, 2)]
    wire = b"".join(frame(2, m, mask=mask_for(side)) for m in msgs)
    wire += frame(1, text_payload(n), mask=mask_for(side))
    expected = [BinaryMessage(m) for m in msgs] + [TextMessage(text_payload(n).decode())]
    for seed in range(3):
        assert events_by_payload_buffer(connection(side), wire, random_reads(seed)) == expected


def test_payload_buffer_only_inside_a_large_uncompressed_payload():
    from wsfast import ClientConnection, ServerConnection

    server = ServerConnection()
    client = ClientConnection("example.com", "/")
    assert server.get_payload_buffer() is None  # handshake
    server.receive_data(b"".join(client.data_to_send()))
    list(server.events())
    server.accept()
    server.data_to_send()
    assert server.get_payload_buffer() is None  # between frames
    data = payload(20_000)
    wire = frame(2, data)
    server.receive_data(wire[:8])  # the header only
    region = server.get_payload_buffer()
    assert region is not None and len(region) == len(data)
    assert server.get_payload_buffer() is region  # asked again before buffer_updated
    region[: len(data) - 8000] = wire[8 : len(wire) - 8000]
    server.buffer_updated(len(data) - 8000)
    assert server.get_payload_buffer() is None  # 8000 bytes to come: below REGION_MIN
    server.receive_data(wire[len(wire) - 8000 :])
    assert list(server.events()) == [BinaryMessage(data)]
    # A get_buffer() read buffer outstanding is not a payload buffer.
    server.get_buffer(100)
    assert server.get_payload_buffer() is None
    server.buffer_updated(0)
    # After the end of file: none.
    server.receive_eof()
    assert server.get_payload_buffer() is None


def test_no_payload_buffer_for_a_compressed_message():
    from wsfast import ClientConnection, ServerConnection
    from wsfast.permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate

    client = ClientConnection("example.com", "/", extensions=[ClientPerMessageDeflate()])
    server = ServerConnection(extensions=[ServerPerMessageDeflate()])
    server.receive_data(b"".join(client.data_to_send()))
    list(server.events())
    server.accept()
    client.receive_data(b"".join(server.data_to_send()))
    list(client.events())
    client.send_binary(payload(200_000))  # random bytes: the deflated frame is as large
    wire = b"".join(client.data_to_send())
    server.receive_data(wire[:14])
    assert server.get_payload_buffer() is None
    server.receive_data(wire[14:])
    assert list(server.events()) == [BinaryMessage(payload(200_000))]


@pytest.mark.parametrize("side", ["server", "client"])
def test_frame_beyond_the_preallocation_bound_fed_as_bytes(side):
    """A frame longer than what the header preallocates (1 MiB on the pure build) grows its
    message object as receive_data brings the rest."""
    data = payload((1 << 20) + 300_000, 7)
    wire = frame(2, data, mask=mask_for(side))
    conn = connection(side, max_message_size=None)
    assert events_by_feed(conn, [wire[i : i + 65536] for i in range(0, len(wire), 65536)]) == [BinaryMessage(data)]
