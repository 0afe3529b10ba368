"""Memory per idle permessage-deflate connection: wsfast (on each deflate backend) vs websockets.

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

wsfast is measured on each deflate backend that is importable (zlib: ``wsfast._inflate`` or
its twin; zlib-ng: ``wsfast._inflate_ng`` or the twin on the `zlib-ng` package), by giving
the extension objects that backend's ``Inflater`` and ``Deflater`` while they are built.

Run: ``python benchmarks/bench_pmd_memory.py [-n 1000] [--markdown] [--bits 9,12,15]``.
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
    """Import wsfast.permessage_deflate; say which kernel build is measured."""
    try:
        from wsfast import permessage_deflate as pmd
        from wsfast._speedups import IMPLEMENTATION
    except ImportError as exc:  # a kernel is not built / not written yet
        sys.exit(f"cannot import wsfast kernels ({exc}); build them first")
    return pmd, IMPLEMENTATION


def _backends(impl: str) -> dict:
    """backend name -> (Inflater, Deflater, description), for each importable backend."""
    out = {}
    if impl == "cython":
        from wsfast import _inflate

        out["zlib"] = (_inflate.Inflater, _inflate.Deflater, f"compiled, zlib {_inflate.LIBRARY_VERSION}")
        try:
            from wsfast import _inflate_ng

            out["zlib-ng"] = (_inflate_ng.Inflater, _inflate_ng.Deflater,
                              f"compiled, zlib-ng {_inflate_ng.LIBRARY_VERSION}")
        except ImportError:
            pass
    else:
        from wsfast import _inflate_py

        out["zlib"] = (_inflate_py.Inflater, _inflate_py.Deflater, f"python, zlib {_inflate_py.LIBRARY_VERSION}")
    if "zlib-ng" not in out:
        try:
            from wsfast._inflate_py import zlib_ng_classes

            inflater, deflater, version = zlib_ng_classes()
            out["zlib-ng"] = (inflater, deflater, f"python on the zlib-ng package, zlib-ng {version}")
        except ImportError:
            pass
    return out


class _Backend:
    """Give pmd a backend's classes while the measured objects are built."""

    def __init__(self, pmd, classes) -> None:
        self.pmd, self.classes = pmd, classes

    def __enter__(self) -> None:
        self.saved = self.pmd.Inflater, self.pmd.Deflater
        self.pmd.Inflater, self.pmd.Deflater = self.classes[0], self.classes[1]

    def __exit__(self, *exc) -> None:
        self.pmd.Inflater, self.pmd.Deflater = self.saved


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
    parser.add_argument("--bits", help="comma-separated window bits (default 8-15)")
    parser.add_argument("--mem", default="5,8", help="comma-separated memLevels (default 5,8)")
    args = parser.parse_args()

    pmd, impl = _load_wsfast()
    try:
        import websockets

        ws_version = websockets.__version__
    except ImportError:
        ws_version = None

    backends = _backends(impl)
    bits_list = [int(b) for b in args.bits.split(",")] if args.bits else list(range(8, 16))
    mem_list = [int(m) for m in args.mem.split(",")]
    with _Backend(pmd, backends["zlib"]):
        _measure(wsfast_maker(pmd, 15, 8, False), args.n)  # warm up the allocator's arenas
    rows = []
    for nct in (False, True):
        for mem_level in mem_list:
            for bits in bits_list:
                row = {"bits": bits, "mem": mem_level, "nct": nct, "websockets": None}
                for name, classes in backends.items():
                    with _Backend(pmd, classes):
                        row[name] = _measure(wsfast_maker(pmd, bits, mem_level, nct), args.n)
                if ws_version is not None and bits >= 9:
                    row["websockets"] = _measure(websockets_maker(bits, mem_level, nct), args.n)
                rows.append(row)

    print(f"# memory per idle compressed connection, n={args.n}, after one ~300-byte JSON message each way")
    print(f"# CPython {sys.version.split()[0]}, websockets {ws_version or 'not installed'} (zlib "
          f"{zlib.ZLIB_RUNTIME_VERSION}); wsfast backends: "
          + "; ".join(f"{k} = {v[2]}" for k, v in backends.items()))
    print("# bits = window bits both ways; mem = memLevel; nct = no_context_takeover both ways;")
    print("# websockets' own defaults are bits=12 (server), mem=5, nct=no")
    print("# the compiled kernels allocate the library's state and window through PyMem_RawCalloc, and")
    print("# CPython's zlib and the zlib-ng package through PyMem_RawMalloc: tracemalloc sees all")
    kib = lambda v: f"{v / 1024:.1f}"  # noqa: E731
    names = list(backends) + ["websockets"]
    cols = [f"{n} alloc KiB" for n in names] + [f"{n} rss KiB" for n in names]
    if args.markdown:
        print("| bits | mem | nct | " + " | ".join(cols) + " |")
        print("|---:|---:|:---:|" + "---:|" * len(cols))
    else:
        print(f"{'bits':>4} {'mem':>3} {'nct':>3} | " + " ".join(f"{c:>21}" for c in cols))
    for row in rows:
        vals = [row[n] for n in names]
        cells = [kib(v[0]) if v else "-" for v in vals] + [kib(v[1]) if v else "-" for v in vals]
        nct = "yes" if row["nct"] else "no"
        if args.markdown:
            print(f"| {row['bits']} | {row['mem']} | {nct} | " + " | ".join(cells) + " |")
        else:
            print(f"{row['bits']:>4} {row['mem']:>3} {nct:>3} | " + " ".join(f"{c:>21}" for c in cells))


if __name__ == "__main__":
    main()
