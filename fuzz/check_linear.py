"""Linear-time and bounded-memory check (not a unit test: it times things).

Feeds 1 MB and then 10 MB of tiny masked frames (and, separately, compressed tiny messages) to a
server engine in 64 KiB reads, taking the events, and compares the times: a linear engine takes
~10x as long for 10x the bytes. Exits 1 if the ratio exceeds --max-ratio (default 15) or if the
traced memory peak of the 10 MB run exceeds --max-peak-mb (default 16: a small multiple of the
1 MiB default message limit). Run it on both builds:

    python fuzz/check_linear.py && WSFAST_NO_EXTENSIONS=1 python fuzz/check_linear.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

import wsfast._speedups as speedups  # noqa: E402


def stream(total: int, deflate: bool) -> bytes:
    """About ``total`` bytes of tiny client frames (masked, as a client sends them)."""
    client, _ = harness.pair({}, deflate)
    client.data_to_send()
    # Compressed: 40-byte payloads (over the 32-byte threshold) that deflate to a few bytes.
    payload = b"ab" * 20 if deflate else b"ab"
    for _ in range(4096):
        client.send_binary(payload)
    block = b"".join(client.data_to_send())
    reps = max(1, total // len(block))
    if deflate:
        # Compressed frames depend on the context: generate them all.
        parts = [block]
        for _ in range(reps - 1):
            for _ in range(4096):
                client.send_binary(payload)
            parts.append(b"".join(client.data_to_send()))
        return b"".join(parts)
    return block * reps  # masked with fresh keys per frame: repeating a block stays valid


def run(data: bytes, deflate: bool, trace: bool) -> tuple[float, int, int]:
    """Seconds to parse ``data``, messages seen, traced peak bytes (0 when not traced)."""
    _, server = harness.pair({}, deflate)
    n = 0
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    for i in range(0, len(data), 65536):
        server.receive_data(data[i : i + 65536])
        for _ev in server.events():
            n += 1
        server.data_to_send()
    dt = time.perf_counter() - t0
    peak = 0
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if server.failure is not None:
        raise SystemExit(f"valid stream failed: {server.failure!r}")
    return dt, n, peak


def main() -> int:
    """Measure, print, compare."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-ratio", type=float, default=15.0)
    ap.add_argument("--max-peak-mb", type=float, default=16.0)
    args = ap.parse_args()
    ok = True
    print(f"build: kernels {speedups.IMPLEMENTATION}, parser {speedups.PARSER_IMPLEMENTATION}")
    for deflate in (False, True):
        small, big = stream(1_000_000, deflate), stream(10_000_000, deflate)
        t1, n1, _ = run(small, deflate, False)
        t10, n10, _ = run(big, deflate, False)
        _, _, peak = run(big, deflate, True)
        ratio = t10 / t1
        label = "deflate" if deflate else "plain"
        print(
            f"{label:8} 1 MB: {t1:.3f}s ({n1} msgs)  10 MB: {t10:.3f}s ({n10} msgs)  "
            f"ratio {ratio:.1f}  traced peak (10 MB) {peak / 1e6:.1f} MB"
        )
        if ratio > args.max_ratio or peak > args.max_peak_mb * 1e6:
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
