"""The deflate kernels on every build and backend: parity, the stream-end tail, selection.

Builds (those importable here): the compiled kernel on zlib (``wsfast._inflate``), its
pure-Python twin (``wsfast._inflate_py``), the compiled kernel on zlib-ng
(``wsfast._inflate_ng``) and the twin on the `zlib-ng` package. Every test that takes
``build`` runs on each; the differential tests feed the same inputs to all of them at once
and require identical outcomes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsfast import ClientConnection, ServerConnection
from wsfast import permessage_deflate as pmd
from wsfast.events import BinaryMessage, ConnectionFailed, Request, TextMessage
from wsfast.exceptions import PayloadTooBig, ProtocolError

from .helpers import KEY, frame
from .test_permessage_deflate import BUILDS

TAIL = b"\x00\x00\xff\xff"
LABELS = [label for label, _ in BUILDS]


@pytest.fixture(params=[b for _, b in BUILDS], ids=LABELS)
def build(request, monkeypatch):
    monkeypatch.setattr(pmd, "Inflater", request.param.Inflater)
    monkeypatch.setattr(pmd, "Deflater", request.param.Deflater)
    return request.param


def compressed_server() -> ServerConnection:
    """A server that negotiated permessage-deflate (defaults both sides), output drained."""
    server = ServerConnection(extensions=[pmd.ServerPerMessageDeflate()])
    client = ClientConnection("example.com", "/", key=KEY, extensions=[pmd.ClientPerMessageDeflate()])
    server.receive_data(b"".join(client.data_to_send()))
    assert isinstance(next(iter(server.events())), Request)
    server.accept()
    server.data_to_send()
    assert server.extensions
    return server


def received(server: ServerConnection, data: bytes) -> list:
    server.receive_data(data)
    return [
        ("text", e.data) if isinstance(e, TextMessage)
        else ("binary", e.data) if isinstance(e, BinaryMessage)
        else ("failed", e.code) if isinstance(e, ConnectionFailed)
        else (type(e).__name__,)
        for e in server.events()
    ]


# -- issue 10, item 3: a final block that ends inside the 00 00 ff ff tail ----------------------
#
# RFC 7692 §7.2.2: the receiver appends 00 00 ff ff and inflates. When the message's last
# deflate block is final (BFINAL, §7.2.3.4) and ends inside that tail, the rest of the tail is
# not data from the sender: zlib leaves bytes after a stream's end unconsumed, and they are
# dropped. The next message starts a new stream. websockets behaves the same way.


def test_tail_leftover_is_not_a_new_message(build):
    # 03: a final fixed-Huffman block with no literal; its end-of-block code finishes in the
    # tail's first byte, leaving 00 ff ff. 00: an empty non-final stored block's header.
    server = compressed_server()
    assert received(server, b"\xc2\x81\x00\x00\x00\x00\x03" + b"\xc2\x81\x00\x00\x00\x00\x00") == [
        ("binary", b""),
        ("binary", b""),
    ]


def test_tail_leftover_then_normal_message(build):
    hello = bytes.fromhex("f248cdc9c90700")  # RFC 7692 §7.2.3.1, "Hello"
    server = compressed_server()
    data = b"\xc2\x81\x00\x00\x00\x00\x03" + b"\xc1\x87\x00\x00\x00\x00" + hello
    assert received(server, data) == [("binary", b""), ("text", "Hello")]


def test_literal_final_block_ending_in_tail(build):
    # ab: final fixed block; literal 'x' and end-of-block end in the tail, ff ff is left over.
    server = compressed_server()
    assert received(server, b"\xc1\x81\x00\x00\x00\x00\xab") == [("text", "x")]


def test_tail_leftover_kernel_level(build):
    inflater = build.Inflater(15)
    assert inflater.decompress(b"\x03", 100) + inflater.finish(100) == b""
    assert inflater.decompress(b"\x00", 100) + inflater.finish(100) == b""
    inflater = build.Inflater(15)
    assert inflater.decompress(b"\xab", 100) + inflater.finish(100) == b"x"
    # The window survives the stream end: a back-reference to 'x' in the next message.
    z = build.zlib or zlib
    c = z.compressobj(6, z.DEFLATED, -15, 8, zdict=b"x")
    stream = c.compress(b"xxxxxxxx") + c.flush(z.Z_SYNC_FLUSH)
    assert inflater.decompress(stream[:-4], 100) + inflater.finish(100) == b"xxxxxxxx"


def test_bfinal_then_more_data_in_same_message_still_restarts(build):
    # RFC 7692 §7.2.3.4: "Hello" in a final block, then 00 (header of an empty stored block
    # that the tail completes): data after a final block in the *payload* is a new stream.
    server = compressed_server()
    payload = bytes.fromhex("f348cdc9c90700" + "00")
    assert received(server, b"\xc1\x88\x00\x00\x00\x00" + payload) == [("text", "Hello")]
    # Two final blocks in one message: both are inflated.
    inflater = build.Inflater(15)
    one = bytes.fromhex("f348cdc9c90700")
    assert inflater.decompress(one + one, 100) + inflater.finish(100) == b"HelloHello"


def test_empty_last_frame_after_final_block(build):
    # Found by the differential test: a message whose deflate stream ends with a final block
    # in one frame, followed by an empty last frame. The empty chunk must not start a new
    # stream, or finish() feeds the tail into it and the next message inflates garbage.
    server = compressed_server()
    zero = b"\x00" * 4
    data = (
        frame(0x1, bytes.fromhex("f348cdc9c90700"), fin=False, rsv=0x40, mask=zero)
        + frame(0x0, b"", mask=zero)
        + frame(0x1, bytes.fromhex("f248cdc9c90700"), rsv=0x40, mask=zero)
    )
    assert received(server, data) == [("text", "Hello"), ("text", "Hello")]
    inflater = build.Inflater(15)
    one = bytes.fromhex("f348cdc9c90700")
    assert inflater.decompress(one, 100) + inflater.decompress(b"", 100) + inflater.finish(100) == b"Hello"
    assert inflater.decompress(bytearray(), 100) == b""
    assert inflater.decompress(bytes.fromhex("f248cdc9c90700"), 100) + inflater.finish(100) == b"Hello"


# -- differential: the same random streams through every build ---------------------------------


def _outcome(inflater, messages, max_length):
    """Inflate each message (a list of chunks); stop at the first error."""
    results = []
    for chunks in messages:
        room = max_length
        out = []
        try:
            for chunk in chunks:
                piece = inflater.decompress(chunk, room)
                room -= len(piece)
                out.append(piece)
            out.append(inflater.finish(room))
        except PayloadTooBig:
            results.append("PayloadTooBig")
            break
        except ProtocolError as exc:
            results.append(("ProtocolError", str(exc)))
            break
        results.append(b"".join(out))
    return results


def _compress_messages(data, texts, flushes, wbits, level):
    """Raw deflate, one stream per connection, each message ended as `flushes` says:
    sync (tail stripped, §7.2.1), full, final block (§7.2.3.4), final block plus 00."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits, 8)
    out = []
    for text, how in zip(texts, flushes, strict=False):
        if how == "final" or how == "final00":
            body = c.compress(text) + c.flush(zlib.Z_FINISH)
            c = zlib.compressobj(level, zlib.DEFLATED, -wbits, 8, zdict=text or b"\0")
            if how == "final00":
                body += b"\x00"
        else:
            body = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH if how == "sync" else zlib.Z_FULL_FLUSH)
            if body.endswith(TAIL):
                body = body[:-4]
        out.append(body)
    return out


def _split(body, cuts):
    points = sorted({c % (len(body) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points + [len(body)]:
        pieces.append(body[last:p])
        last = p
    return pieces


def _all_agree(messages, wbits, max_length):
    outcomes = {}
    for label, b in BUILDS:
        outcomes[label] = _outcome(b.Inflater(wbits), messages, max_length)
    first = outcomes[LABELS[0]]
    assert all(o == first for o in outcomes.values()), outcomes
    return first


texts_st = st.lists(
    st.one_of(
        st.binary(max_size=300),
        st.builds(lambda w, n: w * n, st.sampled_from([b"ab", b'{"k": 1, "v": "x"}', b"\0"]), st.integers(0, 200)),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=texts_st,
    flushes=st.lists(st.sampled_from(["sync", "full", "final", "final00"]), min_size=5, max_size=5),
    wbits=st.integers(9, 15),
    level=st.integers(0, 9),
    cuts=st.lists(st.integers(0, 1000), max_size=4),
    max_length=st.sampled_from([0, 1, 50, 1000, 1 << 20]),
    mutate=st.one_of(st.none(), st.tuples(st.integers(0, 10000), st.integers(1, 255))),
    truncate=st.one_of(st.none(), st.integers(0, 10000)),
)
def test_builds_agree_on_random_streams(texts, flushes, wbits, level, cuts, max_length, mutate, truncate):
    bodies = _compress_messages(None, texts, flushes, wbits, level)
    stream = b"".join(bodies)
    if mutate is not None and stream:
        i, x = mutate[0] % len(stream), mutate[1]
        flat = bytearray(stream)
        flat[i] ^= x
        # keep the message boundaries: rebuild the bodies from the mutated stream
        out, pos = [], 0
        for body in bodies:
            out.append(bytes(flat[pos : pos + len(body)]))
            pos += len(body)
        bodies = out
    if truncate is not None:
        bodies = [b[: truncate % (len(b) + 1)] if k == len(bodies) - 1 else b for k, b in enumerate(bodies)]
    messages = [_split(body, cuts) for body in bodies]
    result = _all_agree(messages, wbits, max_length)
    if mutate is None and truncate is None and max_length == 1 << 20:
        assert result == texts  # intact streams inflate to what was compressed


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.binary(max_size=64), min_size=1, max_size=4), wbits=st.integers(8, 15))
def test_builds_agree_on_random_bytes(data, wbits):
    _all_agree([[d] for d in data], wbits, 1 << 16)


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.binary(max_size=2000), min_size=1, max_size=4),
    final=st.lists(st.booleans(), min_size=4, max_size=4),
    wbits=st.integers(8, 15),
    level=st.integers(-1, 9),
    mem_level=st.integers(1, 9),
)
def test_deflaters_interoperate(texts, final, wbits, level, mem_level):
    # Every build's Deflater output inflates with every build's Inflater, and the two
    # builds of one library produce the same bytes.
    outputs = {}
    for label, b in BUILDS:
        d = b.Deflater(level, wbits, mem_level)
        frames = [d.compress(t, f) for t, f in zip(texts, final, strict=False)]
        outputs[label] = frames
        for _, other in BUILDS:
            inflater = other.Inflater(wbits)
            got = []
            for frame, f in zip(frames, final, strict=False):
                piece = inflater.decompress(frame, 1 << 20)
                got.append(piece + inflater.finish(1 << 20) if f else piece)
            assert b"".join(got) == b"".join(texts[: len(frames)])
    by_library = {}
    for label, frames in outputs.items():
        by_library.setdefault(label.endswith("-ng"), []).append(frames)
    for group in by_library.values():
        assert all(g == group[0] for g in group)


# -- every window size and both context takeover flags, on every build ------------------------


@pytest.mark.parametrize("bits", range(8, 16))
@pytest.mark.parametrize("client_nct", [False, True])
@pytest.mark.parametrize("server_nct", [False, True])
def test_window_bits_and_no_context_takeover(build, bits, client_nct, server_nct):
    client_factory = pmd.ClientPerMessageDeflate(
        server_max_window_bits=bits,
        client_max_window_bits=bits,
        client_no_context_takeover=client_nct,
        server_no_context_takeover=server_nct,
        threshold=0,
    )
    server_factory = pmd.ServerPerMessageDeflate()
    response, server = server_factory.negotiate([client_factory.offer()])
    client = client_factory.accept(response)
    assert (client.local_max_window_bits, server.local_max_window_bits) == (bits, bits)
    assert client.local_no_context_takeover == server.remote_no_context_takeover == client_nct
    assert server.local_no_context_takeover == client.remote_no_context_takeover == server_nct
    messages = [(b'{"id": %d, "name": "user%d", "tags": ["a", "b"]}' % (i, i % 7)) * (1 + i % 5) for i in range(40)]
    messages += [b"", bytes(range(256)) * 8]
    for tx, rx in ((client, server), (server, client)):
        sizes = 0
        for m in messages:
            rsv, data = tx.encode(m, True, True, True)
            sizes += len(data)
            assert rx.decode_start(rsv)
            assert rx.decode(data, 1 << 20) + rx.decode_end(1 << 20) == m
        assert sizes < sum(map(len, messages))


# -- the bound, on every build ----------------------------------------------------------------


def test_bomb_peak_allocation(build):
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    bomb = c.compress(b"\0" * (16 << 20)) + c.flush(zlib.Z_SYNC_FLUSH)
    limit = 1 << 20
    inflater = build.Inflater(15)
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig):
            room = limit
            for offset in range(0, len(bomb), 4096):
                room -= len(inflater.decompress(bomb[offset : offset + 4096], room))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The compiled kernels and python-zlib-ng stay within the limit plus the stream state
    # (~40 KiB). The stdlib twin's zlib.decompress(data, max_length) builds its output in
    # blocks and then joins them: about twice the limit (a CPython zlib limitation).
    slack = limit + (64 << 10) if build.Inflater.__module__ == "wsfast._inflate_py" and build.zlib is zlib else 64 << 10
    assert peak <= limit + slack


# -- selection at import ----------------------------------------------------------------------


def _speedups(env, pre=""):
    code = pre + (
        "import wsfast._speedups as s;"
        "print(s.IMPLEMENTATION, s.DEFLATE_BACKEND, s.DEFLATE_IMPLEMENTATION, s.Inflater.__module__)"
    )
    full = {k: v for k, v in os.environ.items() if not k.startswith("WSFAST_")}
    full.update(env)
    proc = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout.split(), proc.stderr


HAVE_NG_KERNEL = "compiled-ng" in LABELS
HAVE_NG_PACKAGE = "python-ng" in LABELS


@pytest.mark.timeout(120)
def test_backend_forced_zlib():
    for no_ext in ("", "1"):
        rc, out, err = _speedups({"WSFAST_DEFLATE": "zlib", "WSFAST_NO_EXTENSIONS": no_ext})
        assert rc == 0, err
        assert out[1:3] == ["zlib", out[0]]


@pytest.mark.timeout(120)
@pytest.mark.skipif(not (HAVE_NG_KERNEL or HAVE_NG_PACKAGE), reason="no zlib-ng here")
def test_backend_auto_and_forced_zlib_ng():
    for wanted in ("", "auto", "zlib-ng", "ZLIB-NG"):
        rc, out, err = _speedups({"WSFAST_DEFLATE": wanted})
        assert rc == 0, err
        assert out[1] == "zlib-ng"
        assert out[2] == ("cython" if HAVE_NG_KERNEL and out[0] == "cython" else "python")
    if HAVE_NG_PACKAGE:
        rc, out, err = _speedups({"WSFAST_DEFLATE": "zlib-ng", "WSFAST_NO_EXTENSIONS": "1"})
        assert rc == 0, err
        assert out == ["python", "zlib-ng", "python", "wsfast._inflate_py"]


@pytest.mark.timeout(120)
def test_backend_unavailable_or_invalid():
    hide = "import sys; sys.modules['zlib_ng'] = None;"
    rc, out, err = _speedups({"WSFAST_DEFLATE": "zlib-ng", "WSFAST_NO_EXTENSIONS": "1"}, pre=hide)
    assert rc != 0 and "WSFAST_DEFLATE=zlib-ng" in err
    rc, out, err = _speedups({"WSFAST_NO_EXTENSIONS": "1"}, pre=hide)
    assert rc == 0 and out[1:3] == ["zlib", "python"], err
    rc, out, err = _speedups({"WSFAST_DEFLATE": "brotli"})
    assert rc != 0 and "WSFAST_DEFLATE must be" in err


def test_reported_library_version():
    import wsfast._speedups as s

    assert s.DEFLATE_BACKEND in ("zlib", "zlib-ng")
    if s.DEFLATE_BACKEND == "zlib":
        assert s.DEFLATE_LIBRARY_VERSION == zlib.ZLIB_RUNTIME_VERSION
    else:
        assert s.DEFLATE_LIBRARY_VERSION.split(".")[0] == "2"


# -- the per-connection backend option ----------------------------------------------------------


def test_backend_option_validated():
    with pytest.raises(ValueError):
        pmd.PerMessageDeflate(backend="brotli")
    with pytest.raises(ValueError):
        pmd.ServerPerMessageDeflate(backend="")
    with pytest.raises(ValueError):
        pmd.ClientPerMessageDeflate(backend="ZLIB")


@pytest.mark.parametrize("backend", ["zlib", "zlib-ng"])
def test_backend_option_selects_classes_and_interoperates(backend):
    import wsfast._speedups as s

    if backend == "zlib-ng" and not (HAVE_NG_KERNEL or HAVE_NG_PACKAGE):
        pytest.skip("no zlib-ng here")
    inflater_cls, deflater_cls = s.deflate_classes(backend)
    other = "zlib" if backend == "zlib-ng" else "zlib-ng"
    client_factory = pmd.ClientPerMessageDeflate(backend=backend, threshold=0)
    response, server = pmd.ServerPerMessageDeflate(backend=other if HAVE_NG_KERNEL or HAVE_NG_PACKAGE else None).negotiate(
        [client_factory.offer()]
    )
    client = client_factory.accept(response)
    assert client.backend == backend and repr(client).endswith(f"backend={backend!r})")
    for i in range(20):
        m = b'{"seq": %d, "payload": "abcabcabc"}' % i * 10
        for tx, rx in ((client, server), (server, client)):
            rsv, data = tx.encode(m, True, True, True)
            assert rx.decode_start(rsv)
            assert rx.decode(data, 1 << 20) + rx.decode_end(1 << 20) == m
    assert type(client._deflater) is deflater_cls and type(client._inflater) is inflater_cls


def test_backend_option_zlib_holds_less_memory():
    if not (HAVE_NG_KERNEL or HAVE_NG_PACKAGE):
        pytest.skip("no zlib-ng here")
    msg = b'[{"type": "trade", "symbol": "BTCUSD", "price": 123.45, "qty": 0.5}]' * 4
    per_connection = {}
    for backend in ("zlib", "zlib-ng"):
        keep = []
        tracemalloc.start()
        try:
            for _ in range(50):
                ext = pmd.PerMessageDeflate(backend=backend, local_max_window_bits=12, remote_max_window_bits=12)
                rsv, data = ext.encode(msg, True, True, True)
                ext.decode_start(rsv)
                assert ext.decode(data, 1 << 20) + ext.decode_end(1 << 20) == msg
                keep.append(ext)
            per_connection[backend] = tracemalloc.get_traced_memory()[0] / 50
        finally:
            tracemalloc.stop()
    # 12-bit windows, mem_level 5: zlib ~49 KiB, zlib-ng ~200 KiB (fixed 128 KiB hash table).
    assert per_connection["zlib"] < 64 << 10 < per_connection["zlib-ng"]
