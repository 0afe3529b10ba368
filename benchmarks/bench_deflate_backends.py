"""Compressed round trips on each deflate backend, against websockets, in one process.

    python benchmarks/bench_deflate_backends.py            # ~45 s
    python benchmarks/bench_deflate_backends.py --quick    # ~5 s, proves it runs

Per message: client ``send_text`` -> bytes -> server ``receive_data`` -> the server echoes
the text -> bytes -> client ``receive_data`` -> the client takes the event. Both directions
compressed, context takeover, 15-bit windows, level 6, memLevel 5 on every implementation
(websockets gets ``compress_settings={"level": 6, "memLevel": 5}``), no size limits in the way.

Implementations: wsfast on zlib-ng and on zlib (each connection gets that backend's
``Inflater``/``Deflater`` as it is built; both are importable in one process), the websockets
sans-IO protocols (C speedups), and the "zlib only" floor of each library: the same
compress/flush/decompress calls on both sides with no WebSocket engine.

Times are this process's CPU time (``time.process_time``). The repeats are interleaved
(every implementation once per round), and each ratio is taken within a round, so machine
noise hits both sides of a ratio alike; the report gives the median ratio and its spread
(min-max over rounds). Also the compressed size of every case on each library, relative to
the stdlib zlib's at the same level and memLevel.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import zlib
from itertools import repeat
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _kernels import json_messages  # noqa: E402

LEVEL, MEM_LEVEL, BITS = 6, 5, 15
TAIL = b"\x00\x00\xff\xff"


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(f"wrong result: {what}")


def _backend_classes(backend: str):
    if backend == "zlib":
        try:
            from wsfast._inflate import Deflater, Inflater
        except ImportError:
            from wsfast._inflate_py import Deflater, Inflater
        return Inflater, Deflater
    try:
        from wsfast._inflate_ng import Deflater, Inflater
    except ImportError:
        from wsfast._inflate_py import zlib_ng_classes

        Inflater, Deflater, _ = zlib_ng_classes()
    return Inflater, Deflater


def wsfast_impl(texts: List[str], backend: str) -> Callable[[int], None]:
    from wsfast import Accepted, ClientConnection, Request, ServerConnection
    from wsfast import permessage_deflate as pmd

    saved = pmd.Inflater, pmd.Deflater
    pmd.Inflater, pmd.Deflater = _backend_classes(backend)
    try:
        # Every compressor and inflater is made during the check below, with this backend.
        kw: Dict[str, Any] = {"max_message_size": None}
        client = ClientConnection("example.com", "/", extensions=[
            pmd.ClientPerMessageDeflate(compress_level=LEVEL, mem_level=MEM_LEVEL)], **kw)
        server = ServerConnection(extensions=[
            pmd.ServerPerMessageDeflate(compress_level=LEVEL, mem_level=MEM_LEVEL)], **kw)
        for d in client.data_to_send():
            server.receive_data(d)
        evs = list(server.events())
        _check(isinstance(evs[0], Request), "request")
        server.accept()
        for d in server.data_to_send():
            client.receive_data(d)
        _check(isinstance(list(client.events())[0], Accepted), "accepted")
        got = []
        for t in texts:
            client.send_text(t)
            for d in client.data_to_send():
                server.receive_data(d)
            for ev in server.events():
                server.send_text(ev.data)
            for d in server.data_to_send():
                client.receive_data(d)
            got.extend(ev.data for ev in client.events())
        _check(got == texts, f"wsfast[{backend}] round trip")
        for ext in (client.extensions[0], server.extensions[0]):
            _check(type(ext._deflater) is pmd.Deflater and type(ext._inflater) is pmd.Inflater,
                   f"wsfast[{backend}] uses its backend")
    finally:
        pmd.Inflater, pmd.Deflater = saved

    def run(n: int) -> None:
        c_send, c_out, c_in, c_events = client.send_text, client.data_to_send, client.receive_data, client.events
        s_send, s_out, s_in, s_events = server.send_text, server.data_to_send, server.receive_data, server.events
        for _ in repeat(None, n):
            for t in texts:
                c_send(t)
                for d in c_out():
                    s_in(d)
                for ev in s_events():
                    s_send(ev.data)
                for d in s_out():
                    c_in(d)
                for _ev in c_events():
                    pass

    return run


def websockets_impl(texts: List[str]) -> Callable[[int], None]:
    from websockets import frames, speedups
    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import (
        ClientPerMessageDeflateFactory,
        ServerPerMessageDeflateFactory,
    )
    from websockets.protocol import OPEN
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri

    _check(frames.apply_mask is speedups.apply_mask, "websockets C speedups in use")
    settings = {"level": LEVEL, "memLevel": MEM_LEVEL}
    client = ClientProtocol(parse_uri("ws://example.com/"), max_size=None,
                            extensions=[ClientPerMessageDeflateFactory(compress_settings=settings)])
    server = ServerProtocol(max_size=None,
                            extensions=[ServerPerMessageDeflateFactory(compress_settings=settings)])
    client.send_request(client.connect())
    for d in client.data_to_send():
        server.receive_data(d)
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    for d in server.data_to_send():
        client.receive_data(d)
    client.events_received()
    _check(client.state is OPEN and server.state is OPEN and bool(server.extensions), "websockets pmd")
    raw = [t.encode() for t in texts]
    got = []
    for t in raw:
        client.send_text(t)
        for d in client.data_to_send():
            server.receive_data(d)
        for f in server.events_received():
            server.send_text(f.data)
        for d in server.data_to_send():
            client.receive_data(d)
        got.extend(f.data for f in client.events_received())
    _check(got == raw, "websockets round trip")

    def run(n: int) -> None:
        c_send, c_out, c_in = client.send_text, client.data_to_send, client.receive_data
        s_send, s_out, s_in = server.send_text, server.data_to_send, server.receive_data
        c_events, s_events = client.events_received, server.events_received
        for _ in repeat(None, n):
            for t in raw:
                c_send(t)
                for d in c_out():
                    s_in(d)
                for f in s_events():
                    s_send(f.data)
                for d in s_out():
                    c_in(d)
                c_events()

    return run


def library_only_impl(texts: List[str], z: Any) -> Callable[[int], None]:
    """The floor: the compress/flush/decompress calls of both sides, nothing else."""
    raw = [t.encode() for t in texts]
    cc, sc = (z.compressobj(LEVEL, z.DEFLATED, -BITS, MEM_LEVEL) for _ in range(2))
    sd, cd = (z.decompressobj(-BITS) for _ in range(2))
    sync = z.Z_SYNC_FLUSH
    for m in raw:
        data = cc.compress(m) + cc.flush(sync)
        back = sd.decompress(data[:-4]) + sd.decompress(TAIL)
        data = sc.compress(back) + sc.flush(sync)
        _check(cd.decompress(data[:-4]) + cd.decompress(TAIL) == m, "library round trip")

    def run(n: int) -> None:
        c_comp, c_flush, s_dec = cc.compress, cc.flush, sd.decompress
        s_comp, s_flush, c_dec = sc.compress, sc.flush, cd.decompress
        for _ in repeat(None, n):
            for m in raw:
                data = c_comp(m) + c_flush(sync)
                back = s_dec(data[:-4]) + s_dec(TAIL)
                data = s_comp(back) + s_flush(sync)
                c_dec(data[:-4]) + c_dec(TAIL)

    return run


def compressed_size(texts: List[str], z: Any, level: int = LEVEL) -> int:
    c = z.compressobj(level, z.DEFLATED, -BITS, MEM_LEVEL)
    return sum(len(c.compress(t.encode()) + c.flush(z.Z_SYNC_FLUSH)) - 4 for t in texts)


def _time(run: Callable[[int], None], loops: int) -> float:
    # CPU time of this process: on a shared machine, other processes' load stays out of it.
    t0 = time.process_time()
    run(loops)
    return time.process_time() - t0


def calibrate(run: Callable[[int], None], target: float) -> int:
    loops = 1
    while True:
        t = _time(run, loops)
        if t >= target / 4:
            return max(1, int(loops * target / t))
        loops *= 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny run: proves it works, numbers meaningless")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7, quick 2)")
    args = ap.parse_args()
    rounds = args.rounds or (2 if args.quick else 7)
    per_run = 0.02 if args.quick else 0.15  # seconds per timed run

    try:
        from zlib_ng import zlib_ng
    except ImportError:
        zlib_ng = None

    cases = [
        ("1 KiB JSON", json_messages(20 if args.quick else 100, 1024, seed=8)),
        ("64 KiB JSON", json_messages(4, 64 * 1024, seed=9)),
        ("1 MiB JSON", json_messages(1, 1 << 20, seed=10)),
    ]
    import wsfast._speedups as s

    print(f"# Python {sys.version.split()[0]}, wsfast kernels {s.IMPLEMENTATION}; zlib "
          f"{zlib.ZLIB_RUNTIME_VERSION}; zlib-ng {s.DEFLATE_LIBRARY_VERSION if s.DEFLATE_BACKEND == 'zlib-ng' else '-'}"
          f"; level {LEVEL}, memLevel {MEM_LEVEL}, {BITS}-bit windows, context takeover")
    print(f"# {rounds} interleaved rounds of ~{per_run:.2f} s per implementation and case; "
          "ratio = median over rounds (min-max)")
    for name, texts in cases:
        impls: Dict[str, Callable[[int], None]] = {}
        try:
            impls["wsfast[zlib-ng]"] = wsfast_impl(texts, "zlib-ng")
        except ImportError:
            pass  # neither wsfast._inflate_ng nor the zlib-ng package
        impls["wsfast[zlib]"] = wsfast_impl(texts, "zlib")
        impls["websockets"] = websockets_impl(texts)
        impls["zlib only"] = library_only_impl(texts, zlib)
        if zlib_ng is not None:
            impls["zlib-ng only"] = library_only_impl(texts, zlib_ng)
        loops = {k: calibrate(run, per_run) for k, run in impls.items()}
        times: Dict[str, List[float]] = {k: [] for k in impls}
        for _ in range(rounds):
            for k, run in impls.items():
                times[k].append(_time(run, loops[k]) / (loops[k] * len(texts)))
        base = times["websockets"]
        print(f"\n## {name} ({len(texts)} messages of {len(texts[0])} chars)")
        print(f"{'implementation':<16} {'msgs/s':>10} {'vs websockets':>22}")
        for k, ts in times.items():
            ratios = [b / t for b, t in zip(base, ts, strict=True)]
            print(f"{k:<16} {1 / statistics.median(ts):>10.0f} "
                  f"{statistics.median(ratios):>7.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
        ref = compressed_size(texts, zlib)
        raw = sum(len(t) for t in texts)
        line = f"compressed size: zlib {ref / raw:.4f} of the input"
        if zlib_ng is not None:
            ng = compressed_size(texts, zlib_ng)
            line += f"; zlib-ng {ng / raw:.4f} ({(ng / ref - 1) * 100:+.2f} % vs zlib)"
        print(line)


if __name__ == "__main__":
    main()
