"""``python -m wsfast`` (and the ``wsfast`` console script): echo server, interactive client,
benchmark, and a demo that runs the last two against the first.

Every command takes ``--mode NAME`` (``wsfast._modes.MODES``): the same ``Handler`` classes
below (echo, interactive, bench) run on whichever adapter is named, so every adapter can be
tried and measured from the command line against any server::

    python -m wsfast echo-server --port 8765               # prints ws://127.0.0.1:8765/
    python -m wsfast client ws://127.0.0.1:8765/            # each stdin line is a message
    python -m wsfast bench ws://127.0.0.1:8765/ --size 32   # latency percentiles + throughput
    python -m wsfast demo                                   # all of it on loopback, one table

Output: the server prints its URL as its first stdout line once listening (scripts wait for
it); the client prints received messages on stdout and status lines on stderr; the bench
prints a live progress line on stderr (when stderr is a terminal) and a summary table on
stdout (or JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, TextIO

from . import __version__
from ._modes import MODES, Mode, get_mode
from ._net import insecure_client_context, parse_header_args
from ._options import ClientOptions, Compression, ServerOptions
from ._uri import parse_uri
from .connection import DEFAULT_MAX_MESSAGE_SIZE
from .handler import Handler, WebSocket

__all__ = ["main", "EchoHandler", "InteractiveHandler", "BenchHandler", "BenchResult"]

log = logging.getLogger("wsfast.cli")

#: The adapters the commands use when ``--mode`` is not given.
DEFAULT_SERVER_MODE = "blocking"
DEFAULT_CLIENT_MODE = "blocking"

_perf_ns = time.perf_counter_ns


# ---------------------------------------------------------------------------- handlers


class EchoHandler(Handler):
    """Sends every message back as it came: text as text, binary as binary."""

    def on_text(self, ws: WebSocket, data: str) -> None:
        ws.send_text(data)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        ws.send_binary(data)


class InteractiveHandler(Handler):
    """``client``: stdin lines become text messages (from a reader thread, through the
    adapter's cross-thread path); received messages are printed.

    Lines starting with ``/`` are commands: ``/ping [payload]`` (prints the latency),
    ``/close [code [reason]]``, ``/binary HEX``, ``/quit`` (force quit). With ``execute``,
    those messages are sent instead of reading stdin, and the connection is closed once as
    many replies arrived (or after ``wait`` seconds)."""

    def __init__(
        self,
        out: TextIO,
        err: TextIO,
        stdin: Optional[TextIO] = None,
        execute: Sequence[str] = (),
        wait: Optional[float] = None,
    ) -> None:
        self.out = out
        self.err = err
        self.stdin = stdin
        self.execute = list(execute)
        self.wait = wait
        self.replies = 0
        self._expect = 0  # with execute: echoes and pongs still to come
        self.code: Optional[int] = None
        self.failed: Optional[BaseException] = None
        self._lock = threading.Lock()

    def _print(self, stream: TextIO, text: str) -> None:
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

    def on_open(self, ws: WebSocket) -> None:
        ext = ", ".join(ws.extensions) or "none"
        self._print(self.err, f"connected to {ws.remote_address} (subprotocol {ws.subprotocol}, extensions {ext})")
        if self.execute:
            for message in self.execute:
                self.command(ws, message)
            if self.wait is None and self._expect <= 0 and ws.is_open:
                ws.close()
            elif self.wait is not None:
                ws.call_later(self.wait, lambda: ws.close())
        elif self.stdin is not None:
            threading.Thread(target=self._read_stdin, args=(ws,), name="wsfast-stdin", daemon=True).start()

    def _read_stdin(self, ws: WebSocket) -> None:
        assert self.stdin is not None
        try:
            for line in self.stdin:
                if ws.closed:
                    return
                self.command(ws, line.rstrip("\r\n"))
        except Exception as exc:  # a send after the peer left: the close line says why
            log.debug("stdin reader stops: %r", exc)
            return
        if not ws.closed:
            ws.close()

    def command(self, ws: WebSocket, line: str) -> None:
        if not line.startswith("/") or line.startswith("//"):
            self._expect += 1
            ws.send_text(line[1:] if line.startswith("//") else line)
            return
        name, _, rest = line[1:].partition(" ")
        if name == "ping":

            def done(latency: float) -> None:
                self._print(self.err, f"pong after {latency * 1e3:.3f} ms")
                self._got(ws)

            self._expect += 1
            ws.ping(rest.encode(), callback=done)
        elif name == "close":
            code_s, _, reason = rest.partition(" ")
            ws.close(int(code_s) if code_s else 1000, reason)
        elif name == "binary":
            try:
                payload = bytes.fromhex(rest)
            except ValueError:
                self._print(self.err, f"/binary takes hex digits, not {rest!r}")
                return
            self._expect += 1
            ws.send_binary(payload)
        elif name == "quit":
            ws.force_quit()
        else:
            self._print(self.err, f"unknown command /{name} (/ping, /close, /binary, /quit; // sends a /)")

    def _got(self, ws: WebSocket) -> None:
        self.replies += 1
        self._expect -= 1
        if self.execute and self.wait is None and self._expect <= 0 and ws.is_open:
            ws.close()

    def on_text(self, ws: WebSocket, data: str) -> None:
        self._print(self.out, data)
        self._got(ws)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        preview = data[:32].hex(" ")
        self._print(self.out, f"<binary {len(data)} bytes: {preview}{' ...' if len(data) > 32 else ''}>")
        self._got(ws)

    def on_error(self, ws: WebSocket, exc: BaseException) -> None:
        self.failed = exc
        self._print(self.err, f"error: {type(exc).__name__}: {exc}")

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.code = code
        self._print(self.err, f"closed: {code} {reason!r}{'' if clean else ' (not clean)'}")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, by linear interpolation."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class BenchResult:
    """What one bench connection measured (times in seconds)."""

    size: int
    text: bool
    round_trips: List[float] = field(default_factory=list)
    pipelined: int = 0
    pipelined_seconds: float = 0.0
    mismatches: int = 0
    error: Optional[str] = None
    close_code: Optional[int] = None

    def summary(self) -> Dict[str, Any]:
        rtt = sorted(self.round_trips)
        out: Dict[str, Any] = {
            "size": self.size,
            "kind": "text" if self.text else "binary",
            "round_trips": len(rtt),
            "pipelined_messages": self.pipelined,
            "mismatches": self.mismatches,
            "error": self.error,
            "close_code": self.close_code,
        }
        if rtt:
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
                out[f"rtt_{name}_us"] = percentile(rtt, q) * 1e6
            out["rtt_min_us"] = rtt[0] * 1e6
            out["rtt_max_us"] = rtt[-1] * 1e6
        if self.pipelined and self.pipelined_seconds > 0:
            rate = self.pipelined / self.pipelined_seconds
            out["msgs_per_s"] = rate
            out["mib_per_s"] = rate * self.size / (1 << 20)
        return out


class BenchHandler(Handler):
    """``bench``: ``rtt_count`` round trips one at a time, then ``count`` messages pipelined
    with ``window`` in flight; closes with 1000 when done. Every echo is checked for size."""

    def __init__(
        self,
        size: int,
        rtt_count: int,
        count: int,
        window: int,
        text: bool = False,
        progress: Optional[TextIO] = None,
        label: str = "",
    ) -> None:
        self.result = BenchResult(size, text)
        self.payload: Any = "x" * size if text else os.urandom(size)
        self.size = size
        self.rtt_count = rtt_count
        self.count = count
        self.window = max(1, window)
        self.progress = progress
        self.label = label
        self._sent_at = 0
        self._phase = "rtt"
        self._sent = 0
        self._received = 0
        self._t0 = 0
        self._next_progress = 0.0

    def _send(self, ws: WebSocket) -> None:
        if self.result.text:
            ws.send_text(self.payload)
        else:
            ws.send_binary(self.payload)

    def on_open(self, ws: WebSocket) -> None:
        self._next_progress = time.monotonic() + 0.2
        if self.rtt_count > 0:
            self._sent_at = _perf_ns()
            self._send(ws)
        else:
            self._start_pipeline(ws)

    def _start_pipeline(self, ws: WebSocket) -> None:
        self._phase = "pipe"
        if self.count <= 0:
            self._phase = "done"
            ws.close()
            return
        self._t0 = _perf_ns()
        first = min(self.window, self.count)
        for _ in range(first):
            self._send(ws)
        self._sent = first

    def _message(self, ws: WebSocket, n: int) -> None:
        if n != self.size:
            self.result.mismatches += 1
        if self._phase == "rtt":
            rtts = self.result.round_trips
            rtts.append((_perf_ns() - self._sent_at) / 1e9)
            if len(rtts) & 255 == 0:
                self._show_progress()
            if len(rtts) < self.rtt_count:
                self._sent_at = _perf_ns()
                self._send(ws)
            else:
                self._start_pipeline(ws)
        elif self._phase == "pipe":
            self._received += 1
            if self._sent < self.count:
                self._sent += 1
                self._send(ws)
            if self._received & 1023 == 0:
                self._show_progress()
            if self._received >= self.count:
                self.result.pipelined = self._received
                self.result.pipelined_seconds = (_perf_ns() - self._t0) / 1e9
                self._phase = "done"
                self._show_progress(final=True)
                ws.close()

    def on_text(self, ws: WebSocket, data: str) -> None:
        self._message(ws, len(data))

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        self._message(ws, len(data))

    def _show_progress(self, final: bool = False) -> None:
        out = self.progress
        if out is None:
            return
        now = time.monotonic()
        if not final and now < self._next_progress:
            return
        self._next_progress = now + 0.2
        if self._phase == "rtt":
            rtt = sorted(self.result.round_trips)
            line = f"round trips {len(rtt)}/{self.rtt_count}  p50 {percentile(rtt, 0.5) * 1e6:8.1f} us"
        else:
            elapsed = max((_perf_ns() - self._t0) / 1e9, 1e-9)
            line = f"pipelined {self._received}/{self.count}  {self._received / elapsed:10.0f} msg/s"
        out.write(f"\r{self.label}{line}   ")
        if final:
            out.write("\n")
        out.flush()

    def on_error(self, ws: WebSocket, exc: BaseException) -> None:
        if self.result.error is None:
            self.result.error = f"{type(exc).__name__}: {exc}"

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.result.close_code = code
        if self._phase != "done" and self.result.error is None:
            self.result.error = f"closed early: {code} {reason!r}"


# ---------------------------------------------------------------------------- options


def _compression(args: argparse.Namespace) -> Compression:
    return None if args.no_compression else "deflate"


def _opt_seconds(value: Optional[float]) -> Optional[float]:
    """0 (or a negative value) on the command line turns a timer off."""
    return None if value is None or value <= 0 else value


def server_options(args: argparse.Namespace) -> ServerOptions:
    ctx: Optional[ssl.SSLContext] = None
    if args.certfile:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.certfile, args.keyfile)
    return ServerOptions(
        compression=_compression(args),
        ssl=ctx,
        max_size=args.max_size if args.max_size > 0 else None,
        ping_interval=_opt_seconds(args.ping_interval),
        ping_timeout=_opt_seconds(args.ping_timeout),
        max_connections=args.max_connections or None,
        reuse_port=args.reuse_port,
        subprotocols=tuple(args.subprotocol),
    )


def client_options(args: argparse.Namespace) -> ClientOptions:
    compression: Compression = _compression(args)
    if getattr(args, "compression", None) is not None:  # bench: off unless --compression
        compression = "deflate" if args.compression else None
    ssl_arg: Any = None
    if getattr(args, "insecure", False):
        ssl_arg = insecure_client_context()
    elif getattr(args, "cafile", None):
        ssl_arg = ssl.create_default_context(cafile=args.cafile)
    return ClientOptions(
        subprotocols=tuple(args.subprotocol),
        headers=parse_header_args(args.header),
        origin=args.origin,
        compression=compression,
        ssl=ssl_arg,
        max_size=args.max_size if args.max_size > 0 else None,
        ping_interval=_opt_seconds(args.ping_interval),
        ping_timeout=_opt_seconds(args.ping_timeout),
        open_timeout=_opt_seconds(args.open_timeout),
    )


def _mode(name: str, parser: argparse.ArgumentParser, server: bool = False, spin_wait: Any = None) -> Mode:
    try:
        mode = get_mode(name)
    except ValueError as exc:
        parser.error(str(exc))
    if spin_wait is not None:
        configure = getattr(mode, "configure", None)
        if configure is None or name != "nonblocking":
            parser.error("--spin-wait is an option of --mode nonblocking")
        mode = configure(spin_wait=spin_wait if spin_wait > 0 else None)
    if server and not mode.has_server:
        servers = [n for n in MODES if n in _SERVER_MODES]
        parser.error(f"mode {name!r} is a client-only mode; servers: {', '.join(servers)}")
    return mode


_SERVER_MODES = ("blocking", "loop", "asyncio", "uvloop")


# ---------------------------------------------------------------------------- commands


def cmd_echo_server(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.workers > 1:
        return _run_workers(args)
    mode = _mode(args.mode, parser, server=True)
    opts = server_options(args)
    stop = threading.Event()

    def ready(url: str) -> None:
        if opts.ssl is not None:
            url = url.replace("ws://", "wss://", 1)
        print(url, flush=True)
        log.info("echo server (%s) listening on %s", mode.name, url)

    def on_term(signum: int, frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
    try:
        mode.run_server(args.host, args.port, EchoHandler, opts, ready, stop)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"echo-server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_workers(args: argparse.Namespace) -> int:
    """``--workers N``: N processes sharing one port through SO_REUSEPORT."""
    if args.port == 0:
        print("echo-server: --workers needs an explicit --port (each worker binds it)", file=sys.stderr)
        return 2
    argv = [a for a in sys.argv[1:]]
    cmd = [sys.executable, "-m", "wsfast", *_strip_workers(argv), "--reuse-port", "--workers", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(args.workers)]
    url = ""
    for p in procs:
        assert p.stdout is not None
        url = p.stdout.readline().strip()
    print(url, flush=True)

    def forward(signum: int, frame: Any) -> None:
        for p in procs:
            p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    try:
        for p in procs:
            p.wait()
    except KeyboardInterrupt:
        forward(signal.SIGTERM, None)
        for p in procs:
            p.wait(timeout=15)
    return 0


def _strip_workers(argv: List[str]) -> List[str]:
    out: List[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--workers":
            skip = True
            continue
        if a.startswith("--workers="):
            continue
        out.append(a)
    return out


def _client_setup(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Mode, ClientOptions]:
    """The mode and options of ``client``/``bench``; a bad URI, header or mode is a usage error."""
    mode = _mode(args.mode, parser, spin_wait=args.spin_wait)
    try:
        parse_uri(args.uri)
        opts = client_options(args)
    except ValueError as exc:  # InvalidURI is a ValueError too
        parser.error(f"{type(exc).__name__}: {exc}")
    return mode, opts


def cmd_client(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    mode, opts = _client_setup(args, parser)
    handler = InteractiveHandler(sys.stdout, sys.stderr, sys.stdin, execute=args.execute, wait=args.wait)
    try:
        mode.run_client(args.uri, handler, opts)
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:  # InvalidURI
        print(f"client: {exc}", file=sys.stderr)
        return 2
    if handler.failed is not None and handler.code in (None, 1006):
        return 1
    return 0


def run_bench(
    mode: Mode,
    uri: str,
    opts: ClientOptions,
    *,
    size: int,
    rtt_count: int,
    count: int,
    window: int,
    text: bool = False,
    connections: int = 1,
    progress: Optional[TextIO] = None,
    label: str = "",
) -> List[BenchResult]:
    """Run the bench handler on ``connections`` connections of ``mode`` (one thread each,
    except for modes that run many clients on one thread: ``run_clients``)."""
    handlers = [
        BenchHandler(size, rtt_count, count, window, text, progress if i == 0 else None, label)
        for i in range(connections)
    ]
    many = getattr(mode, "run_clients", None)
    if connections == 1:
        mode.run_client(uri, handlers[0], opts)
    elif many is not None:
        many(uri, handlers, opts)
    else:
        threads = [
            threading.Thread(target=mode.run_client, args=(uri, h, opts), name=f"wsfast-bench-{i}", daemon=True)
            for i, h in enumerate(handlers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return [h.result for h in handlers]


def _merge(results: List[BenchResult]) -> Dict[str, Any]:
    """One summary for several connections: pooled round trips, summed throughput."""
    pooled = BenchResult(results[0].size, results[0].text)
    for r in results:
        pooled.round_trips.extend(r.round_trips)
        pooled.mismatches += r.mismatches
        pooled.error = pooled.error or r.error
    out = pooled.summary()
    rates = [r.pipelined / r.pipelined_seconds for r in results if r.pipelined and r.pipelined_seconds > 0]
    if rates:
        out["pipelined_messages"] = sum(r.pipelined for r in results)
        out["msgs_per_s"] = sum(rates)
        out["mib_per_s"] = sum(rates) * results[0].size / (1 << 20)
    out["connections"] = len(results)
    out["close_codes"] = sorted({r.close_code for r in results if r.close_code is not None})
    return out


def format_table(rows: List[Dict[str, Any]]) -> str:
    """The bench summary as an aligned text table."""
    head = ["mode", "size", "conns", "p50 us", "p90 us", "p99 us", "msg/s", "MiB/s", "result"]
    lines = [head]
    for r in rows:
        ok = "ok" if not r.get("error") and not r.get("mismatches") else (r.get("error") or "size mismatch")
        lines.append([
            str(r.get("mode", "")),
            f"{r['size']} B {r['kind'][0]}",
            str(r.get("connections", 1)),
            f"{r['rtt_p50_us']:.1f}" if "rtt_p50_us" in r else "-",
            f"{r['rtt_p90_us']:.1f}" if "rtt_p90_us" in r else "-",
            f"{r['rtt_p99_us']:.1f}" if "rtt_p99_us" in r else "-",
            f"{r['msgs_per_s']:.0f}" if "msgs_per_s" in r else "-",
            f"{r['mib_per_s']:.1f}" if "mib_per_s" in r else "-",
            str(ok),
        ])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = []
    for n, row in enumerate(lines):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = (c.rjust(w) if 0 < i < len(head) - 1 else c.ljust(w) for i, (c, w) in pairs)
        text.append("  ".join(cells).rstrip())
        if n == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def _default_window(size: int) -> int:
    # Keep about 1 MiB in flight at most: a blocking client writing inside a callback must
    # not fill both kernel buffers while the echo server is blocked writing back.
    return max(1, min(100, (1 << 20) // max(size, 1)))


def cmd_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    mode, opts = _client_setup(args, parser)
    progress = sys.stderr if (args.progress or sys.stderr.isatty()) and not args.json else None
    rows = []
    for size in args.size:
        window = args.window or _default_window(size)
        count = args.count if args.count is not None else max(200, min(20000, (64 << 20) // max(size, 1)))
        rtt = args.round_trips if args.round_trips is not None else max(100, min(5000, (16 << 20) // max(size, 1)))
        results = run_bench(
            mode, args.uri, opts, size=size, rtt_count=rtt, count=count, window=window,
            text=args.text, connections=args.connections, progress=progress, label=f"[{mode.name} {size} B] ",
        )
        row = _merge(results)
        row["mode"] = mode.name
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    return 0 if all(not r.get("error") and not r["mismatches"] for r in rows) else 1


def cmd_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """An echo server in a child process, then the bench against it with each client mode."""
    from . import _speedups

    print(f"wsfast {__version__}: kernels {_speedups.IMPLEMENTATION}, parser {_speedups.PARSER_IMPLEMENTATION}, "
          f"engine and driver {_speedups.core_implementation()}, "
          f"deflate {getattr(_speedups, 'DEFLATE_BACKEND', 'zlib')}")
    cmd = [sys.executable, "-m", "wsfast", "echo-server", "--mode", args.server_mode, "--port", "0",
           "--ping-interval", "0", "--max-size", str(64 << 20)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("ws"):
            print("demo: the echo server did not start", file=sys.stderr)
            return 1
        print(f"echo server ({args.server_mode} mode, child process {server.pid}): {url}\n")
        modes = args.client_mode or [m for m in ("blocking", "blocking-handler", "nonblocking", "background",
                                                    "loop", "asyncio") if m in MODES]
        rows = []
        scale = 0.2 if args.quick else 1.0
        cases = [(32, False, "none"), (65536, False, "none"), (1024, True, "deflate")]
        for name in modes:
            try:
                mode = get_mode(name)
            except ValueError as exc:
                print(f"  {name}: skipped ({exc})")
                continue
            for size, text, comp in cases:
                opts = ClientOptions(compression=None if comp == "none" else "deflate", ping_interval=None)
                count = int(max(100, min(20000, (64 << 20) // size)) * scale)
                rtt = int(max(100, min(3000, (16 << 20) // size)) * scale)
                results = run_bench(mode, url, opts, size=size, rtt_count=rtt, count=count,
                                    window=_default_window(size), text=text,
                                    progress=sys.stderr if sys.stderr.isatty() else None,
                                    label=f"[{name} {size} B] ")
                row = _merge(results)
                row["mode"] = name + (" +deflate" if comp == "deflate" else "")
                rows.append(row)
        print(format_table(rows))
        print("\nround trips: one message at a time; msg/s: pipelined echo. Server and client share this "
              "machine's cores,\nso treat the numbers as indicative; benchmarks/ compares with the peers in one run.")
        return 0 if all(not r.get("error") and not r["mismatches"] for r in rows) else 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def cmd_info(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import _speedups

    print(f"wsfast {__version__} on Python {sys.version.split()[0]}")
    print(f"kernels: {_speedups.IMPLEMENTATION}; parser: {_speedups.PARSER_IMPLEMENTATION}; "
          f"engine and driver: {_speedups.core_implementation()}; "
          f"deflate: {getattr(_speedups, 'DEFLATE_BACKEND', 'zlib')}")
    for name in MODES:
        try:
            mode = get_mode(name)
            print(f"  {name:17} {'server+client' if mode.has_server else 'client':13} {mode.description}")
        except ValueError as exc:
            print(f"  {name:17} unavailable: {exc}")
    return 0


# ---------------------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser, default_mode: str) -> None:
    p.add_argument("--mode", default=default_mode, help=f"adapter: {', '.join(MODES)} (default {default_mode})")
    p.add_argument("--no-compression", action="store_true", help="do not offer/accept permessage-deflate")
    p.add_argument("--max-size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE,
                   help=f"largest message in bytes, 0 for no limit (default {DEFAULT_MAX_MESSAGE_SIZE})")
    p.add_argument("--ping-interval", type=float, default=20.0, help="keepalive ping interval, 0 = off (default 20)")
    p.add_argument("--ping-timeout", type=float, default=20.0, help="pong timeout → 1011, 0 = off (default 20)")
    p.add_argument("--subprotocol", action="append", default=[], help="offer/accept this subprotocol (repeatable)")


def _client_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("uri", help="ws://host[:port]/path or wss://...")
    p.add_argument("--header", "-H", action="append", default=[], help="extra request header 'Name: value'")
    p.add_argument("--origin", help="Origin header")
    p.add_argument("--insecure", "-k", action="store_true", help="wss://: do not verify the certificate")
    p.add_argument("--cafile", help="wss://: trust this CA bundle")
    p.add_argument("--open-timeout", type=float, default=10.0, help="handshake timeout, 0 = none (default 10)")
    p.add_argument("--spin-wait", type=float, help="--mode nonblocking: seconds to sleep when idle (0 = busy poll, "
                   "the default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsfast", description="wsfast: WebSocket echo server, client and benchmark")
    parser.add_argument("--version", action="version", version=f"wsfast {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG shows handshakes and frames (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("echo-server", help="run an echo server; prints its URL when listening")
    _common(p, DEFAULT_SERVER_MODE)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port (default 8765)")
    p.add_argument("--certfile", help="TLS certificate chain (PEM): serve wss://")
    p.add_argument("--keyfile", help="TLS private key (PEM), if not in --certfile")
    p.add_argument("--max-connections", type=int, default=0, help="answer 503 beyond this many (0 = no limit)")
    p.add_argument("--reuse-port", action="store_true", help="SO_REUSEPORT: several processes share the port")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    p.set_defaults(func=cmd_echo_server)

    p = sub.add_parser("client", help="interactive client: stdin lines are sent, messages printed")
    _common(p, DEFAULT_CLIENT_MODE)
    _client_common(p)
    p.add_argument("--execute", "-x", action="append", default=[],
                   help="send this message instead of reading stdin (repeatable); close after the replies")
    p.add_argument("--wait", type=float, help="with -x: close after this many seconds instead")
    p.set_defaults(func=cmd_client)

    p = sub.add_parser("bench", help="round-trip percentiles and pipelined throughput against any echo server")
    _common(p, DEFAULT_CLIENT_MODE)
    _client_common(p)
    p.add_argument("--size", type=int, action="append", help="message size in bytes (repeatable; default 32)")
    p.add_argument("--count", type=int, help="pipelined messages (default: by size)")
    p.add_argument("--round-trips", type=int, help="one-at-a-time round trips (default: by size)")
    p.add_argument("--window", type=int, default=0, help="pipelined messages in flight (default: ~1 MiB worth)")
    p.add_argument("--text", action="store_true", help="send text messages (default binary)")
    p.add_argument("--connections", type=int, default=1, help="concurrent connections")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--progress", action="store_true", help="show the progress line even when not a terminal")
    p.add_argument("--compression", action="store_true", default=False,
                   help="offer permessage-deflate (off by default here: the payload is random bytes)")
    p.set_defaults(func=cmd_bench, size=None)

    p = sub.add_parser("demo", help="echo server + bench of every client mode on loopback, one table")
    p.add_argument("--server-mode", default=DEFAULT_SERVER_MODE, help="the echo server's mode")
    p.add_argument("--client-mode", action="append", help="client modes to run (default: all)")
    p.add_argument("--quick", action="store_true", help="fewer messages (about 5x shorter)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("info", help="version, compiled kernels, available modes")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if getattr(args, "size", 0) is None:
        args.size = [32]
    code: int = args.func(args, parser)
    return code
