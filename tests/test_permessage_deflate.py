"""permessage-deflate (RFC 7692): exact bytes from the RFC, round trips, bombs, negotiation.

Every test runs once per available kernel build and deflate backend (compiled
``wsfast._inflate`` on zlib, its pure-Python twin ``wsfast._inflate_py``, the compiled
``wsfast._inflate_ng`` on zlib-ng, and the twin on the `zlib-ng` package), with the
``Inflater`` and ``Deflater`` of that build, so the suite does not depend on which one
``wsfast._speedups`` selected.
"""

from __future__ import annotations

import importlib
import os
import random
import time
import tracemalloc
import zlib
from types import SimpleNamespace

import pytest

from wsfast import permessage_deflate as pmd
from wsfast.exceptions import NegotiationError, PayloadTooBig, ProtocolError

TAIL = b"\x00\x00\xff\xff"


def _zlib_ng_module():
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return None
    return zlib_ng


def _builds():
    """(label, build): build.Inflater, build.Deflater, build.zlib (the library's Python API
    for reference outputs, None if not installed)."""
    builds = []
    zng = _zlib_ng_module()
    for label, module, ref in (
        ("compiled", "wsfast._inflate", zlib),
        ("python", "wsfast._inflate_py", zlib),
        ("compiled-ng", "wsfast._inflate_ng", zng),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        builds.append((label, SimpleNamespace(Inflater=mod.Inflater, Deflater=mod.Deflater, zlib=ref)))
    if zng is not None:
        from wsfast._inflate_py import zlib_ng_classes

        inflater, deflater, _ = zlib_ng_classes()
        builds.append(("python-ng", SimpleNamespace(Inflater=inflater, Deflater=deflater, zlib=zng)))
    assert builds, "no Inflater build importable"
    return builds


BUILDS = _builds()
ClientPerMessageDeflate = pmd.ClientPerMessageDeflate
ServerPerMessageDeflate = pmd.ServerPerMessageDeflate
PerMessageDeflate = pmd.PerMessageDeflate


@pytest.fixture(autouse=True, params=[b[1] for b in BUILDS], ids=[b[0] for b in BUILDS])
def deflate_build(request, monkeypatch):
    monkeypatch.setattr(pmd, "Inflater", request.param.Inflater)
    monkeypatch.setattr(pmd, "Deflater", request.param.Deflater)
    return request.param


@pytest.fixture
def inflater_build(deflate_build):
    return deflate_build.Inflater


# -- helpers ---------------------------------------------------------------------------------


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def decode_message(ext, rsv, frames, max_size=1 << 30, split=None):
    """Feed one message through the receive hooks like the engine does; return the payload."""
    if not ext.decode_start(rsv):
        return b"".join(frames)
    out = []
    room = max_size
    for frame in frames:
        chunks = [frame] if split is None else split(frame)
        for chunk in chunks:
            piece = ext.decode(chunk, room)
            room -= len(piece)
            out.append(piece)
    out.append(ext.decode_end(room))
    return b"".join(out)


def encode_message(ext, payload, nframes=1, compress=None):
    """Encode ``payload`` as ``nframes`` frames; return (rsv of first frame, frame payloads)."""
    cuts = []
    if nframes > 1 and len(payload) > nframes:
        cuts = sorted(random.sample(range(1, len(payload)), nframes - 1))
    parts = [payload[a:b] for a, b in zip([0] + cuts, cuts + [len(payload)])]
    while len(parts) < nframes:
        parts.append(b"")
    rsvs, frames = [], []
    for i, part in enumerate(parts):
        rsv, data = ext.encode(part, i == 0, i == len(parts) - 1, compress)
        rsvs.append(rsv)
        frames.append(bytes(data))
    assert all(r == 0 for r in rsvs[1:]), "RSV1 only on the first frame"
    return rsvs[0], frames


def random_splitter(rng):
    def split(data):
        if len(data) < 2:
            return [data]
        cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1)))
        return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]

    return split


def connect(client=None, server=None):
    """Negotiate a pair; return (client extension, server extension, response params)."""
    cf = ClientPerMessageDeflate(**(client or {}))
    sf = ServerPerMessageDeflate(**(server or {}))
    result = sf.negotiate([cf.offer()])
    assert result is not None
    response, server_ext = result
    return cf.accept(response), server_ext, response


def json_message(rng, i):
    return (
        '{"type":"trade","symbol":"%s","price":%.2f,"qty":%.6f,"id":%d,"side":"%s"}'
        % (rng.choice(["BTCUSD", "ETHUSD"]), rng.uniform(1, 5e4), rng.random(), i,
           rng.choice(["buy", "sell"]))
    ).encode()


# -- RFC 7692 §7.2.3 examples, exact bytes ---------------------------------------------------


def test_rfc_7_2_3_1_one_compressed_block_decode():
    ext = PerMessageDeflate()
    assert decode_message(ext, 0x40, [h("f2 48 cd c9 c9 07 00")]) == b"Hello"


def test_rfc_7_2_3_1_one_compressed_block_encode():
    ext = PerMessageDeflate()
    assert ext.encode(b"Hello", True, True, True) == (0x40, h("f2 48 cd c9 c9 07 00"))


def test_rfc_7_2_3_1_fragmented_decode():
    # The same compressed data split over two frames (the RFC's fragmented variant).
    ext = PerMessageDeflate()
    assert decode_message(ext, 0x40, [h("f2 48 cd"), h("c9 c9 07 00")]) == b"Hello"


def test_rfc_7_2_3_2_sharing_lz77_window_encode():
    ext = PerMessageDeflate()
    assert ext.encode(b"Hello", True, True, True)[1] == h("f2 48 cd c9 c9 07 00")
    assert ext.encode(b"Hello", True, True, True)[1] == h("f2 00 11 00 00")


def test_rfc_7_2_3_2_sharing_lz77_window_decode():
    ext = PerMessageDeflate()
    assert decode_message(ext, 0x40, [h("f2 48 cd c9 c9 07 00")]) == b"Hello"
    assert decode_message(ext, 0x40, [h("f2 00 11 00 00")]) == b"Hello"


def test_rfc_7_2_3_2_no_context_takeover_repeats_bytes():
    ext = PerMessageDeflate(local_no_context_takeover=True)
    for _ in range(3):
        assert ext.encode(b"Hello", True, True, True) == (0x40, h("f2 48 cd c9 c9 07 00"))


def test_second_message_needs_the_window():
    # With remote no context takeover the window is dropped: the back-reference is invalid.
    ext = PerMessageDeflate(remote_no_context_takeover=True)
    assert decode_message(ext, 0x40, [h("f2 48 cd c9 c9 07 00")]) == b"Hello"
    with pytest.raises(ProtocolError):
        decode_message(ext, 0x40, [h("f2 00 11 00 00")])


def test_rfc_7_2_3_3_stored_block():
    ext = PerMessageDeflate()
    assert decode_message(ext, 0x40, [h("00 05 00 fa ff 48 65 6c 6c 6f 00")]) == b"Hello"


def test_rfc_7_2_3_4_bfinal_block():
    # "f3 48 cd c9 c9 07 00" is a BFINAL=1 block with "Hello"; the last 00 holds the header
    # bits of a BFINAL=0 stored block that, with the appended 00 00 ff ff, is empty: the RFC
    # says this octet lets the payload be decompressed like any other message.
    ext = PerMessageDeflate()
    assert decode_message(ext, 0x40, [h("f3 48 cd c9 c9 07 00 00")]) == b"Hello"
    # and the connection goes on: the next message decodes too
    assert decode_message(ext, 0x40, [h("f2 48 cd c9 c9 07 00")]) == b"Hello"


def test_rfc_7_2_3_5_two_blocks():
    ext = PerMessageDeflate()
    assert decode_message(ext, 0x40, [h("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")]) == b"Hello"


def test_rfc_7_2_3_6_empty_fragment():
    ext = PerMessageDeflate()
    # "He" sync-flushed in a first frame, then "llo", then a final frame with nothing new: 00.
    frames = [h("f2 48 05 00 00 00 ff ff"), h("ca c9 c9 07 00 00 00 ff ff"), h("00")]
    assert decode_message(ext, 0x40, frames) == b"Hello"


def test_empty_message_is_single_zero_byte():
    ext = PerMessageDeflate()
    assert ext.encode(b"", True, True, True) == (0x40, b"\x00")
    assert decode_message(ext, 0x40, [b"\x00"]) == b""
    # And after other traffic (context takeover), still 00.
    ext.encode(b"Hello", True, True, True)
    assert ext.encode(b"", True, True, True) == (0x40, b"\x00")


def test_final_empty_frame_of_fragmented_message():
    tx, rx = PerMessageDeflate(), PerMessageDeflate()
    r1, d1 = tx.encode(b"Hello", True, False, True)
    r2, d2 = tx.encode(b"", False, True, None)
    assert (r1, r2) == (0x40, 0)
    assert d1.endswith(TAIL), "non-final frames keep the sync-flush tail"
    assert d2 == b"\x00"
    assert decode_message(rx, 0x40, [d1, d2]) == b"Hello"


def test_tail_removed_only_on_final_frame():
    ext = PerMessageDeflate()
    _, a = ext.encode(b"abc" * 20, True, False, True)
    _, b = ext.encode(b"def" * 20, False, False, None)
    _, c = ext.encode(b"ghi" * 20, False, True, None)
    assert a.endswith(TAIL) and b.endswith(TAIL) and not c.endswith(TAIL)
    d = zlib.decompressobj(-15)
    assert d.decompress(a + b + c + TAIL) == b"abc" * 20 + b"def" * 20 + b"ghi" * 20


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("server_nct", [False, True])
@pytest.mark.parametrize("client_nct", [False, True])
@pytest.mark.parametrize("bits", [None, 8, 9, 12])
def test_round_trip_many_messages(server_nct, client_nct, bits):
    rng = random.Random(f"{server_nct}{client_nct}{bits}")
    client, server, _ = connect(
        {"server_no_context_takeover": server_nct, "client_no_context_takeover": client_nct,
         "server_max_window_bits": bits, "threshold": 0},
        {"client_max_window_bits": bits},
    )
    assert client.local_no_context_takeover == server.remote_no_context_takeover == client_nct
    assert server.local_no_context_takeover == client.remote_no_context_takeover == server_nct
    split = random_splitter(rng)
    sizes = {"c2s": [0, 0], "s2c": [0, 0]}
    for i in range(60):
        for direction, tx, rx in (("c2s", client, server), ("s2c", server, client)):
            if i % 10 == 9:
                payload = rng.randbytes(rng.randrange(0, 3000))
            else:
                payload = b"".join(json_message(rng, i * 7 + k) for k in range(rng.randrange(1, 40)))
            nframes = rng.choice([1, 1, 2, 5])
            rsv, frames = encode_message(tx, payload, nframes)
            assert decode_message(rx, rsv, frames, split=split) == payload
            sizes[direction][0] += len(payload)
            sizes[direction][1] += sum(map(len, frames))
    for raw, wire in sizes.values():
        assert wire < raw * 0.6


def test_context_takeover_compresses_better_than_without():
    rng = random.Random(5)
    messages = [json_message(rng, i) for i in range(200)]
    totals = {}
    for nct in (False, True):
        ext = PerMessageDeflate(local_no_context_takeover=nct, threshold=0)
        totals[nct] = sum(len(ext.encode(m, True, True, None)[1]) for m in messages)
    assert totals[False] < totals[True] * 0.6


def test_interleaved_uncompressed_messages_keep_stream_in_sync():
    tx, rx = PerMessageDeflate(threshold=50), PerMessageDeflate()
    rng = random.Random(1)
    for i in range(100):
        payload = json_message(rng, i)[: rng.choice([10, 40, 120])]
        nframes = rng.choice([1, 3])
        rsv, frames = encode_message(tx, payload, nframes)
        if nframes == 1:  # fragmented: the first frame's size decides
            assert (rsv == 0x40) == (len(payload) >= 50)
        if rsv == 0:
            assert b"".join(frames) == payload, "uncompressed payload passes through untouched"
        assert decode_message(rx, rsv, frames) == payload


def test_uncompressed_message_passes_through():
    ext = PerMessageDeflate()
    assert ext.decode_start(0x00) is False
    assert ext.decode_start(0x20 | 0x10) is False
    payload = bytearray(b"x" * 100)
    rsv, data = ext.encode(payload, True, True, False)
    assert rsv == 0 and data is payload


def test_many_messages_with_takeover_and_various_sizes():
    tx, rx = PerMessageDeflate(threshold=0), PerMessageDeflate()
    rng = random.Random(9)
    corpus = b"".join(json_message(rng, i) for i in range(3000))
    for size in (0, 1, 2, 100, 1000, 32767, 32768, 40000, 100000):
        start = rng.randrange(0, len(corpus) - size) if size < len(corpus) else 0
        payload = corpus[start : start + size]
        rsv, frames = encode_message(tx, payload, 1 if size < 3 else 3)
        assert decode_message(rx, rsv, frames, split=random_splitter(rng)) == payload


def test_decode_fed_one_byte_at_a_time():
    tx, rx = PerMessageDeflate(threshold=0), PerMessageDeflate()
    rng = random.Random(3)
    for i in range(20):
        payload = b"".join(json_message(rng, i * 10 + k) for k in range(5))
        rsv, frames = encode_message(tx, payload, 2)
        byte_split = lambda d: [d[j : j + 1] for j in range(len(d))]  # noqa: E731
        assert decode_message(rx, rsv, frames, split=byte_split) == payload


# -- limits, bombs, corruption ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gib_bomb():
    """~1 MiB of raw deflate that inflates to 1 GiB of zeros (deflate's ratio caps at ~1032:1)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    c.compress(b"\0" * (1 << 20))
    c.flush(zlib.Z_FULL_FLUSH)
    piece = c.compress(b"\0" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor starts over, so every MiB compresses to the same bytes.
    assert piece == c.compress(b"\0" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return piece * 1024


def test_bomb_refused_quickly_without_big_allocations(gib_bomb):
    assert len(gib_bomb) < 1100 * 1024
    ext = PerMessageDeflate()
    assert ext.decode_start(0x40)
    limit = 1 << 20
    view = memoryview(gib_bomb)
    tracemalloc.start()
    try:
        start = time.perf_counter()
        room = limit
        with pytest.raises(PayloadTooBig):
            for offset in range(0, len(view), 4096):
                room -= len(ext.decode(view[offset : offset + 4096], room))
            ext.decode_end(room)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 4 * limit


def test_bomb_single_chunk(gib_bomb):
    ext = PerMessageDeflate()
    ext.decode_start(0x40)
    with pytest.raises(PayloadTooBig):
        ext.decode(gib_bomb[:8192], 1 << 20)


def test_limit_is_exact():
    payload = bytes(range(256)) * 40
    tx = PerMessageDeflate(local_no_context_takeover=True)
    rsv, frames = encode_message(tx, payload, 1, compress=True)
    assert decode_message(PerMessageDeflate(), rsv, frames, max_size=len(payload)) == payload
    with pytest.raises(PayloadTooBig):
        decode_message(PerMessageDeflate(), rsv, frames, max_size=len(payload) - 1)


def test_limit_spans_decode_and_decode_end():
    # Whatever part of the output the kernel holds back until the tail, decode + decode_end
    # together respect the room left, and a message that fits exactly ends cleanly.
    _, data = PerMessageDeflate().encode(b"a" * 1000, True, True, True)
    for room in (1000, 999, 500, 1):
        ext = PerMessageDeflate()
        ext.decode_start(0x40)
        try:
            got = ext.decode(data, room)
            got += ext.decode_end(room - len(got))
        except PayloadTooBig:
            assert room < 1000
        else:
            assert room == 1000 and got == b"a" * 1000


@pytest.mark.parametrize(
    "data",
    [
        h("ff ff ff ff"),  # BTYPE 11 is reserved
        h("00 05 00 00 00 48 65 6c 6c 6f"),  # stored block with LEN != ~NLEN
        h("f2 00 11 00 00"),  # back-reference with an empty window
        h("04 c0 81 08 00 00 00 00 20 7f eb 0b 00 00"),  # bad dynamic Huffman tables
    ],
)
def test_corrupt_data_is_protocol_error(data):
    ext = PerMessageDeflate()
    with pytest.raises(ProtocolError) as info:
        decode_message(ext, 0x40, [data])
    assert not isinstance(info.value, PayloadTooBig)
    assert info.value.code == 1002


# -- sending policy --------------------------------------------------------------------------


def test_threshold_default_and_policy():
    ext = PerMessageDeflate()
    assert ext.threshold == 32
    assert ext.encode(b"x" * 31, True, True, None) == (0, b"x" * 31)
    rsv, data = ext.encode(b"x" * 32, True, True, None)
    assert rsv == 0x40 and len(data) < 32


def test_threshold_zero_and_forcing():
    ext = PerMessageDeflate(threshold=0)
    assert ext.encode(b"", True, True, None) == (0x40, b"\x00")
    assert ext.encode(b"y" * 1000, True, True, False) == (0, b"y" * 1000)
    big = PerMessageDeflate(threshold=10_000)
    assert big.encode(b"Hello", True, True, True) == (0x40, h("f2 48 cd c9 c9 07 00"))


def test_first_frame_decision_holds_for_message():
    ext = PerMessageDeflate(threshold=100)
    # Small first frame: uncompressed message, even though later frames are big.
    assert ext.encode(b"a" * 10, True, False, None) == (0, b"a" * 10)
    assert ext.encode(b"b" * 500, False, False, True) == (0, b"b" * 500)
    assert ext.encode(b"c" * 500, False, True, None) == (0, b"c" * 500)
    # Forced on the first frame: the whole message is one stream.
    rx = PerMessageDeflate()
    rsv, frames = encode_message(ext, b"d" * 10 + b"e" * 500, 3, compress=True)
    assert rsv == 0x40
    assert decode_message(rx, rsv, frames) == b"d" * 10 + b"e" * 500


def test_incompressible_message_sent_raw_without_context_takeover():
    rng = random.Random(4)
    noise = rng.randbytes(500)
    ext = PerMessageDeflate(local_no_context_takeover=True)
    assert ext.encode(noise, True, True, None) == (0, noise)
    # Forced compression still compresses.
    assert ext.encode(noise, True, True, True)[0] == 0x40
    # With context takeover the compressor already absorbed it: it is sent compressed.
    ext = PerMessageDeflate()
    rsv, data = ext.encode(noise, True, True, None)
    assert rsv == 0x40
    assert decode_message(PerMessageDeflate(), rsv, [data]) == noise


@pytest.mark.parametrize("level", [0, 1, 9])
@pytest.mark.parametrize("mem_level", [1, 5, 9])
def test_compress_level_and_mem_level_honoured(level, mem_level, deflate_build):
    rng = random.Random(level * 10 + mem_level)
    messages = [b"".join(json_message(rng, i * 50 + k) for k in range(50)) for i in range(4)]
    ext = PerMessageDeflate(compress_level=level, mem_level=mem_level, local_max_window_bits=12)
    z = deflate_build.zlib  # the same library's own API makes the reference bytes
    if z is None:
        pytest.skip("the zlib-ng package is not installed: no reference compressor")
    ref = z.compressobj(level, z.DEFLATED, -12, mem_level)
    for m in messages:
        expected = ref.compress(m) + ref.flush(z.Z_SYNC_FLUSH)
        assert ext.encode(m, True, True, True) == (0x40, expected[:-4])
    if level == 0:
        assert messages[-1] in expected  # stored blocks


def test_default_settings():
    ext = PerMessageDeflate()
    assert (ext.compress_level, ext.mem_level, ext.threshold) == (6, 5, 32)
    c, s, _ = connect()
    for e in (c, s):
        assert (e.compress_level, e.mem_level, e.threshold) == (6, 5, 32)
        assert (e.local_max_window_bits, e.remote_max_window_bits) == (15, 15)


def test_no_state_kept_between_messages_without_context_takeover():
    tx = PerMessageDeflate(local_no_context_takeover=True, remote_no_context_takeover=True)
    rsv, frames = encode_message(tx, b"z" * 1000, 3, compress=True)
    assert tx._deflater is None
    assert decode_message(tx, rsv, frames) == b"z" * 1000
    assert tx._inflater is None
    # With context takeover both are kept.
    ext = PerMessageDeflate()
    rsv, frames = encode_message(ext, b"z" * 1000, 1, compress=True)
    decode_message(ext, rsv, frames)
    assert ext._deflater is not None and ext._inflater is not None


def test_small_window_for_small_messages_is_valid():
    # Without context takeover a small message gets a small window; the stream stays within
    # any window the peer expects, including one of 256 bytes.
    ext = PerMessageDeflate(local_no_context_takeover=True, threshold=0)
    rng = random.Random(2)
    for size in (10, 200, 250, 251, 600, 5000):
        payload = rng.choice([b"abcab", b"hello world "]) * (size // 5)
        _, data = ext.encode(payload, True, True, True)
        assert zlib.decompressobj(-15).decompress(data + TAIL) == payload


# -- window bits 8 ---------------------------------------------------------------------------


def _byte_by_byte_256_window(streams):
    """Inflate with a real 256-byte window, one byte per call, so that back-references can
    only be resolved from the window (not from the current output buffer)."""
    d = zlib.decompressobj(-8)
    out = []
    for data in streams:
        out.append(b"".join(d.decompress(data[i : i + 1]) for i in range(len(data))))
    return out


def test_window_bits_8_stream_is_valid_for_256_byte_window():
    rng = random.Random(8)
    words = [bytes(rng.choice(b"abcdefghij") for _ in range(5)) for _ in range(40)]
    messages = [b" ".join(rng.choice(words) for _ in range(100)) for _ in range(25)]
    ext = PerMessageDeflate(local_max_window_bits=8, threshold=0)
    streams = [ext.encode(m, True, True, None)[1] + TAIL for m in messages]
    assert sum(map(len, streams)) < 0.6 * sum(map(len, messages)), "really compressed"
    assert _byte_by_byte_256_window(streams) == messages


def test_256_byte_window_check_detects_larger_windows():
    # The check above is meaningful: a 1 KiB-window stream of the same data breaks it.
    rng = random.Random(8)
    words = [bytes(rng.choice(b"abcdefghij") for _ in range(5)) for _ in range(40)]
    messages = [b" ".join(rng.choice(words) for _ in range(100)) for _ in range(25)]
    c = zlib.compressobj(6, zlib.DEFLATED, -10, 5)
    streams = [c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH) for m in messages]
    with pytest.raises(zlib.error):
        _byte_by_byte_256_window(streams)


def test_window_bits_8_both_directions_negotiated():
    client, server, response = connect(
        {"server_max_window_bits": 8, "client_max_window_bits": 8}, {}
    )
    assert ("server_max_window_bits", "8") in response
    assert ("client_max_window_bits", "8") in response
    assert client.local_max_window_bits == server.remote_max_window_bits == 8
    assert server.local_max_window_bits == client.remote_max_window_bits == 8
    rng = random.Random(0)
    for i in range(30):
        payload = b"".join(json_message(rng, i * 5 + k) for k in range(5))
        for tx, rx in ((client, server), (server, client)):
            rsv, frames = encode_message(tx, payload, 2)
            assert decode_message(rx, rsv, frames) == payload


def test_window_bits_8_server_configured():
    client, server, response = connect({}, {"server_max_window_bits": 8, "client_max_window_bits": 8})
    assert response == [("server_max_window_bits", "8"), ("client_max_window_bits", "8")]
    assert client.remote_max_window_bits == 8 and client.local_max_window_bits == 8


def test_receive_window_8_stream():
    # A sender with a true 256-byte window: what we receive must inflate.
    data = b"0123456789abcdef" * 64
    ext = PerMessageDeflate(remote_max_window_bits=8)
    c = zlib.compressobj(6, zlib.DEFLATED, -9)  # distances <= 250: a valid 8-bit stream
    stream = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert decode_message(ext, 0x40, [stream[:-4]]) == data


# -- negotiation: server ---------------------------------------------------------------------


def negotiate(offers, **config):
    return ServerPerMessageDeflate(**config).negotiate(offers)


def test_server_accepts_empty_offer():
    response, ext = negotiate([[]])
    assert response == []
    assert isinstance(ext, PerMessageDeflate)
    assert ext.rsv == 0x40 and ext.name == "permessage-deflate"
    assert not ext.local_no_context_takeover and not ext.remote_no_context_takeover
    assert ext.local_max_window_bits == ext.remote_max_window_bits == 15


def test_server_accepts_full_offer():
    offer = [
        ("server_no_context_takeover", None),
        ("client_no_context_takeover", None),
        ("server_max_window_bits", "10"),
        ("client_max_window_bits", None),
    ]
    response, ext = negotiate([offer])
    assert response == [
        ("server_no_context_takeover", None),
        ("client_no_context_takeover", None),
        ("server_max_window_bits", "10"),
    ]
    assert ext.local_no_context_takeover and ext.remote_no_context_takeover
    assert ext.local_max_window_bits == 10 and ext.remote_max_window_bits == 15


def test_server_first_acceptable_offer_wins():
    offers = [
        [("server_max_window_bits", "10"), ("bogus", None)],
        [("client_max_window_bits", "12")],
        [],
    ]
    response, ext = negotiate(offers)
    assert response == [("client_max_window_bits", "12")]
    assert ext.remote_max_window_bits == 12


@pytest.mark.parametrize(
    "offer",
    [
        [("unknown_param", None)],
        [("x-custom", "1")],
        [("server_no_context_takeover", None), ("server_no_context_takeover", None)],
        [("client_no_context_takeover", None), ("client_no_context_takeover", None)],
        [("server_max_window_bits", "10"), ("server_max_window_bits", "10")],
        [("client_max_window_bits", None), ("client_max_window_bits", "10")],
        [("server_no_context_takeover", "")],
        [("server_no_context_takeover", "true")],
        [("client_no_context_takeover", "1")],
        [("server_max_window_bits", None)],
        [("server_max_window_bits", "7")],
        [("server_max_window_bits", "16")],
        [("server_max_window_bits", "010")],
        [("server_max_window_bits", "09")],
        [("server_max_window_bits", "+9")],
        [("server_max_window_bits", " 9")],
        [("server_max_window_bits", "9.0")],
        [("server_max_window_bits", "")],
        [("server_max_window_bits", "nine")],
        [("client_max_window_bits", "0")],
        [("client_max_window_bits", "16")],
        [("client_max_window_bits", "012")],
        [("client_max_window_bits", "-9")],
        [("client_max_window_bits", "\u0669")],  # Arabic-Indic digit nine
    ],
)
def test_server_declines_invalid_offer(offer):
    assert negotiate([offer]) is None
    # ... and falls back to the next, valid one.
    response, ext = negotiate([offer, [("client_max_window_bits", None)]])
    assert response == []


def test_server_declines_all_invalid():
    assert negotiate([[("a", None)], [("server_max_window_bits", "99")]]) is None
    assert negotiate([]) is None


def test_server_imposes_no_context_takeover():
    response, ext = negotiate([[]], server_no_context_takeover=True, client_no_context_takeover=True)
    assert response == [("server_no_context_takeover", None), ("client_no_context_takeover", None)]
    assert ext.local_no_context_takeover and ext.remote_no_context_takeover


def test_server_honours_client_no_context_takeover_offer():
    response, ext = negotiate([[("client_no_context_takeover", None)]])
    assert response == [("client_no_context_takeover", None)]
    assert ext.remote_no_context_takeover and not ext.local_no_context_takeover


@pytest.mark.parametrize(
    "offered, limit, expected",
    [
        (None, None, None),
        (None, 11, "11"),  # announced though not asked (§7.1.2.1 allows it)
        ("10", None, "10"),
        ("10", 12, "10"),
        ("13", 12, "12"),
        ("8", None, "8"),
        ("15", 8, "8"),
    ],
)
def test_server_max_window_bits(offered, limit, expected):
    offer = [] if offered is None else [("server_max_window_bits", offered)]
    response, ext = negotiate([offer], server_max_window_bits=limit)
    assert response == ([] if expected is None else [("server_max_window_bits", expected)])
    assert ext.local_max_window_bits == (15 if expected is None else int(expected))


@pytest.mark.parametrize(
    "offered, limit, expected_param, expected_bits",
    [
        ("absent", None, None, 15),
        ("absent", 10, None, 15),  # can't ask a client that didn't offer the parameter
        (None, None, None, 15),
        (None, 10, "10", 10),
        ("12", None, "12", 12),  # the hint binds the client: echoed, inflater sized to it
        ("12", 10, "10", 10),
        ("9", 10, "9", 9),
        ("8", None, "8", 8),
    ],
)
def test_server_client_max_window_bits(offered, limit, expected_param, expected_bits):
    offer = [] if offered == "absent" else [("client_max_window_bits", offered)]
    response, ext = negotiate([offer], client_max_window_bits=limit)
    assert response == ([] if expected_param is None else [("client_max_window_bits", expected_param)])
    assert ext.remote_max_window_bits == expected_bits


def test_server_require_client_max_window_bits():
    offers = [[("server_no_context_takeover", None)], [("client_max_window_bits", None)]]
    response, ext = negotiate(offers, client_max_window_bits=10, require_client_max_window_bits=True)
    assert response == [("client_max_window_bits", "10")]
    assert negotiate(offers[:1], client_max_window_bits=10, require_client_max_window_bits=True) is None


def test_server_factory_is_reusable():
    factory = ServerPerMessageDeflate(server_max_window_bits=12)
    _, a = factory.negotiate([[]])
    _, b = factory.negotiate([[("server_max_window_bits", "9")]])
    assert a is not b
    assert (a.local_max_window_bits, b.local_max_window_bits) == (12, 9)


# -- negotiation: client ---------------------------------------------------------------------


def test_client_default_offer():
    assert ClientPerMessageDeflate().offer() == [("client_max_window_bits", None)]


def test_client_full_offer():
    factory = ClientPerMessageDeflate(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=11,
    )
    assert factory.offer() == [
        ("server_no_context_takeover", None),
        ("client_no_context_takeover", None),
        ("server_max_window_bits", "10"),
        ("client_max_window_bits", "11"),
    ]
    assert ClientPerMessageDeflate(client_max_window_bits=None).offer() == []
    assert ClientPerMessageDeflate(client_max_window_bits=False).offer() == []


def test_client_accepts_plain_response():
    ext = ClientPerMessageDeflate().accept([])
    assert not ext.local_no_context_takeover and not ext.remote_no_context_takeover
    assert ext.local_max_window_bits == ext.remote_max_window_bits == 15


def test_client_accepts_parameters_server_may_add():
    ext = ClientPerMessageDeflate(client_max_window_bits=None).accept(
        [
            ("server_no_context_takeover", None),
            ("client_no_context_takeover", None),
            ("server_max_window_bits", "9"),
        ]
    )
    assert ext.remote_no_context_takeover and ext.local_no_context_takeover
    assert ext.remote_max_window_bits == 9 and ext.local_max_window_bits == 15


def test_client_no_context_takeover_is_ours_to_keep():
    ext = ClientPerMessageDeflate(client_no_context_takeover=True).accept([])
    assert ext.local_no_context_takeover


@pytest.mark.parametrize(
    "hint, response, bits",
    [
        (True, [], 15),
        (True, [("client_max_window_bits", "10")], 10),
        (True, [("client_max_window_bits", "8")], 8),
        (12, [], 12),
        (12, [("client_max_window_bits", "9")], 9),
        (12, [("client_max_window_bits", "14")], 12),  # §7.1.2.2: our hint still caps us
    ],
)
def test_client_max_window_bits_response(hint, response, bits):
    ext = ClientPerMessageDeflate(client_max_window_bits=hint).accept(response)
    assert ext.local_max_window_bits == bits


@pytest.mark.parametrize(
    "config, response",
    [
        ({}, [("unknown", None)]),
        ({}, [("server_no_context_takeover", None), ("server_no_context_takeover", None)]),
        ({}, [("client_no_context_takeover", None), ("client_no_context_takeover", None)]),
        ({}, [("server_max_window_bits", "9"), ("server_max_window_bits", "9")]),
        ({}, [("client_max_window_bits", "9"), ("client_max_window_bits", "9")]),
        ({}, [("server_no_context_takeover", "1")]),
        ({}, [("client_no_context_takeover", "")]),
        ({}, [("server_max_window_bits", None)]),
        ({}, [("server_max_window_bits", "16")]),
        ({}, [("server_max_window_bits", "07")]),
        ({}, [("client_max_window_bits", None)]),  # needs a value in a response
        ({}, [("client_max_window_bits", "7")]),
        ({"client_max_window_bits": None}, [("client_max_window_bits", "10")]),  # not offered
        ({"server_no_context_takeover": True}, []),  # §7.1.1.1: must be echoed
        ({"server_no_context_takeover": True}, [("client_no_context_takeover", None)]),
        ({"server_max_window_bits": 10}, []),  # §7.1.2.1: must be echoed
        ({"server_max_window_bits": 10}, [("server_max_window_bits", "11")]),  # larger
        ({"server_max_window_bits": 8}, [("server_max_window_bits", "9")]),
    ],
)
def test_client_rejects_bad_response(config, response):
    with pytest.raises(NegotiationError):
        ClientPerMessageDeflate(**config).accept(response)


def test_client_accepts_echoed_or_smaller_server_window():
    factory = ClientPerMessageDeflate(server_max_window_bits=10, server_no_context_takeover=True)
    for value in ("10", "9", "8"):
        ext = factory.accept([("server_no_context_takeover", None), ("server_max_window_bits", value)])
        assert ext.remote_max_window_bits == int(value) and ext.remote_no_context_takeover


def test_client_settings_reach_extension():
    ext = ClientPerMessageDeflate(compress_level=1, mem_level=9, threshold=7).accept([])
    assert (ext.compress_level, ext.mem_level, ext.threshold) == (1, 9, 7)


def test_negotiated_pairs_agree():
    for cfg_c in ({}, {"server_max_window_bits": 11}, {"client_max_window_bits": 10},
                  {"client_no_context_takeover": True}, {"server_no_context_takeover": True}):
        for cfg_s in ({}, {"server_max_window_bits": 9}, {"client_max_window_bits": 12},
                      {"client_no_context_takeover": True}, {"server_no_context_takeover": True}):
            client, server, _ = connect(cfg_c, cfg_s)
            assert client.local_no_context_takeover == server.remote_no_context_takeover
            assert client.remote_no_context_takeover == server.local_no_context_takeover
            assert client.local_max_window_bits <= server.remote_max_window_bits
            assert server.local_max_window_bits <= client.remote_max_window_bits


# -- argument validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"server_max_window_bits": "10"},
        {"server_max_window_bits": True},
        {"client_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": 10.0},
        {"compress_level": 10},
        {"compress_level": -2},
        {"mem_level": 0},
        {"mem_level": 10},
        {"threshold": -1},
        {"threshold": 1.5},
        {"server_no_context_takeover": 1},
        {"client_no_context_takeover": "yes"},
    ],
)
def test_factory_argument_validation(kwargs):
    with pytest.raises(ValueError):
        ClientPerMessageDeflate(**kwargs)
    if kwargs.get("client_max_window_bits") is not True:
        with pytest.raises(ValueError):
            ServerPerMessageDeflate(**kwargs)


def test_server_argument_validation():
    with pytest.raises(ValueError):
        ServerPerMessageDeflate(client_max_window_bits=True)
    with pytest.raises(ValueError):
        ServerPerMessageDeflate(require_client_max_window_bits=True)
    with pytest.raises(TypeError):
        ServerPerMessageDeflate(10)  # keyword-only
    with pytest.raises(ValueError):
        PerMessageDeflate(local_max_window_bits=16)
    for bits in range(8, 16):
        ServerPerMessageDeflate(server_max_window_bits=bits, client_max_window_bits=bits)
        ClientPerMessageDeflate(server_max_window_bits=bits, client_max_window_bits=bits)


def test_kernel_build_in_use(inflater_build):
    ext = PerMessageDeflate()
    ext.decode_start(0x40)
    assert isinstance(ext._inflater, inflater_build)
    if os.environ.get("WSFAST_REQUIRE_EXTENSIONS"):
        assert BUILDS[0][0] == "compiled"


# -- interoperability with websockets' implementation ----------------------------------------


def _websockets():
    wspmd = pytest.importorskip("websockets.extensions.permessage_deflate")
    frames = pytest.importorskip("websockets.frames")
    return wspmd, frames.Frame, frames.Opcode


def _exchange_with_websockets(ours, theirs, Frame, Opcode):
    rng = random.Random(11)
    for i in range(40):
        payload = b"".join(json_message(rng, i * 9 + k) for k in range(rng.randrange(1, 9)))
        # theirs -> ours (websockets compresses every message)
        frame = theirs.encode(Frame(Opcode.TEXT, payload))
        assert frame.rsv1
        assert decode_message(ours, 0x40, [bytes(frame.data)]) == payload
        # ours -> theirs, sometimes fragmented
        rsv, frames = encode_message(ours, payload, rng.choice([1, 3]), compress=True)
        assert rsv == 0x40
        got = []
        for j, data in enumerate(frames):
            f = Frame(Opcode.TEXT if j == 0 else Opcode.CONT, data, fin=j == len(frames) - 1, rsv1=j == 0)
            got.append(bytes(theirs.decode(f, max_size=1 << 20).data))
        assert b"".join(got) == payload


@pytest.mark.parametrize(
    "client_kwargs, server_kwargs",
    [
        ({}, {}),
        ({"server_max_window_bits": 11, "client_max_window_bits": 10}, {}),
        ({"server_no_context_takeover": True, "client_no_context_takeover": True}, {}),
        ({}, {"server_max_window_bits": 12, "client_max_window_bits": 12}),
        ({}, {"server_no_context_takeover": True, "client_no_context_takeover": True}),
    ],
)
def test_interop_websockets_client_with_our_server(client_kwargs, server_kwargs):
    wspmd, Frame, Opcode = _websockets()
    factory = wspmd.ClientPerMessageDeflateFactory(**client_kwargs)
    response, ours = ServerPerMessageDeflate(**server_kwargs).negotiate([list(factory.get_request_params())])
    theirs = factory.process_response_params(response, [])
    _exchange_with_websockets(ours, theirs, Frame, Opcode)


@pytest.mark.parametrize(
    "client_kwargs, server_kwargs",
    [
        ({}, {}),
        ({}, {"server_max_window_bits": 12, "client_max_window_bits": 12, "compress_settings": {"memLevel": 5}}),
        ({"server_max_window_bits": 8, "client_max_window_bits": 9}, {}),
        ({"server_no_context_takeover": True, "client_no_context_takeover": True}, {}),
        ({}, {"server_no_context_takeover": True, "client_no_context_takeover": True}),
    ],
)
def test_interop_our_client_with_websockets_server(client_kwargs, server_kwargs):
    wspmd, Frame, Opcode = _websockets()
    factory = ClientPerMessageDeflate(**client_kwargs)
    server = wspmd.ServerPerMessageDeflateFactory(**server_kwargs)
    try:
        response, theirs = server.process_request_params(factory.offer(), [])
    except Exception as exc:  # websockets declines server_max_window_bits=8 (zlib limitation)
        assert client_kwargs.get("server_max_window_bits") == 8, exc
        return
    ours = factory.accept(list(response))
    _exchange_with_websockets(ours, theirs, Frame, Opcode)
