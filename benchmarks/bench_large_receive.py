"""Large messages into a server over loopback TCP: receiver CPU per GiB, against the socket floor.

    python benchmarks/bench_large_receive.py              # ~1 min: 1 MiB messages, 5 rounds
    python benchmarks/bench_large_receive.py --quick      # a few seconds, proves it runs
    python benchmarks/bench_large_receive.py --size 4194304 --count 100

A sender process streams ``--count`` masked binary frames of ``--size`` bytes (prebuilt, one
``sendall`` each) to a server in another process, which takes each message as an object it
could keep. Measured in the server process, from its first message to its last: CPU time
(``time.process_time``: every thread of the server process, not the sender's) and wall time.

Receivers (each in a fresh process; rounds interleaved, every receiver once per round):

* ``recv_into``: the floor. A plain socket read with ``recv_into`` into one reused buffer: the
  kernel's copy and nothing else (no WebSocket, no message objects).
* ``wsfast-sync``, ``wsfast-loop``, ``wsfast-asyncio``: ``wsfast.sync.serve`` (``for message
  in ws``), the ``wsfast.loop`` selector loop and ``wsfast.asyncio.serve_handler`` (handler
  callbacks), without compression. They read large payloads straight into the message object
  (the zero-copy receive path of issue 16).
* ``picows`` (on uvloop when installed) and ``picows-asyncio``: a ``WSListener`` that takes
  ``frame.get_payload_as_bytes()`` (picows hands out a view of its read buffer; the copy
  makes it a message the application can keep, as the others give).
* ``websockets``: ``websockets.asyncio.server.serve``, ``async for message in ws``.

The report gives the median of the rounds (min-max), each receiver's CPU per GiB as a
fraction of the floor's (floor ÷ receiver: 1.0 would be as cheap as a bare socket read), and
wsfast ÷ each peer within rounds. Also in the same run: ``memcpy`` of a 1 MiB ``bytes`` in
this process, the number issue 16 states its target against. Loopback TCP costs far more than
a memcpy (the kernel copies into and out of socket buffers and runs the TCP stack), so the
floor here is ``recv_into``; the engine-level comparison with memcpy is in
``benchmarks/run.py`` ("zero-copy receive 1 MiB").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import timeit
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from _engine import client_frame  # noqa: E402

RECEIVERS = ["recv_into", "wsfast-sync", "wsfast-loop", "wsfast-asyncio", "picows", "picows-asyncio", "websockets"]


def handshake(sock: socket.socket) -> None:
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        got = sock.recv(4096)
        if not got:
            raise ConnectionError("server closed during the handshake")
        head += got
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0].decode())


def sender(port: int, size: int, count: int, websocket: bool) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    if websocket:
        handshake(sock)
    frame = client_frame(0x2, os.urandom(size), os.urandom(4))
    if not websocket:
        frame = frame[: size]  # the floor reads the same number of bytes per message
    for _ in range(count):
        sock.sendall(frame)
    try:
        sock.settimeout(30)
        sock.recv(1)  # until the server is done (it closes, or the test process exits)
    except OSError:
        pass
    sock.close()


class Meter:
    """Counts messages; CPU and wall time from the first to the last."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.n = 0
        self.t0 = self.w0 = 0.0
        self.result: Optional[Dict[str, float]] = None
        self.done = threading.Event()

    def message(self, size: int, expected: int) -> None:
        if size != expected:
            raise AssertionError(f"message of {size} bytes, expected {expected}")
        self.n += 1
        if self.n == 1:
            self.t0, self.w0 = time.process_time(), time.perf_counter()
        elif self.n == self.count:
            self.result = {"cpu": time.process_time() - self.t0, "wall": time.perf_counter() - self.w0}
            self.done.set()


def serve_one(name: str, size: int, count: int) -> Dict[str, float]:
    meter = Meter(count)
    start_sender = functools.partial(_start_sender, size=size, count=count, websocket=name != "recv_into")

    if name == "recv_into":
        lst = socket.create_server(("127.0.0.1", 0))
        proc = start_sender(lst.getsockname()[1])
        conn, _ = lst.accept()
        buf = memoryview(bytearray(size))
        for _ in range(count):
            got = 0
            while got < size:
                n = conn.recv_into(buf[got:])
                if not n:
                    raise ConnectionError("sender closed early")
                got += n
            meter.message(got, size)
        conn.close()
        lst.close()
    elif name == "wsfast-sync":
        from wsfast.sync import serve

        def app(ws: Any) -> None:
            for m in ws:
                meter.message(len(m), size)

        srv = serve(app, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        proc = start_sender(srv.port)
        meter.done.wait(300)
    elif name == "wsfast-loop":
        from wsfast.handler import Handler
        from wsfast.loop import Loop

        class Count(Handler):
            def on_binary(self, ws: Any, data: Any) -> None:
                meter.message(len(data), size)

        loop = Loop()
        port = loop.listen("127.0.0.1", 0, Count, compression=None, max_size=None, ping_interval=None).port
        threading.Thread(target=loop.run, daemon=True).start()
        proc = start_sender(port)
        meter.done.wait(300)
    elif name in ("wsfast-asyncio", "picows", "picows-asyncio", "websockets"):
        if name == "picows":
            try:
                import uvloop
            except ImportError:
                pass
            else:
                asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        proc = None

        async def main() -> Any:
            nonlocal proc
            if name == "wsfast-asyncio":
                from wsfast.asyncio import serve_handler
                from wsfast.handler import Handler

                class Count(Handler):
                    def on_binary(self, ws: Any, data: Any) -> None:
                        meter.message(len(data), size)

                srv = await serve_handler(Count, "127.0.0.1", 0, compression=None, max_size=None,
                                          ping_interval=None)
                port = srv.port
            elif name.startswith("picows"):
                import picows

                class Listener(picows.WSListener):
                    def on_ws_frame(self, transport: Any, frame: Any) -> None:
                        if frame.msg_type == picows.WSMsgType.BINARY:
                            meter.message(len(frame.get_payload_as_bytes()), size)

                srv = await picows.ws_create_server(lambda request: Listener(), "127.0.0.1", 0,
                                                    max_frame_size=size + 64)
                port = srv.sockets[0].getsockname()[1]
            else:
                from websockets.asyncio.server import serve as ws_serve

                async def handler(ws: Any) -> None:
                    async for m in ws:
                        meter.message(len(m), size)

                srv = await ws_serve(handler, "127.0.0.1", 0, compression=None, max_size=None,
                                     ping_interval=None)
                port = srv.sockets[0].getsockname()[1]
            proc = start_sender(port)
            while not meter.done.is_set():
                await asyncio.sleep(0.01)
            srv.close()

        asyncio.run(main())
    else:
        raise SystemExit(f"unknown receiver {name}")
    if proc is not None:
        proc.kill()
        proc.join()
    if meter.result is None:
        raise SystemExit(f"{name}: only {meter.n} of {count} messages arrived")
    return meter.result


def _start_sender(port: int, size: int, count: int, websocket: bool) -> Any:
    proc = mp.get_context("fork").Process(target=sender, args=(port, size, count, websocket), daemon=True)
    proc.start()
    return proc


def available(name: str) -> Optional[str]:
    """None if ``name`` can run here, else why not."""
    mod = {"picows": "picows", "picows-asyncio": "picows", "websockets": "websockets.asyncio.server"}.get(name)
    if mod is None:
        return None
    try:
        __import__(mod)
    except ImportError as exc:
        return str(exc)
    return None


def memcpy_gib_s(size: int) -> float:
    """CPU seconds per GiB of ``bytes(bytearray)`` copies of ``size`` bytes (hot buffer)."""
    src = bytearray(os.urandom(size))
    loops = max(1, (64 << 20) // size)
    best = min(timeit.repeat(lambda: bytes(src), number=loops, repeat=5, timer=time.process_time))
    return best / loops / size * (1 << 30)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1 << 20, help="message size in bytes (default 1 MiB)")
    ap.add_argument("--count", type=int, help="messages per run (default 400; quick 20)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 1)")
    ap.add_argument("--only", help="comma-separated receivers among " + ", ".join(RECEIVERS))
    ap.add_argument("--quick", action="store_true", help="tiny runs: proves it works, numbers meaningless")
    ap.add_argument("--json", metavar="PATH", help="write the raw results as JSON")
    ap.add_argument("--_one", metavar="NAME", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    count = args.count or (20 if args.quick else 400)
    rounds = args.rounds or (1 if args.quick else 5)
    if args._one:
        print(json.dumps(serve_one(args._one, args.size, count)))
        return 0

    names = [n.strip() for n in args.only.split(",")] if args.only else list(RECEIVERS)
    skipped = {}
    for n in list(names):
        why = available(n)
        if why:
            skipped[n] = why
            names.remove(n)
    gib = (count - 1) * args.size / (1 << 30)  # the first message starts the clocks
    runs: Dict[str, List[Dict[str, float]]] = {n: [] for n in names}
    failed: Dict[str, str] = {}
    started = time.perf_counter()
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            if n in failed:
                continue
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--_one", n, "--size", str(args.size),
                                   "--count", str(count)], capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                failed[n] = (proc.stderr.strip() or proc.stdout.strip())[-400:]
                print(f"{n}: failed: {failed[n]}", file=sys.stderr)
                continue
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[n].append({"cpu": res["cpu"] / gib, "wall": res["wall"] / gib})
            print(f"round {r + 1}/{rounds} {n}: {res['cpu'] / gib:.3f} CPU s/GiB, "
                  f"{gib / res['wall']:.2f} GiB/s", file=sys.stderr)
    memcpy = memcpy_gib_s(args.size)

    def med(n: str, k: str = "cpu") -> float:
        return statistics.median(x[k] for x in runs[n])

    ok = [n for n in names if runs[n]]
    floor = med("recv_into") if "recv_into" in ok else None
    print(f"### Large messages into a server: {args.size} B binary, {count} per run, {rounds} rounds "
          f"({time.perf_counter() - started:.0f} s)\n")
    print("| receiver | CPU s/GiB, median (min–max) | GiB/s (wall) | floor ÷ receiver |")
    print("|:---|---:|---:|---:|")
    for n in ok:
        cpus = [x["cpu"] for x in runs[n]]
        frac = f"{floor / med(n):.2f}" if floor else "—"
        print(f"| {n} | {med(n):.3f} ({min(cpus):.3f}–{max(cpus):.3f}) | {1 / med(n, 'wall'):.2f} | {frac} |")
    print(f"\nmemcpy of {args.size} B (hot, in this process): {memcpy:.3f} CPU s/GiB "
          f"({1 / memcpy:.1f} GiB/s).")
    peers = [n for n in ok if not n.startswith("wsfast") and n != "recv_into"]
    mine = [n for n in ok if n.startswith("wsfast")]
    if peers and mine and rounds > 0:
        print("\nwsfast ÷ peer (CPU per GiB, ratio per round, median (min–max)):\n")
        print("| wsfast | " + " | ".join(peers) + " |")
        print("|:---|" + "---:|" * len(peers))
        for m in mine:
            cells = []
            for p in peers:
                k = min(len(runs[m]), len(runs[p]))
                ratios = [runs[p][i]["cpu"] / runs[m][i]["cpu"] for i in range(k)]
                cells.append(f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})" if ratios else "—")
            print(f"| {m} | " + " | ".join(cells) + " |")
    for n, why in skipped.items():
        print(f"\n- {n}: skipped ({why})")
    for n, why in failed.items():
        print(f"\n- {n}: FAILED ({why})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": args.size, "count": count, "rounds": rounds, "runs": runs, "memcpy_s_per_gib": memcpy,
                       "skipped": skipped, "failed": failed}, f, indent=1)
    return 1 if any(n.startswith("wsfast") for n in failed) else 0


if __name__ == "__main__":
    sys.exit(main())
