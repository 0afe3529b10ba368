"""Group ``deflate``: permessage-deflate round trips through two engines.

Per message: client ``send_text`` → bytes → server ``receive_data`` → the server takes the
text event and sends it back (``send_text``) → bytes → client ``receive_data`` → the client
takes the event. Both directions are compressed, with context takeover, 15-bit windows,
zlib level 6 and memLevel 5 on both engines (wsfast's defaults; websockets gets
``compress_settings={"level": 6, "memLevel": 5}``), so both run the same zlib work.

As in the ``engine`` group, websockets' sans-IO layer does not UTF-8-decode text (its
server echoes the ``Frame`` bytes), while wsfast decodes on both sides and re-encodes the
echoed ``str``: the ratio is conservative.

``benchmarks/bench_pmd_memory.py`` (memory per idle compressed connection) is run as a
separate process by ``run.py`` and its table included in the report.
"""

from __future__ import annotations

from itertools import repeat

from _bench import Case, Registry, Skip, Target
from _engine import require_websockets_speedups
from _kernels import json_messages


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(f"wrong result: {what}")


def wsfast_pair():
    try:
        from wsfast.permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate
    except ImportError as exc:
        raise Skip(f"wsfast.permessage_deflate is not importable yet ({exc})")
    from wsfast import Accepted, ClientConnection, Request, ServerConnection

    client = ClientConnection("example.com", "/chat", extensions=[ClientPerMessageDeflate()])
    server = ServerConnection(extensions=[ServerPerMessageDeflate()])
    for d in client.data_to_send():
        server.receive_data(d)
    evs = list(server.events())
    _check(len(evs) == 1 and isinstance(evs[0], Request), "wsfast request")
    server.accept()
    response = b"".join(server.data_to_send())
    client.receive_data(response)
    evs = list(client.events())
    _check(len(evs) == 1 and isinstance(evs[0], Accepted), "wsfast accepted")
    _check(bool(client.extensions) and bool(server.extensions), "wsfast negotiated permessage-deflate")
    return client, server, response


def websockets_pair():
    try:
        from websockets.client import ClientProtocol
        from websockets.extensions.permessage_deflate import (
            ClientPerMessageDeflateFactory,
            ServerPerMessageDeflateFactory,
        )
        from websockets.protocol import OPEN
        from websockets.server import ServerProtocol
        from websockets.uri import parse_uri
    except ImportError as exc:
        raise Skip(f"websockets not installed ({exc})")
    require_websockets_speedups()
    settings = {"level": 6, "memLevel": 5}
    client = ClientProtocol(parse_uri("ws://example.com/chat"),
                            extensions=[ClientPerMessageDeflateFactory(compress_settings=settings)])
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory(compress_settings=settings)])
    client.send_request(client.connect())
    for d in client.data_to_send():
        server.receive_data(d)
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    response = b"".join(server.data_to_send())
    client.receive_data(response)
    client.events_received()
    _check(client.state is OPEN and server.state is OPEN, "websockets handshake")
    _check(bool(client.extensions) and bool(server.extensions), "websockets negotiated permessage-deflate")
    return client, server, response


def _ext_header(response: bytes) -> str:
    for line in response.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-extensions:"):
            return line.split(b":", 1)[1].strip().decode()
    return ""


def _round_trip_impls(texts: list, negotiated: dict) -> dict:
    raw = [t.encode() for t in texts]

    def wsfast():
        client, server, response = wsfast_pair()
        negotiated["wsfast"] = _ext_header(response)
        got = []
        first = True
        for t in texts:
            client.send_text(t)
            for d in client.data_to_send():
                if first:
                    _check(bool(d[0] & 0x40), "wsfast: RSV1 set (compressed)")
                    first = False
                server.receive_data(d)
            for ev in server.events():
                server.send_text(ev.data)
            for d in server.data_to_send():
                client.receive_data(d)
            got.extend(ev.data for ev in client.events())
        _check(got == texts, "wsfast round trip")

        def run(n, client=client, server=server, texts=texts, repeat=repeat):
            c_send, c_out, c_in, c_events = client.send_text, client.data_to_send, client.receive_data, client.events
            s_send, s_out, s_in, s_events = server.send_text, server.data_to_send, server.receive_data, server.events
            got = []
            ext = got.extend
            for _ in repeat(None, n):
                for t in texts:
                    c_send(t)
                    for d in c_out():
                        s_in(d)
                    for ev in s_events():
                        s_send(ev.data)
                    for d in s_out():
                        c_in(d)
                    ext(c_events())
                got.clear()

        return run

    def websockets():
        client, server, response = websockets_pair()
        negotiated["websockets"] = _ext_header(response)
        got = []
        first = True
        for t in texts:
            client.send_text(t.encode())
            for d in client.data_to_send():
                if first:
                    _check(bool(d[0] & 0x40), "websockets: RSV1 set (compressed)")
                    first = False
                server.receive_data(d)
            for f in server.events_received():
                server.send_text(f.data)
            for d in server.data_to_send():
                client.receive_data(d)
            got.extend(f.data for f in client.events_received())
        _check(got == raw, "websockets round trip")

        def run(n, client=client, server=server, texts=texts, repeat=repeat):
            c_send, c_out, c_in = client.send_text, client.data_to_send, client.receive_data
            s_send, s_out, s_in = server.send_text, server.data_to_send, server.receive_data
            c_events, s_events = client.events_received, server.events_received
            got = []
            ext = got.extend
            for _ in repeat(None, n):
                for t in texts:
                    c_send(t.encode())
                    for d in c_out():
                        s_in(d)
                    for f in s_events():
                        s_send(f.data)
                    for d in s_out():
                        c_in(d)
                    ext(c_events())
                got.clear()

        return run

    def zlib_only():
        """The floor: the same zlib calls (both directions) with no WebSocket engine around them."""
        import zlib

        def make():
            return [zlib.compressobj(6, zlib.DEFLATED, -15, 5) for _ in range(2)], \
                   [zlib.decompressobj(-15) for _ in range(2)]

        (cc, sc), (sd, cd) = make()
        tail = b"\x00\x00\xff\xff"
        got = []
        for m in raw:
            data = cc.compress(m) + cc.flush(zlib.Z_SYNC_FLUSH)
            back = sd.decompress(data[:-4]) + sd.decompress(tail)
            data = sc.compress(back) + sc.flush(zlib.Z_SYNC_FLUSH)
            got.append(cd.decompress(data[:-4]) + cd.decompress(tail))
        _check(got == raw, "zlib round trip")

        def run(n, raw=raw, sync=zlib.Z_SYNC_FLUSH, tail=tail, repeat=repeat):
            c_comp, c_flush, s_dec = cc.compress, cc.flush, sd.decompress
            s_comp, s_flush, c_dec = sc.compress, sc.flush, cd.decompress
            for _ in repeat(None, n):
                for m in raw:
                    data = c_comp(m) + c_flush(sync)
                    back = s_dec(data[:-4]) + s_dec(tail)
                    data = s_comp(back) + s_flush(sync)
                    c_dec(data[:-4]) + c_dec(tail)

        return run

    return {"wsfast": wsfast, "websockets": websockets, "zlib only": zlib_only}


def register(reg: Registry, quick: bool, label: str = "wsfast") -> None:
    count = 20 if quick else 200
    texts = json_messages(count, 1024, seed=8)
    negotiated: dict = {}
    reg.cases.append(Case(
        "deflate", "round trip 1 KiB JSON, compressed", "kmsg/s", count / 1e3,
        _round_trip_impls(texts, negotiated),
        note=f"{count} distinct ~1 KiB JSON messages per op, echoed; context takeover, 15-bit windows, "
             "level 6, memLevel 5"))
    reg.extra["deflate_negotiated"] = negotiated
    reg.targets.append(Target("compressed round trip ≥ 1.5× websockets", "round trip 1 KiB JSON, compressed",
                              "websockets", 1.5))
    reg.notes.setdefault("deflate", []).extend([
        "`zlib only` = the same compress/flush/decompress calls on both sides with no WebSocket engine: "
        "the floor. wsfast ÷ zlib only (< 1) shows how much of the round trip is zlib itself; the best "
        "any engine can do against websockets is websockets ÷ zlib only.",
        "Same settings both engines: context takeover both ways, 15-bit windows, zlib level 6, memLevel 5.",
        "websockets does not UTF-8-decode text in its sans-IO layer (echoes raw bytes): ratio is conservative.",
    ])
