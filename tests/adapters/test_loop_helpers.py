"""Helpers for the loop tests (no tests here): a loop on a background thread, raw-socket peers, frames."""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
import time
from typing import Any, Iterator, List, Optional, Tuple

from wsfast._speedups import FrameEncoder
from wsfast.handler import Handler, WebSocket
from wsfast.loop import Loop

CLIENT_ENCODER = FrameEncoder(True)


class LoopThread:
    """A ``Loop`` running ``run_forever`` on its own thread (stopped and joined on exit)."""

    def __init__(self, loop: Optional[Loop] = None) -> None:
        self.loop = loop or Loop()
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._main, name="test-loop", daemon=True)

    def _main(self) -> None:
        try:
            self.loop.run_forever()
        except BaseException as exc:  # pragma: no cover - reported by stop()
            self.error = exc

    def __enter__(self) -> LoopThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.stop()
            self.thread.join(10)
            assert not self.thread.is_alive(), "loop thread did not stop"
        self.loop.close()
        if self.error is not None:
            raise self.error

    def call(self, fn: Any, *args: Any, timeout: float = 5.0) -> Any:
        """Run ``fn(*args)`` on the loop thread and return its result."""
        done = threading.Event()
        box: List[Any] = []

        def run() -> None:
            try:
                box.append((True, fn(*args)))
            except BaseException as exc:
                box.append((False, exc))
            done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(timeout), "loop did not run the call"
        ok, value = box[0]
        if not ok:
            raise value
        return value


def wait_for(pred: Any, timeout: float = 10.0, interval: float = 0.005) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def raw_connect(port: int, timeout: float = 5.0, rcvbuf: Optional[int] = None) -> socket.socket:
    """A blocking loopback client socket (``rcvbuf`` set before connecting: a small window)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        s.close()
        raise
    return s


def request_bytes(port: int, extra: str = "", path: str = "/") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def read_head(s: socket.socket) -> Tuple[bytes, bytes]:
    """Read an HTTP response head; return (head, bytes after it)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return buf, b""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return out
        if not chunk:
            return out
        out += chunk


def raw_handshake(port: int, extra: str = "", rcvbuf: Optional[int] = None) -> Tuple[socket.socket, bytes]:
    s = raw_connect(port, rcvbuf=rcvbuf)
    s.sendall(request_bytes(port, extra))
    head, rest = read_head(s)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, rest


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return CLIENT_ENCODER.encode((0x80 if fin else 0) | opcode, payload)


class FrameReader:
    """Parses the unmasked frames a server sends."""

    def __init__(self, sock: socket.socket, initial: bytes = b"") -> None:
        self.sock = sock
        self.buf = initial

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def frame(self) -> Tuple[int, bytes]:
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        self._need(pos + n)
        payload = self.buf[pos : pos + n]
        self.buf = self.buf[pos + n :]
        return b0 & 0x0F, payload


def close_code(payload: bytes) -> int:
    return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005


class Echo(Handler):
    def on_text(self, ws: WebSocket, data: str) -> None:
        ws.send_text(data)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        ws.send_binary(data)


class Recorder(Handler):
    """Records everything; optional messages to send on open; closes after ``close_after``."""

    def __init__(self, send: Tuple[Any, ...] = (), close_after: Optional[int] = None) -> None:
        self.send = send
        self.close_after = close_after
        self.opened = threading.Event()
        self.done = threading.Event()
        self.messages: List[Any] = []
        self.errors: List[BaseException] = []
        self.close: Optional[Tuple[int, str, bool]] = None
        self.ws: Optional[WebSocket] = None

    def on_open(self, ws: WebSocket) -> None:
        self.ws = ws
        self.opened.set()
        for m in self.send:
            ws.send(m)

    def on_text(self, ws: WebSocket, data: str) -> None:
        self._got(ws, data)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        self._got(ws, data)

    def _got(self, ws: WebSocket, data: Any) -> None:
        self.messages.append(data)
        if self.close_after is not None and len(self.messages) >= self.close_after:
            ws.close()

    def on_error(self, ws: WebSocket, exc: BaseException) -> None:
        self.errors.append(exc)

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.close = (code, reason, clean)
        self.done.set()


def raise_nofile(n: int) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(n, soft), hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def iter_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


# ------------------------------------------------------------------ gathered writes


class RecordingSocket(socket.socket):
    """A real socket that records the payload sizes of every send and sendmsg call, and the
    size asked of every recv."""

    calls: List[Tuple[str, List[int]]]

    def send(self, data: Any, *flags: int) -> int:  # type: ignore[override]
        self.calls.append(("send", [len(data)]))
        return super().send(data, *flags)

    def sendmsg(self, buffers: Any, *args: Any) -> int:  # type: ignore[override]
        buffers = list(buffers)
        self.calls.append(("sendmsg", [len(b) for b in buffers]))
        return super().sendmsg(buffers, *args)

    def recv(self, bufsize: int, *flags: int) -> bytes:
        self.calls.append(("recv", [bufsize]))
        return super().recv(bufsize, *flags)


def recording_pair() -> Tuple[RecordingSocket, socket.socket]:
    a, b = socket.socketpair()
    rec = RecordingSocket(a.family, a.type, a.proto, fileno=a.detach())
    rec.calls = []
    return rec, b


def read_exactly(sock: socket.socket, n: int, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    out = bytearray()
    while len(out) < n:
        got = sock.recv(min(1 << 20, n - len(out)))
        assert got, "peer closed early"
        out += got
    return bytes(out)


def test_unsent_views_what_is_left() -> None:
    from wsfast._net import unsent

    chunks = [b"ab", b"cdef", b"g"]
    assert [bytes(v) for v in unsent(chunks, 0)] == [b"ab", b"cdef", b"g"]
    assert [bytes(v) for v in unsent(chunks, 1)] == [b"b", b"cdef", b"g"]
    assert [bytes(v) for v in unsent(chunks, 2)] == [b"cdef", b"g"]
    assert [bytes(v) for v in unsent(chunks, 5)] == [b"f", b"g"]
    assert unsent(chunks, 7) == []
    assert all(isinstance(v, memoryview) for v in unsent(chunks, 3))


def test_blocking_transport_gathers_header_and_large_payload() -> None:
    """One sendmsg with the header and the payload object itself (no joined copy); small
    writes are joined into one send; the peer gets the exact bytes in order."""
    from wsfast._sockio import BlockingSocketTransport

    rec, peer = recording_pair()
    with rec, peer:
        t = BlockingSocketTransport(rec)
        head, payload = b"\x82\x7f" + (100_000).to_bytes(8, "big"), os.urandom(100_000)
        t.write([head, payload])
        t.write([b"\x81\x02", b"hi"])
        assert rec.calls == [("sendmsg", [10, 100_000]), ("send", [4])]
        assert read_exactly(peer, 100_014) == head + payload + b"\x81\x02hi"
        t.close()


def test_allocating_reads_stay_below_the_mmap_threshold() -> None:
    """A read that allocates its bytes object asks for RECV_SIZE, below glibc's 128 KiB mmap
    threshold: a 256 KiB ask cost mmap + mremap + munmap and a page fault on every read."""
    from wsfast._sockio import RECV_SIZE, BlockingSocketTransport

    assert RECV_SIZE <= 64 * 1024
    rec, peer = recording_pair()
    with rec, peer:
        t = BlockingSocketTransport(rec)
        peer.sendall(b"abc")
        assert t.read(5) == b"abc"
        assert rec.calls == [("recv", [RECV_SIZE])]
        t.close()


def test_blocking_transport_finishes_a_partial_gathered_write() -> None:
    """A gathered write the kernel takes only part of: the rest follows once the peer reads,
    byte for byte."""
    from wsfast._sockio import BlockingSocketTransport

    rec, peer = recording_pair()
    with rec, peer:
        rec.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        t = BlockingSocketTransport(rec, write_timeout=10)
        head, payload = b"\x82\x7f" + (4 << 20).to_bytes(8, "big"), os.urandom(4 << 20)
        got: List[bytes] = []
        reader = threading.Thread(target=lambda: got.append(read_exactly(peer, len(head) + len(payload))))
        reader.start()
        t.write([head, payload])
        reader.join(10)
        assert not reader.is_alive()
        assert rec.calls[0] == ("sendmsg", [10, 4 << 20])
        assert len(rec.calls) > 1  # the kernel could not take 4 MiB at once
        assert got == [head + payload]
        t.close()


def test_nonblocking_transport_gathers_and_buffers_the_rest_without_copies() -> None:
    from wsfast._nbio import NonBlockingSocketTransport

    class T(NonBlockingSocketTransport):
        writing = False

        def want_write(self, flag: bool) -> None:
            self.writing = flag

    rec, peer = recording_pair()
    with rec, peer:
        rec.setblocking(False)
        rec.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        t = T(rec, high_water=1 << 30, low_water=0)
        head, payload = b"\x82\x7f" + (2 << 20).to_bytes(8, "big"), os.urandom(2 << 20)
        t.write([head, payload])
        assert rec.calls == [("sendmsg", [10, 2 << 20])]
        assert t.writing and 0 < t.buffered < len(payload)
        assert t.bytes_sent + t.buffered == len(head) + len(payload)
        # What is buffered is views of the caller's objects, not a copy.
        assert all(v.obj is payload for v in t._buf)
        got: List[bytes] = []
        reader = threading.Thread(target=lambda: got.append(read_exactly(peer, len(head) + len(payload))))
        reader.start()
        deadline = time.monotonic() + 10
        while t.buffered and time.monotonic() < deadline:
            t.flush()
            time.sleep(0.001)
        reader.join(10)
        assert t.buffered == 0 and not t.writing
        assert got == [head + payload]


class _EpollSpy:
    """Stands in for the loop's epoll object: records, for each unregister, whether the fd
    was still open (after close() the kernel has dropped it and epoll_ctl fails with EBADF)."""

    def __init__(self, ep: Any) -> None:
        self._ep = ep
        self.unregistered: List[Tuple[int, bool]] = []

    def unregister(self, fd: int) -> None:
        try:
            os.fstat(fd)
            still_open = True
        except OSError:
            still_open = False
        self.unregistered.append((fd, still_open))
        self._ep.unregister(fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ep, name)


def test_loop_unregisters_a_socket_before_closing_it() -> None:
    """One epoll_ctl per closed connection, and one that succeeds: unregistering after close()
    cost a failed syscall and a Python exception per connection (10,000 in the connections
    benchmark)."""
    import select

    import pytest

    if not hasattr(select, "epoll"):
        pytest.skip("the selectors fallback: no epoll object to watch")
    loop = Loop()
    spy = _EpollSpy(loop._selector._ep)
    loop._selector._ep = spy
    with LoopThread(loop) as lt:
        server = lt.call(lambda: lt.loop.listen("127.0.0.1", 0, Echo))
        for _ in range(3):
            s, _ = raw_handshake(server.port)
            with s:
                s.sendall(client_frame(0x8, struct.pack("!H", 1000)))
                assert read_all(s)[:2] == b"\x88\x02"  # the close echo, then EOF
            wait_for(lambda: lt.loop.open_connections == 0)
        wait_for(lambda: len(spy.unregistered) >= 3)
        conns = spy.unregistered[:3]
    assert [still_open for _, still_open in conns] == [True, True, True], conns
