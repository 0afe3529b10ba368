"""The other side of the interop tests: payloads, Node ``ws`` processes, Chromium.

Everything here is bounded in time and cleans up after itself: subprocesses are started in
their own process group and ended by that group's id.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import itertools
import json
import os
import queue
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from websockets.exceptions import ConnectionClosed as WebsocketsClosed
from websockets.sync.server import serve

HERE = Path(__file__).resolve().parent
KiB = 1024
MiB = 1024 * KiB
#: The message sizes every peer exchanges, text and binary (bytes; text is UTF-8).
SIZES = (0, 1, 1000, 100 * KiB, 1 * MiB)
#: The message size limit of every peer. Not the 1 MiB default: an incompressible 1 MiB
#: message compresses to a frame slightly over 1 MiB, which wsfast (like websockets) checks
#: against the limit before inflating (``max_frame_size`` defaults to ``max_message_size``).
MAX_SIZE = 4 * 1024 * 1024


# ---------------------------------------------------------------------------------- payloads

_PIECES = ["lorem ", "ipsum ", "dolor ", "sit ", "amet, ", "é", "ß", "€", "中文", "Ω", "😀", "\n", '{"k": 1}']


_PIECE_LENGTHS = [len(p.encode()) for p in _PIECES]
_PATTERN = bytes((i * 7) % 251 for i in range(251))


@functools.lru_cache(maxsize=None)
def text_payload(size: int, seed: int = 0) -> str:
    """Exactly ``size`` bytes of UTF-8: words (compressible) and 2/3/4-byte characters."""
    rnd = random.Random(seed * 1_000_003 + size)
    picks = rnd.choices(range(len(_PIECES)), k=size // 3 + 1)
    total = 0
    count = 0
    for total in itertools.accumulate(_PIECE_LENGTHS[i] for i in picks):
        if total > size:
            break
        count += 1
    parts = [_PIECES[i] for i in picks[:count]]
    used = sum(_PIECE_LENGTHS[i] for i in picks[:count])
    text = "".join(parts) + "x" * (size - used)
    assert len(text.encode()) == size
    return text


@functools.lru_cache(maxsize=None)
def binary_payload(size: int, seed: int = 0) -> bytes:
    """Exactly ``size`` bytes: an incompressible half and a compressible half."""
    rnd = random.Random(seed * 1_000_003 + size + 1)
    half = size // 2
    rest = size - half
    return rnd.randbytes(half) + (_PATTERN * (rest // len(_PATTERN) + 1))[:rest]


def split(value, parts: int) -> list:
    n = len(value)
    return [value[n * i // parts : n * (i + 1) // parts] for i in range(parts)]


def sha256(data) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------- processes


def _kill_group(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """End ``proc`` and its children: its own process group, by id (started with
    ``start_new_session=True``)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group (Chromium's helpers)
    except ProcessLookupError:
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass


class NodeServer:
    """``node ws_server.js CONFIG``: a Node ``ws`` echo server reporting on stdout (JSON lines)."""

    def __init__(self, node: str, config: dict, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.lines: "queue.Queue[dict]" = queue.Queue()
        self.log: List[dict] = []
        self.stderr: List[str] = []
        self.proc = subprocess.Popen(
            [node, str(HERE / "ws_server.js"), json.dumps(config)],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._readers:
            t.start()
        self.port = self.expect("listening")["port"]

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"event": "garbage", "line": line.decode(errors="replace")})

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace"))

    def expect(self, event: str, timeout: Optional[float] = None) -> dict:
        """The next report called ``event`` (earlier ones of other kinds stay in ``log``)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            try:
                item = self.lines.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(
                    f"node ws server: no {event!r} report in time; saw {self.log}, stderr {''.join(self.stderr)}"
                ) from None
            self.log.append(item)
            if item.get("event") == "error":
                raise AssertionError(f"node ws server reported an error: {item}")
            if item.get("event") == event:
                return item

    def reports(self, event: str) -> List[dict]:
        return [item for item in self.log if item.get("event") == event]

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(3)
        except (OSError, subprocess.TimeoutExpired):
            pass
        _kill_group(self.proc)
        for t in self._readers:
            t.join(3)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> "NodeServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_node_client(node: str, config: dict, timeout: float = 20.0) -> dict:
    """Run ``node ws_client.js CONFIG`` to the end; return its JSON result."""
    proc = subprocess.Popen(
        [node, str(HERE / "ws_client.js"), json.dumps(config)],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("node ws client did not finish in time") from None
    finally:
        _kill_group(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    lines = [l for l in out.decode(errors="replace").splitlines() if l.strip()]
    if not lines:
        raise AssertionError(f"node ws client printed nothing (exit {proc.returncode}); stderr: {err.decode()}")
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------- websockets

#: Options of every websockets peer: the suite's size limit, short timeouts, a ping every
#: 0.2 s (wsfast must answer them, between fragments too).
WS_OPTIONS = dict(max_size=MAX_SIZE, open_timeout=5, close_timeout=5, ping_interval=0.2, ping_timeout=5)


class WebsocketsServer:
    """A websockets echo server in a thread; ``records`` describe each connection."""

    def __init__(self, **kwargs) -> None:
        self.records: List[dict] = []
        self.server = serve(self._handler, "127.0.0.1", 0, **WS_OPTIONS, **kwargs)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self, ws) -> None:
        record = {
            "offer": ws.request.headers.get("Sec-WebSocket-Extensions"),
            "response": ws.response.headers.get("Sec-WebSocket-Extensions"),
            "messages": [],
            "error": None,
            "close_rcvd": None,
            "done": threading.Event(),
        }
        self.records.append(record)
        try:
            for message in ws:
                record["messages"].append((type(message).__name__, len(message), sha256(message)))
                if isinstance(message, str) and message.startswith("__close__ "):
                    _, code, reason = message.split(" ", 2)
                    ws.close(int(code), reason)
                    break
                ws.send(message)
        except WebsocketsClosed:
            pass  # a close code other than 1000/1001 ends the iteration with an exception
        except Exception as exc:  # reported by the test
            record["error"] = exc
        finally:
            record["close_rcvd"] = ws.protocol.close_rcvd
            record["done"].set()

    def record(self, index: int = 0, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while len(self.records) <= index:
            assert time.monotonic() < deadline, "no websockets connection"
            time.sleep(0.02)
        record = self.records[index]
        assert record["done"].wait(timeout), "the websockets handler did not finish"
        return record

    def __enter__(self) -> "WebsocketsServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.thread.join(10)


# ---------------------------------------------------------------------------------- browser


class PageServer:
    """A tiny ``http.server`` on loopback (its own thread) serving fixed pages."""

    def __init__(self, pages: Dict[str, bytes]) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?", 1)[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> "PageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-default-browser-check",
]


class Chromium:
    """Headless Chromium on one URL, in its own process group; ended on exit."""

    def __init__(self, binary: str, url: str, profile: Path) -> None:
        self.log_path = profile.parent / "chromium.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        _kill_group(self.proc)
        self._log.close()
