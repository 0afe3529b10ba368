#!/usr/bin/env python
"""Run one engine benchmark for one implementation in a loop, for a profiler to watch.

    python benchmarks/profile_engine.py [CASE] [--impl wsfast] [--seconds 10] [--cprofile]

CASE is ``parse-small`` (default), ``parse-big``, ``serialize`` or ``deflate``. Same
workloads and setup as ``run.py``'s engine/deflate groups. Typical use::

    py-spy record -o /tmp/parse.svg --native -- python benchmarks/profile_engine.py parse-small
    py-spy top --native -- python benchmarks/profile_engine.py parse-small
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python benchmarks/profile_engine.py deflate --impl wsfast --ops 2   # and --ops 0
    python benchmarks/profile_engine.py parse-small --cprofile      # Python-level callers only

(``--native`` is what shows time inside the compiled parser and kernels; cProfile does not
see into Cython code.) ``WSFAST_NO_EXTENSIONS=1`` profiles the pure-Python twins.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

CASES = {
    "parse-small": "parse 16 B text (server)",
    "parse-big": "parse 1 MiB binary (server)",
    "serialize": "serialize 16 B text (client)",
    "deflate": "round trip 1 KiB JSON, compressed",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", nargs="?", default="parse-small", choices=sorted(CASES))
    ap.add_argument("--impl", default="wsfast", help="wsfast, websockets, aiohttp, wsproto")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--ops", type=int, default=None,
                    help="run exactly this many operations instead (for instruction counts, see the README)")
    ap.add_argument("--cprofile", action="store_true", help="run under cProfile and print the top functions")
    ap.add_argument("--gc", action="store_true",
                    help="keep the garbage collector on (run.py times with it off, like this script by default)")
    args = ap.parse_args()

    from _bench import Registry

    reg = Registry()
    if args.case == "deflate":
        import _deflate

        _deflate.register(reg, quick=False)
    else:
        import _engine

        _engine.register(reg, quick=False)
    (case,) = [c for c in reg.cases if c.name == CASES[args.case]]
    run = case.impls[args.impl]()

    def loop():
        if args.ops is not None:
            run(args.ops)
            return args.ops
        ops = 0
        end = time.perf_counter() + args.seconds
        while time.perf_counter() < end:
            run(1)
            ops += 1
        return ops

    if not args.gc:
        gc.disable()
    t0 = time.perf_counter()
    if args.cprofile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        ops = prof.runcall(loop)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    else:
        ops = loop()
    dt = time.perf_counter() - t0
    print(f"{args.impl} {case.name}: {ops} ops in {dt:.1f} s, "
          f"{case.work * ops / dt:,.1f} {case.unit}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
