"""Group ``engine``: whole sans-IO engines through their public APIs, events included.

Setup of each peer (its best configuration here, and what "one message" costs it):

* wsfast: ``ServerConnection`` / ``ClientConnection`` after a real opening handshake;
  ``receive_data(chunk)`` then ``events()`` (events are ``TextMessage(str)`` /
  ``BinaryMessage(bytes)``: UTF-8 validated and decoded, messages reassembled).
* websockets: ``websockets.server.ServerProtocol`` / ``websockets.client.ClientProtocol``
  after a real handshake, with its C ``speedups`` (checked), ``max_size=None`` for 1 MiB.
  ``receive_data`` + ``events_received()``. Its sans-IO layer delivers ``Frame`` objects with
  raw bytes: text is *not* UTF-8 decoded there (its asyncio layer does that later), so it
  does less work than wsfast here and the ratios are conservative. ``send_text`` takes bytes,
  so the timed loop includes ``str.encode`` (as websockets' own ``send`` does).
* aiohttp: the compiled ``aiohttp._websocket.reader_c.WebSocketReader`` (checked) fed with
  ``feed_data``, messages taken from its ``WebSocketDataQueue``'s deque (the queue's
  ``read()`` is a coroutine; taking the deque avoids charging aiohttp for stepping it).
  ``decode_text=True`` (str out, like wsfast). The queue's flow-control limit is set huge and a
  fresh reader+queue is made per operation (10 000 messages), so the reader never stalls —
  aiohttp's default 64 KiB limit would pause parsing every ~900 small messages.
  Writer: ``aiohttp._websocket.writer.WebSocketWriter(use_mask=True)`` on a fake transport
  whose ``write`` is ``list.append`` (C, no per-call Python frame); ``send_frame`` is a
  coroutine, awaited from one driver coroutine, i.e. as in an aiohttp app minus the event loop.
* wsproto: ``WSConnection`` after a real handshake; pure Python (masking too). It may deliver
  a message in several ``TextMessage``/``BytesMessage`` pieces when a frame straddles two
  chunks; the consumer joins them (as an application must).
* picows: skipped. It has no sans-IO parser: frames are parsed inside
  ``WSProtocol.buffer_updated`` of an asyncio ``BufferedProtocol`` that needs a running loop
  and a transport; it also hands out frames (memoryviews, no UTF-8 check, no reassembly), not
  messages, so it would not be the same work.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import struct
from itertools import repeat
from types import SimpleNamespace

from _bench import Case, Registry, Skip, Target
from _kernels import ref_mask

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
CHUNK = 64 * 1024


def accept_response(request: bytes) -> bytes:
    """A 101 answer to any client's opening handshake request."""
    key = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)\s*$", request).group(1)
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")


def client_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """One final, masked frame (built independently of every implementation under test)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + ref_mask(payload, mask)


def parse_client_frame(frame: bytes):
    """(opcode, unmasked payload) of one whole masked frame: checks serializer outputs."""
    b0, b1 = frame[0], frame[1]
    assert b0 & 0x80 and b1 & 0x80, "final and masked"
    n, pos = b1 & 0x7F, 2
    if n == 126:
        n, pos = struct.unpack_from("!H", frame, 2)[0], 4
    elif n == 127:
        n, pos = struct.unpack_from("!Q", frame, 2)[0], 10
    mask, payload = frame[pos:pos + 4], frame[pos + 4:]
    assert len(payload) == n, "one whole frame"
    return b0 & 0x0F, ref_mask(payload, mask)


def chunked(buf: bytes, size: int = CHUNK) -> list:
    return [buf[i:i + size] for i in range(0, len(buf), size)]


def server_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (what a server sends; built independently, like client_frame)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


class Stream:
    """N messages prebuilt into one buffer, cut in 64 KiB chunks like socket reads: masked
    client frames (what a server parses), or with ``masked=False`` unmasked server frames (what
    a client parses)."""

    def __init__(self, payloads: list, opcode: int, seed: int, masked: bool = True) -> None:
        rng = random.Random(seed)
        self.payloads = payloads
        self.opcode = opcode
        self.masked = masked
        self.expected = [p.decode() for p in payloads] if opcode == 1 else payloads
        if masked:
            self.buffer = b"".join(client_frame(opcode, p, rng.randbytes(4)) for p in payloads)
        else:
            self.buffer = b"".join(server_frame(opcode, p) for p in payloads)
        self.chunks = chunked(self.buffer)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(f"wrong result: {what}")


# ----------------------------------------------------------------------------- servers (parse)


def require_websockets_speedups() -> None:
    """websockets in its best configuration: frames masked by its C extension."""
    try:
        from websockets import frames, speedups
    except ImportError as exc:
        raise Skip(f"websockets C speedups are not built ({exc})")
    if frames.apply_mask is not speedups.apply_mask:
        raise Skip("websockets C speedups are not in use")


def wsfast_server(**kw):
    from wsfast import Request, ServerConnection

    conn = ServerConnection(**kw)
    conn.receive_data(REQUEST)
    evs = list(conn.events())
    _check(len(evs) == 1 and isinstance(evs[0], Request), "wsfast handshake")
    conn.accept()
    _check(b"".join(conn.data_to_send()).startswith(b"HTTP/1.1 101"), "wsfast 101")
    return conn


def websockets_server(**kw):
    try:
        from websockets.protocol import OPEN
        from websockets.server import ServerProtocol
    except ImportError as exc:
        raise Skip(f"websockets not installed ({exc})")
    require_websockets_speedups()
    proto = ServerProtocol(**kw)
    proto.receive_data(REQUEST)
    (request,) = proto.events_received()
    proto.send_response(proto.accept(request))
    proto.data_to_send()
    _check(proto.state is OPEN, "websockets handshake")
    return proto


def wsproto_server():
    try:
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, Request
    except ImportError as exc:
        raise Skip(f"wsproto not installed ({exc})")
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(REQUEST)
    evs = list(ws.events())
    _check(len(evs) == 1 and isinstance(evs[0], Request), "wsproto handshake")
    ws.send(AcceptConnection())
    return ws


def aiohttp_reader_classes():
    try:
        from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
    except ImportError as exc:
        raise Skip(f"aiohttp not installed ({exc})")
    if not WebSocketReader.__module__.endswith("reader_c"):
        raise Skip(f"aiohttp's compiled reader is not in use ({WebSocketReader.__module__})")
    return WebSocketDataQueue, WebSocketReader


def _parse_impls(stream: Stream, big: bool) -> dict:
    """Parse ``stream`` on the side that receives it: a server for masked frames, a client for
    unmasked ones (wsproto only as a server)."""
    chunks = stream.chunks
    text = stream.opcode == 1
    server = stream.masked

    def wsfast():
        make = wsfast_server if server else wsfast_client
        conn = make(max_message_size=None) if big else make()
        got = []
        for c in chunks:
            conn.receive_data(c)
            got.extend(conn.events())
        _check([e.data for e in got] == stream.expected, "wsfast parse")

        def run(n, conn=conn, chunks=chunks, repeat=repeat):
            got = []
            ext = got.extend
            feed, events = conn.receive_data, conn.events
            for _ in repeat(None, n):
                for c in chunks:
                    feed(c)
                    ext(events())
                got.clear()

        return run

    def websockets():
        make = websockets_server if server else websockets_client
        proto = make(max_size=None) if big else make()
        got = []
        for c in chunks:
            proto.receive_data(c)
            got += proto.events_received()
        _check([f.data for f in got] == stream.payloads, "websockets parse")

        def run(n, proto=proto, chunks=chunks, repeat=repeat):
            got = []
            ext = got.extend
            feed, events = proto.receive_data, proto.events_received
            for _ in repeat(None, n):
                for c in chunks:
                    feed(c)
                    ext(events())
                got.clear()

        return run

    def aiohttp():
        Queue, Reader = aiohttp_reader_classes()
        protocol = SimpleNamespace(_reading_paused=False, pause_reading=lambda: None,
                                   resume_reading=lambda: None)
        limit = 1 << 30
        max_msg = 0 if big else 4 << 20

        def one():
            q = Queue(protocol, limit, loop=None)
            r = Reader(q, max_msg, False, True)
            buf = q._buffer
            got = []
            for c in chunks:
                r.feed_data(c)
                got.extend(buf)
                buf.clear()
            return got

        got = one()
        _check([m[0].data for m in got] == stream.expected, "aiohttp parse")

        def run(n, Queue=Queue, Reader=Reader, protocol=protocol, chunks=chunks, repeat=repeat):
            got = []
            ext = got.extend
            for _ in repeat(None, n):
                q = Queue(protocol, limit, loop=None)
                feed = Reader(q, max_msg, False, True).feed_data
                buf = q._buffer
                clear = buf.clear
                for c in chunks:
                    feed(c)
                    ext(buf)
                    clear()
                got.clear()

        return run

    def wsproto():
        ws = wsproto_server()

        def consume(ws, chunks, got):
            parts = []
            for c in chunks:
                ws.receive_data(c)
                for ev in ws.events():
                    if ev.message_finished and not parts:
                        got.append(ev.data)
                    else:
                        parts.append(ev.data)
                        if ev.message_finished:
                            got.append(("" if text else b"").join(parts))
                            parts = []

        got = []
        consume(ws, chunks, got)
        _check(got == stream.expected, "wsproto parse")

        def run(n, ws=ws, chunks=chunks, repeat=repeat):
            got = []
            for _ in repeat(None, n):
                consume(ws, chunks, got)
                got.clear()

        return run

    impls = {"wsfast": wsfast, "websockets": websockets, "aiohttp": aiohttp}
    if server:
        impls["wsproto"] = wsproto
    return impls


# ----------------------------------------------------------------------------- clients (serialize)


def wsfast_client(**kw):
    from wsfast import Accepted, ClientConnection

    conn = ClientConnection("example.com", "/chat", **kw)
    conn.receive_data(accept_response(b"".join(conn.data_to_send())))
    evs = list(conn.events())
    _check(len(evs) == 1 and isinstance(evs[0], Accepted), "wsfast client handshake")
    return conn


def websockets_client(**kw):
    try:
        from websockets.client import ClientProtocol
        from websockets.protocol import OPEN
        from websockets.uri import parse_uri
    except ImportError as exc:
        raise Skip(f"websockets not installed ({exc})")
    require_websockets_speedups()
    proto = ClientProtocol(parse_uri("ws://example.com/chat"), **kw)
    proto.send_request(proto.connect())
    proto.receive_data(accept_response(b"".join(proto.data_to_send())))
    proto.events_received()
    _check(proto.state is OPEN, "websockets client handshake")
    return proto


def _serialize_impls(texts: list) -> dict:
    """Serialize ``texts`` on the client side (masked): ``str`` items as text messages,
    bytes items as binary ones (all of one kind)."""
    binary = isinstance(texts[0], bytes)
    opcode = 2 if binary else 1
    expected = texts if binary else [t.encode() for t in texts]

    def check_frames(frames, who):
        _check(len(frames) == len(texts), f"{who}: one frame per message")
        _check([parse_client_frame(f) for f in frames] == [(opcode, e) for e in expected], f"{who} frames")

    def wsfast():
        conn = wsfast_client()
        send = conn.send_binary if binary else conn.send_text
        out = []
        for t in texts:
            send(t)
            out.append(b"".join(conn.data_to_send()))
        check_frames(out, "wsfast")

        def run(n, send=send, data=conn.data_to_send, texts=texts, repeat=repeat):
            for _ in repeat(None, n):
                for t in texts:
                    send(t)
                    data()

        return run

    def websockets():
        proto = websockets_client()
        out = []
        if binary:
            send = proto.send_binary
            encode = bytes  # already bytes: websockets takes them as they are
        else:
            send = proto.send_text
            encode = str.encode
        for t in texts:
            send(encode(t))
            out.append(b"".join(proto.data_to_send()))
        check_frames(out, "websockets")

        if binary:
            def run(n, send=send, data=proto.data_to_send, texts=texts, repeat=repeat):
                for _ in repeat(None, n):
                    for t in texts:
                        send(t)
                        data()
        else:
            def run(n, send=send, data=proto.data_to_send, texts=texts, repeat=repeat):
                for _ in repeat(None, n):
                    for t in texts:
                        send(t.encode())
                        data()

        return run

    def aiohttp():
        try:
            from aiohttp._websocket.helpers import websocket_mask
            from aiohttp._websocket.writer import WebSocketWriter
        except ImportError as exc:
            raise Skip(f"aiohttp not installed ({exc})")
        if "cython" not in getattr(websocket_mask, "__name__", ""):
            raise Skip("aiohttp's compiled mask is not in use")
        sink: list = []
        transport = SimpleNamespace(write=sink.append, is_closing=bool)  # bool() is False, in C
        protocol = SimpleNamespace(_paused=False)
        writer = WebSocketWriter(protocol, transport, use_mask=True)

        async def send_all(n, send=writer.send_frame, texts=texts, clear=sink.clear):
            if binary:
                for _ in repeat(None, n):
                    for t in texts:
                        await send(t, 2)
                    clear()
            else:
                for _ in repeat(None, n):
                    for t in texts:
                        await send(t.encode(), 1)
                    clear()

        def drive(n):
            coro = send_all(n)
            try:
                coro.send(None)
            except StopIteration:
                return
            raise AssertionError("aiohttp writer suspended")

        async def once():
            for t in texts:
                await writer.send_frame(t if binary else t.encode(), opcode)

        try:
            once().send(None)
        except StopIteration:
            pass
        check_frames(list(sink), "aiohttp")
        sink.clear()
        return drive

    def wsproto():
        try:
            from wsproto import ConnectionType, WSConnection
            from wsproto.events import Message, Request
        except ImportError as exc:
            raise Skip(f"wsproto not installed ({exc})")
        ws = WSConnection(ConnectionType.CLIENT)
        ws.receive_data(accept_response(ws.send(Request(host="example.com", target="/chat"))))
        list(ws.events())
        check_frames([ws.send(Message(data=t)) for t in texts], "wsproto")

        def run(n, send=ws.send, M=Message, texts=texts, repeat=repeat):
            for _ in repeat(None, n):
                for t in texts:
                    send(M(data=t))

        return run

    return {"wsfast": wsfast, "websockets": websockets, "aiohttp": aiohttp, "wsproto": wsproto}


# ----------------------------------------------------------------------------- zero-copy receive


def _zero_copy_impls(stream: Stream) -> dict:
    """Receive ``stream`` as the adapters do, against the physical floor.

    The socket is emulated: a read returns at most 64 KiB of the stream. wsfast reads the way
    its adapters do (``_nbio.nonblocking_read``, ``_sockio.blocking_step``): into the message
    object (``get_payload_buffer`` + ``buffer_updated``) when the engine offers a region, else
    a ``recv``-like fresh bytes (the header and the first bytes of each frame) given to
    ``receive_data``. The emulated read is a ``memcpy``, standing for the kernel's copy.
    memcpy: one allocation and one copy of each message's payload from the stream, nothing
    else (what the bytes would cost with no WebSocket at all)."""
    server = stream.masked
    src = memoryview(stream.buffer)
    total = len(src)
    sizes = [len(p) for p in stream.payloads]
    offsets = []
    at = 0
    for size in sizes:
        at += 14 if server else 10  # 64-bit length header (+ the mask into a server)
        offsets.append((at, at + size))
        at += size
    _check(at == total, "zero-copy stream layout")

    def wsfast():
        make = wsfast_server if server else wsfast_client
        conn = make(max_message_size=None)

        def one(got, src=src, total=total, chunk=CHUNK, conn=conn):
            feed, events = conn.receive_data, conn.events
            region_of, updated = conn.get_payload_buffer, conn.buffer_updated
            ext = got.extend
            pos = 0
            while pos < total:
                region = region_of()
                if region is None:
                    end = pos + chunk
                    feed(bytes(src[pos:end]))
                    pos = end
                else:
                    k = len(region)
                    if k > chunk:
                        k = chunk
                    region[:k] = src[pos:pos + k]
                    updated(k)
                    pos += k
                ext(events())

        got: list = []
        one(got)
        _check([e.data for e in got] == stream.expected, "wsfast zero-copy receive")

        def run(n, one=one, repeat=repeat):
            got: list = []
            for _ in repeat(None, n):
                one(got)
                got.clear()

        return run

    def memcpy():
        def run(n, src=src, offsets=offsets, repeat=repeat):
            got: list = []
            add = got.append
            for _ in repeat(None, n):
                for a, b in offsets:
                    add(bytes(src[a:b]))
                got.clear()

        return run

    return {"wsfast": wsfast, "memcpy": memcpy}


def register(reg: Registry, quick: bool, label: str = "wsfast") -> None:
    n_small = 1000 if quick else 10_000
    n_big = 2 if quick else 8
    small = Stream([f"m{i:015d}".encode() for i in range(n_small)], 1, seed=5)
    rng = random.Random(6)
    big_payloads = [rng.randbytes(1 << 20) for _ in range(n_big)]
    big = Stream(big_payloads, 2, seed=7)
    big_client = Stream(big_payloads, 2, seed=7, masked=False)
    n_mid = 16 * n_big  # as many bytes as the 1 MiB cases
    mid_payloads = [rng.randbytes(1 << 16) for _ in range(n_mid)]
    mid = Stream(mid_payloads, 2, seed=8)
    mid_client = Stream(mid_payloads, 2, seed=8, masked=False)
    texts = [f"m{i:015d}" for i in range(n_small)]

    reg.cases.append(Case(
        "engine", "parse 16 B text (server)", "kmsg/s", n_small / 1e3, _parse_impls(small, big=False),
        note=f"{n_small} masked 16-byte text frames, one buffer, fed in 64 KiB chunks; per op: all of them"))
    reg.cases.append(Case(
        "engine", "parse 1 MiB binary (server)", "MB/s", n_big * (1 << 20) / 1e6, _parse_impls(big, big=True),
        note=f"{n_big} masked 1 MiB binary frames, fed in 64 KiB chunks; no size limits"))
    reg.cases.append(Case(
        "engine", "parse 64 KiB binary (server)", "MB/s", n_mid * (1 << 16) / 1e6, _parse_impls(mid, big=False),
        note=f"{n_mid} masked 64 KiB binary frames, fed in 64 KiB chunks (so every frame straddles two)"))
    reg.cases.append(Case(
        "engine", "parse 1 MiB binary (client)", "MB/s", n_big * (1 << 20) / 1e6,
        _parse_impls(big_client, big=True),
        note=f"{n_big} unmasked 1 MiB binary frames into a client, fed in 64 KiB chunks; no size limits"))
    reg.cases.append(Case(
        "engine", "parse 64 KiB binary (client)", "MB/s", n_mid * (1 << 16) / 1e6,
        _parse_impls(mid_client, big=False),
        note=f"{n_mid} unmasked 64 KiB binary frames into a client, fed in 64 KiB chunks"))
    reg.cases.append(Case(
        "engine", "serialize 16 B text (client)", "kmsg/s", n_small / 1e3, _serialize_impls(texts),
        note=f"{n_small} × (send 16-char str, masked; take the bytes to send)"))
    reg.cases.append(Case(
        "engine", "serialize 1 MiB binary (client)", "MB/s", n_big * (1 << 20) / 1e6,
        _serialize_impls(big_payloads),
        note=f"{n_big} × (send a 1 MiB bytes, masked; take the bytes to send)"))
    reg.cases.append(Case(
        "engine", "zero-copy receive 1 MiB (server)", "MB/s", n_big * (1 << 20) / 1e6, _zero_copy_impls(big),
        note=f"{n_big} masked 1 MiB frames read as the adapters read them (emulated 64 KiB socket reads "
             "into the message object); memcpy = one allocation + one copy per message, no WebSocket"))
    reg.cases.append(Case(
        "engine", "zero-copy receive 1 MiB (client)", "MB/s", n_big * (1 << 20) / 1e6,
        _zero_copy_impls(big_client),
        note=f"{n_big} unmasked 1 MiB frames, the same way"))

    reg.targets += [
        Target("parse small ≥ 5× websockets", "parse 16 B text (server)", "websockets", 5.0),
        Target("parse small ≥ 1.5× aiohttp", "parse 16 B text (server)", "aiohttp", 1.5),
        Target("parse 1 MiB ≥ 2× websockets", "parse 1 MiB binary (server)", "websockets", 2.0),
        Target("parse 1 MiB ≥ 1.5× aiohttp", "parse 1 MiB binary (server)", "aiohttp", 1.5),
        Target("parse 64 KiB ≥ 1.5× websockets", "parse 64 KiB binary (server)", "websockets", 1.5),
        Target("parse 64 KiB ≥ 1.2× aiohttp", "parse 64 KiB binary (server)", "aiohttp", 1.2),
        Target("client parse 1 MiB ≥ 2× websockets", "parse 1 MiB binary (client)", "websockets", 2.0),
        Target("client parse 1 MiB ≥ 1.5× aiohttp", "parse 1 MiB binary (client)", "aiohttp", 1.5),
        Target("client parse 64 KiB ≥ 1.5× websockets", "parse 64 KiB binary (client)", "websockets", 1.5),
        Target("client parse 64 KiB ≥ 1.2× aiohttp", "parse 64 KiB binary (client)", "aiohttp", 1.2),
        Target("serialize ≥ 3× websockets", "serialize 16 B text (client)", "websockets", 3.0),
        Target("serialize ≥ 1.5× aiohttp", "serialize 16 B text (client)", "aiohttp", 1.5),
        Target("serialize 1 MiB masked ≥ 2× websockets", "serialize 1 MiB binary (client)", "websockets", 2.0),
        Target("zero-copy receive 1 MiB ≥ ½ memcpy (server)", "zero-copy receive 1 MiB (server)", "memcpy", 0.5),
        Target("zero-copy receive 1 MiB ≥ ½ memcpy (client)", "zero-copy receive 1 MiB (client)", "memcpy", 0.5),
        Target("pure-Python twins: parse small ≥ 1× websockets", "parse 16 B text (server)", "websockets", 1.0,
               impl="wsfast-py"),
    ]
    reg.notes.setdefault("engine", []).extend([
        "websockets' sans-IO layer returns raw `Frame`s (no UTF-8 decoding of text; its asyncio layer "
        "does it): it does less work than wsfast/aiohttp/wsproto, so wsfast ÷ websockets is conservative.",
        "aiohttp: compiled reader, messages taken from the queue's deque, flow-control limit 1 GiB; writer "
        "on a fake transport (`write` = `list.append`), `send_frame` awaited inside one driver coroutine.",
        "picows: skipped — no sans-IO parser (its parser lives in an asyncio BufferedProtocol and yields "
        "unvalidated frames, not messages).",
    ])
