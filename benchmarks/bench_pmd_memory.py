"""Memory per idle permessage-deflate connection: wsfast vs websockets.

For each setting, builds N extension objects (one per simulated connection), sends one
compressed message and receives one compressed message on each (so compressor and inflater
exist as they would on a connection that has talked once and is now idle), drops the
message buffers, and reports the memory still held per connection:

* ``alloc``: bytes still allocated per connection according to tracemalloc. CPython's ``zlib``
  module allocates zlib's state through ``PyMem_RawMalloc``, so tracemalloc sees it; the
  compiled ``Inflater`` is only counted if it does the same (``zalloc``/``zfree``) — the
  ``rss`` column is the cross-check.
* ``rss``: growth of the resident set per connection (pages actually touched; zlib leaves
  parts of its buffers untouched after one small message, so this can be below ``alloc``).

Run: ``python benchmarks/bench_pmd_memory.py [-n 1000] [--markdown]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tracemalloc
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _load_wsfast():
    """Import wsfast.permessage_deflate; say which Inflater build is measured."""
    try:
        from wsfast import permessage_deflate as pmd
        from wsfast._speedups import IMPLEMENTATION
    except ImportError as exc:  # a kernel is not built / not written yet
        sys.exit(f"cannot import wsfast kernels ({exc}); build them first")
    return pmd, IMPLEMENTATION


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _message(seed: int = 0) -> bytes:
    rng = random.Random(seed)
    items = [
        {"type": "trade", "symbol": rng.choice(["BTCUSD", "ETHUSD"]), "price": round(rng.uniform(1, 5e4), 2),
         "qty": round(rng.random(), 6), "id": i, "side": rng.choice(["buy", "sell"])}
        for i in range(3)
    ]
    return json.dumps(items).encode()  # ~300 bytes, a typical JSON message


def _measure(make, n: int):
    """make() -> a callable-free 'connection' object that has exchanged one message each way."""
    keep = []
    gc.collect()
    tracemalloc.start()
    base_alloc = tracemalloc.get_traced_memory()[0]
    base_rss = _rss()
    for _ in range(n):
        keep.append(make())
    gc.collect()
    alloc = tracemalloc.get_traced_memory()[0] - base_alloc
    rss = _rss() - base_rss
    tracemalloc.stop()
    del keep
    gc.collect()
    return alloc / n, rss / n


def wsfast_maker(pmd, bits: int, mem_level: int, nct: bool):
    msg = _message()
    peer = pmd.PerMessageDeflate(
        local_max_window_bits=bits, local_no_context_takeover=nct, mem_level=mem_level
    )
    _, incoming = peer.encode(msg, True, True, True)

    def make():
        ext = pmd.PerMessageDeflate(
            local_no_context_takeover=nct,
            remote_no_context_takeover=nct,
            local_max_window_bits=bits,
            remote_max_window_bits=bits,
            mem_level=mem_level,
        )
        ext.encode(msg, True, True, True)
        assert ext.decode_start(0x40)
        got = ext.decode(incoming, 1 << 20) + ext.decode_end(1 << 20)
        assert got == msg
        return ext

    return make


def websockets_maker(bits: int, mem_level: int, nct: bool):
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Frame, Opcode

    OP_TEXT = Opcode.TEXT

    msg = _message()
    peer = PerMessageDeflate(nct, nct, max(bits, 9), max(bits, 9), {"memLevel": mem_level})
    incoming = peer.encode(Frame(OP_TEXT, msg)).data

    def make():
        ext = PerMessageDeflate(nct, nct, bits, max(bits, 9), {"memLevel": mem_level})
        ext.encode(Frame(OP_TEXT, msg))
        got = ext.decode(Frame(OP_TEXT, incoming, rsv1=True), max_size=1 << 20).data
        assert got == msg
        return ext

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="connections per setting")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()

    pmd, impl = _load_wsfast()
    try:
        import websockets

        ws_version = websockets.__version__
    except ImportError:
        ws_version = None

    _measure(wsfast_maker(pmd, 15, 8, False), args.n)  # warm up the allocator's arenas
    rows = []
    for nct in (False, True):
        for mem_level in (5, 8):
            for bits in range(8, 16):
                a, r = _measure(wsfast_maker(pmd, bits, mem_level, nct), args.n)
                row = {"bits": bits, "mem": mem_level, "nct": nct, "wsfast": (a, r), "websockets": None}
                if ws_version is not None and bits >= 9:
                    row["websockets"] = _measure(websockets_maker(bits, mem_level, nct), args.n)
                rows.append(row)

    print(f"# memory per idle compressed connection, n={args.n}, after one ~300-byte JSON message each way")
    print(f"# CPython {sys.version.split()[0]}, zlib {zlib.ZLIB_RUNTIME_VERSION}, wsfast Inflater: {impl}, "
          f"websockets {ws_version or 'not installed'}")
    print("# bits = window bits both ways; mem = memLevel; nct = no_context_takeover both ways;")
    print("# websockets' own defaults are bits=12 (server), mem=5, nct=no")
    print("# both Inflater builds allocate zlib's state and window through PyMem_RawCalloc: tracemalloc sees all")
    kib = lambda v: f"{v / 1024:7.1f}"  # noqa: E731
    if args.markdown:
        print("| bits | mem | nct | wsfast alloc KiB | wsfast rss KiB | websockets alloc KiB | websockets rss KiB |")
        print("|---:|---:|:---:|---:|---:|---:|---:|")
    else:
        print(f"{'bits':>4} {'mem':>3} {'nct':>3} | {'wsfast alloc':>12} {'rss':>7} | {'websockets alloc':>16} {'rss':>7}  (KiB)")
    for row in rows:
        wa, wr = row["wsfast"]
        if row["websockets"] is None:
            oa = orr = "      -"
        else:
            oa, orr = kib(row["websockets"][0]), kib(row["websockets"][1])
        nct = "yes" if row["nct"] else "no"
        if args.markdown:
            print(f"| {row['bits']} | {row['mem']} | {nct} | {kib(wa).strip()} | {kib(wr).strip()} | {oa.strip()} | {orr.strip()} |")
        else:
            print(f"{row['bits']:>4} {row['mem']:>3} {nct:>3} | {kib(wa):>12} {kib(wr)} | {oa:>16} {orr}")


if __name__ == "__main__":
    main()
