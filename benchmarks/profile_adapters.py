"""Interpreter work per message of an adapter, without the kernel: instructions and CPU per
round trip over a fake socket.

    python benchmarks/profile_adapters.py                 # CPU µs per round trip (noisy)
    python benchmarks/profile_adapters.py --callgrind     # instructions per round trip
    python benchmarks/profile_adapters.py --adapter loop --callgrind   # the loop's echo server
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

``--adapter loop``: a ``wsfast.loop`` echo server (the 10,000-connection benchmark's server)
accepts one raw client; then, on the loop thread, its connection's socket is replaced by a fake
whose ``recv`` returns one masked 32-byte client frame, and each round trip is one readiness
(``_Conn._ready``): the read, the engine, the handler's ``on_binary`` echoing with
``ws.send_binary``, the corked write. The selector's own ``epoll_wait`` is not in it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
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
MASK = b"\x01\x02\x03\x04"
CLIENT_FRAME = bytes([0x82, 0x80 | 32]) + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(MSG))


class FakeSocket:
    """Stands in for the client's socket once it is open."""

    def send(self, data: Any, flags: int = 0) -> int:
        return len(data)

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        return sum(len(b) for b in buffers)

    def recv(self, n: int, flags: int = 0) -> bytes:
        return FRAME

    def fileno(self) -> int:
        return -1


class FakeClientSocket(FakeSocket):
    """Stands in for the loop server's socket: each read is one masked client frame."""

    sent = 0

    def send(self, data: Any, flags: int = 0) -> int:
        self.sent += 1
        return len(data)

    def recv(self, n: int, flags: int = 0) -> bytes:
        return CLIENT_FRAME


def answer_upgrade(s: socket.socket) -> None:
    """The server side of the opening handshake, by hand."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    key = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", buf)
    assert key
    acc = base64.b64encode(hashlib.sha1(key.group(1) + GUID).digest())
    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")


def open_client() -> Any:
    from wsfast.sync import connect

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    box = {}

    def answer() -> None:
        s, _ = ls.accept()
        answer_upgrade(s)
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


def with_loop_server(work: Callable[[Callable[[int], None]], None]) -> None:
    """Call ``work(run)`` on the loop thread of a ``wsfast.loop`` echo server (see the module
    docstring), then leave the process (the connection's socket is a fake by then)."""
    from wsfast.handler import Handler
    from wsfast.loop import Loop
    from wsfast.loop._loop import _EVENT_READ

    def start(ws: Any) -> None:
        conn, fake = ws.transport, FakeClientSocket()
        conn.sock = fake

        def run(n: int) -> None:
            ready = conn._ready
            before = fake.sent
            for _ in range(n):
                ready(_EVENT_READ)
            if fake.sent - before != n:
                raise AssertionError(f"{fake.sent - before} echoes for {n} messages")

        try:
            work(run)
        finally:
            sys.stdout.flush()
            os._exit(0)

    class Echo(Handler):
        def on_open(self, ws: Any) -> None:
            loop.call_soon(start, ws)

        def on_binary(self, ws: Any, data: bytes) -> None:
            ws.send_binary(data)

    loop = Loop()
    listener = loop.listen("127.0.0.1", 0, Echo)
    client = socket.create_connection(("127.0.0.1", listener.port))
    client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    loop.run_forever()
    raise AssertionError("the loop returned before the measurement")


def with_run(adapter: str, work: Callable[[Callable[[int], None]], None]) -> None:
    """Build the round trip of ``adapter`` and call ``work`` with it."""
    if adapter == "loop":
        with_loop_server(work)
    else:
        work(round_trips(open_client()))


def calls_of_one(run: Callable[[int], None]) -> List[str]:
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


def callgrind(adapter: str, n: int) -> Tuple[int, int]:
    def ir(count: int) -> int:
        out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                              sys.executable, __file__, "--adapter", adapter, "--child", str(count)],
                             capture_output=True, text=True, check=True).stderr
        m = re.search(r"Collected : (\d+)", out)
        assert m, out[-2000:]
        return int(m.group(1))

    return ir(0), ir(n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", choices=("blocking", "loop"), default="blocking",
                    help="blocking: the wsfast.sync client (default); loop: the wsfast.loop echo server")
    ap.add_argument("-n", type=int, default=20000, help="round trips (default 20000)")
    ap.add_argument("--callgrind", action="store_true", help="instructions per round trip (needs valgrind)")
    ap.add_argument("--calls", action="store_true", help="list the calls of one round trip")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    from wsfast import _speedups

    if args.child is not None:  # one measured process of --callgrind
        count = args.child

        def measured(run: Callable[[int], None]) -> None:
            run(1000)
            run(count)

        with_run(args.adapter, measured)
        return 0
    build = (f"{args.adapter}; kernels {_speedups.IMPLEMENTATION}, parser {_speedups.PARSER_IMPLEMENTATION}, "
             f"engine and driver {_speedups.core_implementation()}")
    if args.callgrind:
        if not shutil.which("valgrind"):
            print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
            return 2
        base, total = callgrind(args.adapter, args.n)
        print(f"{(total - base) / args.n:,.0f} instructions per round trip ({build}; N={args.n})")
        return 0
    if args.calls:

        def list_calls(run: Callable[[int], None]) -> None:
            calls = calls_of_one(run)
            print("\n".join(calls))
            py = sum(1 for c in calls if not c.startswith("C:"))
            print(f"{len(calls)} calls per round trip: {py} Python, {len(calls) - py} C ({build})")

        with_run(args.adapter, list_calls)
        return 0

    def cpu(run: Callable[[int], None]) -> None:
        best = float("inf")
        for _ in range(5):
            run(1000)
            t0 = time.process_time()
            run(args.n)
            best = min(best, (time.process_time() - t0) / args.n)
        print(f"{best * 1e6:.2f} µs CPU per round trip, best of 5 ({build}; N={args.n})")

    with_run(args.adapter, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
