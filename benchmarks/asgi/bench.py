"""ASGI and asyncio WebSocket benchmarks: ratios, medians of a few repeats, one client.

    python benchmarks/asgi/bench.py asgi      # uvicorn --ws wsfast vs websockets-sansio vs wsproto
    python benchmarks/asgi/bench.py asyncio   # wsfast.asyncio client<->server vs picows
    python benchmarks/asgi/bench.py all --seconds 5 --repeats 5    # a longer run
    python benchmarks/asgi/bench.py asgi --ws old=mod:Class     # one more --ws, same run
    python benchmarks/asgi/bench.py asgi --only wsfast --only websockets-sansio

``asgi``: the echo app (benchmarks/asgi/app.py) under uvicorn in a subprocess with each
``--ws``; the client is the wsfast asyncio callback face (the same for all). Measured:
echo throughput with ``--window`` small messages in flight, p50/p99 round-trip latency
of one message at a time, and the server's RSS per idle connection with compression on
(``--idle`` connections opened, RSS before/after from /proc).

``asyncio``: an echo server in a subprocess (wsfast.asyncio ``serve_handler`` or picows
``ws_create_server``) and the matching client in this process, one message at a time
(round trips per second = 1/latency), 32 B and 64 KiB binary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
PY = sys.executable
WS_IMPLS = {
    "wsfast": "wsfast.uvicorn:WSFastProtocol",
    "websockets-sansio": "websockets-sansio",
    "wsproto": "wsproto",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Proc:
    def __init__(self, argv: List[str]) -> None:
        self.p = subprocess.Popen(argv, cwd=HERE.parent.parent, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)


# ------------------------------------------------------------------------------ wsfast client

async def wsfast_client_run(
    url: str, size: int, seconds: float, window: int, compression: Any
) -> Tuple[float, List[float]]:
    """(messages per second with ``window`` in flight, per-message RTTs with one in flight)."""
    from wsfast.asyncio import open_handler
    from wsfast.handler import Handler, WebSocket

    loop = asyncio.get_running_loop()
    payload = os.urandom(size)

    class Client(Handler):
        def __init__(self) -> None:
            self.opened: asyncio.Future[None] = loop.create_future()
            self.mode = "tp"
            self.count = 0
            self.t0 = 0.0
            self.deadline = 0.0
            self.rtts: List[float] = []
            self.done: asyncio.Future[None] = loop.create_future()

        def on_open(self, ws: WebSocket) -> None:
            self.opened.set_result(None)

        def on_binary(self, ws: WebSocket, data: bytes) -> None:
            now = time.perf_counter()
            if self.mode == "tp":
                self.count += 1
                if now < self.deadline:
                    ws.send_binary(payload)
                elif self.count >= self.sent_total():
                    self.done.set_result(None)
            else:
                self.rtts.append(now - self.t0)
                if now < self.deadline:
                    self.t0 = time.perf_counter()
                    ws.send_binary(payload)
                else:
                    self.done.set_result(None)

        def sent_total(self) -> int:
            return ws_.messages_sent

    h = Client()
    ws_ = await open_handler(url, h, compression=compression, ping_interval=None)
    await h.opened
    # throughput
    start = time.perf_counter()
    h.deadline = start + seconds
    for _ in range(window):
        ws_.send_binary(payload)
    await h.done
    tp = h.count / (time.perf_counter() - start)
    # latency
    h.mode = "lat"
    h.done = loop.create_future()
    h.deadline = time.perf_counter() + seconds
    h.t0 = time.perf_counter()
    ws_.send_binary(payload)
    await h.done
    ws_.close()
    await asyncio.sleep(0.05)
    return tp, h.rtts


async def idle_connections(url: str, n: int) -> List[Any]:
    from wsfast.asyncio import connect

    conns = []
    for _ in range(n):
        conns.append(await connect(url, ping_interval=None, compression="deflate"))
    return conns


async def idle_rss(url: str, n: int, pid: int) -> int:
    """Open ``n`` idle connections, then the server's RSS (KiB)."""
    conns = await idle_connections(url, n)
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    for c in conns:
        c.abort()
    return after


# ------------------------------------------------------------------------------ picows

async def picows_client_run(url: str, size: int, seconds: float) -> List[float]:
    from picows import WSListener, WSMsgType, ws_connect

    loop = asyncio.get_running_loop()
    payload = os.urandom(size)
    done: asyncio.Future[None] = loop.create_future()
    rtts: List[float] = []

    class L(WSListener):
        def on_ws_connected(self, t: Any) -> None:
            self.t = t
            self.deadline = time.perf_counter() + seconds
            self.t0 = time.perf_counter()
            t.send(WSMsgType.BINARY, payload)

        def on_ws_frame(self, t: Any, frame: Any) -> None:
            if frame.msg_type != WSMsgType.BINARY:
                return
            now = time.perf_counter()
            rtts.append(now - self.t0)
            if now < self.deadline:
                self.t0 = time.perf_counter()
                t.send(WSMsgType.BINARY, payload)
            elif not done.done():
                done.set_result(None)

    transport, _listener = await ws_connect(L, url, max_frame_size=1 << 24)
    await done
    transport.disconnect()
    return rtts


# ------------------------------------------------------------------------------ runs

def pct(xs: List[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(int(len(xs) * p), len(xs) - 1)]


def spread(values: List[float]) -> str:
    m = statistics.median(values)
    return f"{m:,.0f} [{min(values):,.0f}-{max(values):,.0f}]"


def run_asgi(args: argparse.Namespace) -> None:
    rows: Dict[str, Dict[str, List[float]]] = {}
    impls = dict(WS_IMPLS)
    for spec in args.ws:
        name, _, target = spec.partition("=")
        impls[name] = target
    if args.only:
        impls = {k: v for k, v in impls.items() if k in args.only or k == "websockets-sansio"}
    # Interleaved (one repeat of each in turn), so drifting load hits all alike.
    for name in impls:
        rows[name] = {"tp": [], "p50": [], "p99": [], "idle": []}
    for _ in range(args.repeats):
        for name, ws in impls.items():
            port = free_port()
            srv = Proc([PY, "-m", "uvicorn", "--app-dir", str(HERE), "app:app", "--port", str(port),
                        "--ws", ws, "--log-level", "warning", "--ws-ping-interval", "0", "--no-access-log"])
            try:
                wait_port(port)
                url = f"ws://127.0.0.1:{port}/"
                tp, rtts = asyncio.run(wsfast_client_run(url, args.size, args.seconds, args.window, None))
                rows[name]["tp"].append(tp)
                rows[name]["p50"].append(pct(rtts, 0.5) * 1e6)
                rows[name]["p99"].append(pct(rtts, 0.99) * 1e6)
                before = rss_kib(srv.p.pid)

                after = asyncio.run(idle_rss(url, args.idle, srv.p.pid))
                rows[name]["idle"].append((after - before) / args.idle)
            finally:
                srv.stop()
    base = statistics.median(rows["websockets-sansio"]["tp"])
    print(f"\nASGI echo under uvicorn, {args.size} B binary, window {args.window}, {args.seconds}s x {args.repeats}"
          f" (median [min-max]); idle memory: {args.idle} connections, permessage-deflate on")
    print(f"{'--ws':<20}{'msgs/s':>26}{'x default':>10}{'p50 us':>22}{'p99 us':>22}{'KiB/idle conn':>18}")
    for name, r in rows.items():
        print(f"{name:<20}{spread(r['tp']):>26}{statistics.median(r['tp']) / base:>10.2f}"
              f"{spread(r['p50']):>22}{spread(r['p99']):>22}{statistics.median(r['idle']):>18.1f}")


def run_asyncio(args: argparse.Namespace) -> None:
    results: Dict[Tuple[str, int], Dict[str, List[float]]] = {}
    for impl in ("wsfast", "picows"):
        for size in (32, 64 * 1024):
            r = results[(impl, size)] = {"rt": [], "p50": [], "p99": []}
            for _ in range(args.repeats):
                port = free_port()
                srv = Proc([PY, str(HERE / "echo_server.py"), impl, str(port)])
                try:
                    wait_port(port)
                    url = f"ws://127.0.0.1:{port}/"
                    if impl == "wsfast":
                        _tp, rtts = asyncio.run(wsfast_client_run(url, size, args.seconds, 1, None))
                    else:
                        rtts = asyncio.run(picows_client_run(url, size, args.seconds * 2))
                    r["rt"].append(len(rtts) / sum(rtts))
                    r["p50"].append(pct(rtts, 0.5) * 1e6)
                    r["p99"].append(pct(rtts, 0.99) * 1e6)
                finally:
                    srv.stop()
    print(f"\nasyncio client<->server echo, one message in flight, {args.seconds}s x {args.repeats}")
    print(f"{'impl':<10}{'size':>8}{'round trips/s':>26}{'x picows':>10}{'p50 us':>22}{'p99 us':>22}")
    for (impl, size), r in results.items():
        base = statistics.median(results[("picows", size)]["rt"])
        print(f"{impl:<10}{size:>8}{spread(r['rt']):>26}{statistics.median(r['rt']) / base:>10.2f}"
              f"{spread(r['p50']):>22}{spread(r['p99']):>22}")


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["asgi", "asyncio", "all"])
    ap.add_argument("--seconds", type=float, default=1.5, help="seconds per measurement (default 1.5)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=32, help="asgi: message size")
    ap.add_argument("--window", type=int, default=64, help="asgi: messages in flight for throughput")
    ap.add_argument("--idle", type=int, default=200, help="asgi: idle connections for the memory figure")
    ap.add_argument("--ws", action="append", default=[], metavar="NAME=IMPORT",
                    help="asgi: one more --ws for uvicorn (repeatable), e.g. old=mymod:Class")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="asgi: measure only these (repeatable; websockets-sansio always runs)")
    args = ap.parse_args(argv)
    if args.part in ("asgi", "all"):
        run_asgi(args)
    if args.part in ("asyncio", "all"):
        run_asyncio(args)


if __name__ == "__main__":
    main()
