"""Interpreter work per message of the blocking client, without the kernel: instructions and
CPU per round trip over a fake socket.

    python benchmarks/profile_adapters.py                 # CPU µs per round trip (noisy)
    python benchmarks/profile_adapters.py --callgrind     # instructions per round trip
    WSFAST_NO_EXTENSIONS=1 python benchmarks/profile_adapters.py --calls   # the calls of one
                                                          # round trip (pure build: compiled
                                                          # code makes no profile events)

A ``wsfast.sync`` client connects to a raw socket server in this process (a hand-made 101),
then its socket is replaced by a fake whose ``send`` accepts everything and whose ``recv``
returns one 34-byte server frame (a 32-byte binary message), so each ``send(msg); recv()``
runs the whole adapter and engine path with no system call. ``--callgrind`` runs this script
twice under ``valgrind --tool=callgrind`` (0 and N round trips) and prints
(Ir(N) - Ir(0)) / N: a count that does not depend on the machine's load, to compare commits
(the instruction count is not a time; syscalls and cache misses are not in it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, List, Tuple

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MSG = b"x" * 32
FRAME = bytes([0x82, 32]) + MSG


class FakeSocket:
    """Stands in for the client's socket once it is open."""

    def send(self, data: Any, flags: int = 0) -> int:
        return len(data)

    def recv(self, n: int, flags: int = 0) -> bytes:
        return FRAME

    def fileno(self) -> int:
        return -1


def open_client() -> Any:
    from wsfast.sync import connect

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    box = {}

    def answer() -> None:
        s, _ = ls.accept()
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        key = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", buf)
        assert key
        acc = base64.b64encode(hashlib.sha1(key.group(1) + GUID).digest())
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
        box["s"] = s

    t = threading.Thread(target=answer)
    t.start()
    ws = connect(f"ws://127.0.0.1:{ls.getsockname()[1]}/", compression=None, ping_interval=None)
    t.join()
    ws._ws.transport.sock = FakeSocket()
    ws._keep = (ls, box["s"])  # the real sockets stay open
    return ws


def round_trips(ws: Any) -> Callable[[int], None]:
    send, recv = ws.send, ws.recv

    def run(n: int) -> None:
        for _ in range(n):
            send(MSG)
            if recv() != MSG:
                raise AssertionError("wrong echo")

    return run


def calls_of_one(ws: Any) -> List[str]:
    run = round_trips(ws)
    run(100)
    calls: List[str] = []

    def prof(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}")
        elif event == "c_call":
            calls.append(f"C:{getattr(arg, '__qualname__', arg)}")

    sys.setprofile(prof)
    run(1)
    sys.setprofile(None)
    return calls[:-1]  # the setprofile call itself


def callgrind(n: int) -> Tuple[int, int]:
    def ir(count: int) -> int:
        out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                              sys.executable, __file__, "--child", str(count)],
                             capture_output=True, text=True, check=True).stderr
        m = re.search(r"Collected : (\d+)", out)
        assert m, out[-2000:]
        return int(m.group(1))

    return ir(0), ir(n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20000, help="round trips (default 20000)")
    ap.add_argument("--callgrind", action="store_true", help="instructions per round trip (needs valgrind)")
    ap.add_argument("--calls", action="store_true", help="list the calls of one round trip")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    from wsfast import _speedups

    if args.child is not None:  # one measured process of --callgrind
        ws = open_client()
        run = round_trips(ws)
        run(1000)
        run(args.child)
        return 0
    build = (f"kernels {_speedups.IMPLEMENTATION}, parser {_speedups.PARSER_IMPLEMENTATION}, "
             f"engine and driver {_speedups.core_implementation()}")
    if args.callgrind:
        if not shutil.which("valgrind"):
            print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
            return 2
        base, total = callgrind(args.n)
        print(f"{(total - base) / args.n:,.0f} instructions per round trip ({build}; N={args.n})")
        return 0
    ws = open_client()
    if args.calls:
        calls = calls_of_one(ws)
        print("\n".join(calls))
        py = sum(1 for c in calls if not c.startswith("C:"))
        print(f"{len(calls)} calls per round trip: {py} Python, {len(calls) - py} C ({build})")
        return 0
    run = round_trips(ws)
    best = float("inf")
    for _ in range(5):
        run(1000)
        t0 = time.process_time()
        run(args.n)
        best = min(best, (time.process_time() - t0) / args.n)
    print(f"{best * 1e6:.2f} µs CPU per round trip, best of 5 ({build}; N={args.n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
