"""wsfast.sync over real loopback sockets: the blocking client and the thread-per-connection
server against each other and against raw sockets playing bad peers."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
import threading
import time
from typing import Any, Callable, List, Optional

import pytest

from wsfast._sockio import BlockingSocketTransport
from wsfast.connection import ServerConnection as EngineServer
from wsfast.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectRefused,
    InvalidHandshake,
    InvalidStatus,
    NetworkError,
    OpenTimeout,
    ResolveError,
    TLSError,
)
from wsfast.handler import Accept, Handler, Reject, WebSocket
from wsfast.sync import ServerConnection, connect, serve, unix_connect, unix_serve

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_thread_leak")]

KiB = 1024
MiB = 1024 * KiB


# ------------------------------------------------------------------------------ helpers


class Running:
    """A sync server with serve_forever on a thread; shut down on exit."""

    def __init__(self, handler: Callable[[ServerConnection], Any], **kwargs: Any) -> None:
        kwargs.setdefault("ping_interval", None)
        self.server = serve(handler, "127.0.0.1", 0, **kwargs)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown(5)
        self.thread.join(5)


def echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)


class RawServer:
    """A TCP listener whose one connection is handled by ``fn(sock)`` on a thread."""

    def __init__(self, fn: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(10)
            try:
                self.fn(sock)
            except OSError:
                pass
            except BaseException as exc:  # pragma: no cover - reported by the test
                self.error = exc

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.listener.close()
        self.thread.join(10)


def read_head(sock: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def engine_handshake(sock: socket.socket, **kwargs: Any) -> EngineServer:
    """Answer the opening handshake with the sans-IO engine (no wsfast.sync involved)."""
    srv = EngineServer(**kwargs)
    while srv.request is None:
        srv.receive_data(sock.recv(65536))
    list(srv.events())
    srv.accept()
    sock.sendall(b"".join(srv.data_to_send()))
    return srv


def drain_until_eof(sock: socket.socket, limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            if not sock.recv(65536):
                return
        except TimeoutError:
            continue
        except OSError:
            return


def raw_request(port: int, path: str = "/", headers: str = "") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{headers}\r\n"
        ).encode()
    )
    return s


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


# ------------------------------------------------------------------------------ echo


SIZES = [0, 1, 125, 126, 65535, 65536, 1 * MiB, 16 * MiB]


@pytest.mark.parametrize("compression", ["deflate", None])
@pytest.mark.parametrize("size", SIZES)
def test_echo_sizes(size: int, compression: Optional[str]) -> None:
    binary = (bytes(range(256)) * (size // 256 + 1))[:size]
    text = ("é中" * (size // 5 + 1)).encode()[:size].decode("utf-8", "ignore")
    with Running(echo, compression=compression, max_size=None) as srv:
        with connect(srv.url, compression=compression, max_size=None, ping_interval=None) as ws:
            ws.send(binary)
            assert ws.recv(30) == binary
            ws.send(text)
            assert ws.recv(30) == text
            assert ws.extensions == (("permessage-deflate",) if compression else ())


def test_fragmentation_both_ways() -> None:
    got: List[Any] = []

    def handler(ws: ServerConnection) -> None:
        got.append(ws.recv(10))
        got.append(ws.recv(10))
        ws.send(["ab", "cd", "ef"])
        ws.send([b"\x01", bytearray(b"\x02"), memoryview(b"\x03")])
        ws.recv(10)

    with Running(handler) as srv, connect(srv.url, ping_interval=None) as ws:
        ws.send(iter(["hel", "lo"]))
        ws.send([b"x" * 70000, b"y"])
        assert ws.recv(10) == "abcdef"
        assert ws.recv(10) == b"\x01\x02\x03"
        ws.send("done")
    assert got == ["hello", b"x" * 70000 + b"y"]


def test_fragmented_send_mixing_types_raises() -> None:
    with Running(echo) as srv, connect(srv.url, ping_interval=None) as ws:
        with pytest.raises(TypeError):
            ws.send(["a", b"b"])


def test_iteration_poll_and_timeout() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.recv(10)
        for i in range(3):
            ws.send(str(i))
        ws.close(1000, "done")

    with Running(handler) as srv, connect(srv.url, ping_interval=None) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(0)
        with pytest.raises(TimeoutError):
            ws.recv(0.05)
        ws.send("go")
        assert list(ws) == ["0", "1", "2"]
        assert ws.close_code == 1000 and ws.close_reason == "done"
        with pytest.raises(ConnectionClosedOK):
            ws.recv()
        with pytest.raises(ConnectionClosedOK):
            ws.send("late")


def test_attributes_and_headers() -> None:
    seen: List[Any] = []

    def process_request(conn: ServerConnection, request: Any) -> Accept:
        seen.append((request.target, request.header("X-Test"), conn.remote_address))
        return Accept(subprotocol="chat", headers=[("X-Reply", "1")])

    def handler(ws: ServerConnection) -> None:
        seen.append((ws.path, ws.subprotocol, dict(ws.request_headers).get("Authorization")))
        ws.recv(10)

    with Running(handler, process_request=process_request, subprotocols=["chat"]) as srv:
        uri = f"ws://user:pw@127.0.0.1:{srv.server.port}/p?q=1"
        with connect(uri, subprotocols=["chat"], headers=[("X-Test", "yes")], ping_interval=None) as ws:
            assert ws.subprotocol == "chat"
            assert dict(ws.response_headers)["X-Reply"] == "1"
            assert dict(ws.request_headers)["X-Test"] == "yes"
            assert ws.local_address[0] == "127.0.0.1"
            assert ws.remote_address == ("127.0.0.1", srv.server.port)
            assert isinstance(ws.socket, socket.socket)
            ws.send("bye")
    assert seen[0][:2] == ("/p?q=1", "yes")
    assert seen[1] == ("/p?q=1", "chat", "Basic dXNlcjpwdw==")


# ------------------------------------------------------------------------------ ping, close


def test_ping_pong_latency_both_sides() -> None:
    server_latency: List[float] = []

    def handler(ws: ServerConnection) -> None:
        ws.recv(10)
        server_latency.append(ws.ping(b"srv").wait(10))
        ws.send("pinged")
        ws.recv(10)

    with Running(handler) as srv, connect(srv.url, ping_interval=None) as ws:
        waiter = ws.ping()
        latency = waiter.wait(10)
        assert latency > 0 and waiter.latency == latency and ws.latency is not None
        assert ws.ping("text payload").wait(10) > 0
        ws.send("go")
        assert ws.recv(10) == "pinged"  # the server's wait() drove its side
        ws.send("end")
    assert server_latency and server_latency[0] > 0


def test_ping_wait_while_another_thread_reads() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.recv(10)

    with Running(handler) as srv, connect(srv.url, ping_interval=None) as ws:
        reader_error: List[BaseException] = []

        def reader() -> None:
            try:
                ws.recv(10)
            except BaseException as exc:
                reader_error.append(exc)

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.05)
        assert ws.ping().wait(10) > 0
        ws.send("x")
        ws.close()
        t.join(10)
    assert reader_error and isinstance(reader_error[0], ConnectionClosed)


@pytest.mark.parametrize(
    "code,reason,exc",
    [(1000, "", ConnectionClosedOK), (1001, "bye", ConnectionClosedOK), (4000, "app", ConnectionClosedError)],
)
def test_client_closes_with_code(code: int, reason: str, exc: type) -> None:
    seen: List[BaseException] = []

    def handler(ws: ServerConnection) -> None:
        try:
            ws.recv(10)
        except ConnectionClosed as e:
            seen.append(e)

    with Running(handler) as srv:
        ws = connect(srv.url, ping_interval=None)
        ws.close(code, reason)
        assert ws.closed
        with pytest.raises(exc):
            ws.recv()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(seen) == 1 and type(seen[0]) is exc
    assert seen[0].code == code and seen[0].reason == reason  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "code,reason,exc",
    [(1000, "ok", ConnectionClosedOK), (1011, "oops", ConnectionClosedError), (4999, "é", ConnectionClosedError)],
)
def test_server_closes_with_code(code: int, reason: str, exc: type) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.close(code, reason)

    with Running(handler) as srv, connect(srv.url, ping_interval=None) as ws:
        with pytest.raises(exc) as info:
            ws.recv(10)
        assert info.value.code == code and info.value.reason == reason
        assert info.value.sent_code == code  # the echo
        assert ws.close_code == code


def test_handler_exception_closes_1011() -> None:
    def handler(ws: ServerConnection) -> None:
        raise RuntimeError("boom")

    with Running(handler) as srv, connect(srv.url, ping_interval=None) as ws:
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(10)
        assert info.value.code == 1011


# ------------------------------------------------------------------------------ timeouts


def test_open_timeout_client() -> None:
    with RawServer(lambda s: drain_until_eof(s, 5)) as raw:  # accepts, never answers
        with pytest.raises(OpenTimeout):
            connect(f"ws://127.0.0.1:{raw.port}/", open_timeout=0.3)


def test_open_timeout_server() -> None:
    with Running(echo, open_timeout=0.3) as srv:
        s = socket.create_connection(("127.0.0.1", srv.server.port), timeout=10)
        with s:
            assert read_all(s) == b""  # closed without a request, after the timeout


def test_close_timeout_client() -> None:
    def ignore_close(sock: socket.socket) -> None:
        engine_handshake(sock)
        drain_until_eof(sock)  # reads the close frame, never answers it

    with RawServer(ignore_close) as raw:
        ws = connect(f"ws://127.0.0.1:{raw.port}/", close_timeout=0.3, ping_interval=None)
        ws.close()
        assert ws.closed and ws.close_code == 1006
        with pytest.raises(ConnectionClosedError):
            ws.recv()


def test_close_timeout_server() -> None:
    done: List[Any] = []

    def handler(ws: ServerConnection) -> None:
        ws.close(1000)
        done.append(ws.close_code)

    with Running(handler, close_timeout=0.3) as srv:
        s = raw_request(srv.server.port)
        with s:
            read_head(s)
            drain_until_eof(s)  # the close frame arrives; never answered; then EOF
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
    assert done == [1006]


def test_keepalive_timeout_client_1011() -> None:
    def no_pong(sock: socket.socket) -> None:
        engine_handshake(sock, auto_pong=False)
        drain_until_eof(sock)

    with RawServer(no_pong) as raw:
        with connect(f"ws://127.0.0.1:{raw.port}/", ping_interval=0.1, ping_timeout=0.2) as ws:
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(10)
            assert info.value.sent_code == 1011


def test_long_timeouts_take_the_one_syscall_read_and_stay_on_time() -> None:
    """With timeouts of IDLE_TICK or more a read is one blocking recv() bounded by
    SO_RCVTIMEO (no poll() first): recv(timeout) must still wait the whole timeout (not
    return at the first tick) and a keepalive whose interval is past the tick still fires."""
    from wsfast._sockio import IDLE_TICK

    def no_pong(sock: socket.socket) -> None:
        engine_handshake(sock, auto_pong=False)
        drain_until_eof(sock)

    with RawServer(no_pong) as raw:
        interval = IDLE_TICK * 1.2
        with connect(f"ws://127.0.0.1:{raw.port}/", ping_interval=interval, ping_timeout=0.3) as ws:
            transport = ws._ws.transport
            assert transport._tick_read  # plain socket: the one-syscall path is the one taken
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                ws.recv(IDLE_TICK * 1.1)
            assert time.monotonic() - start >= IDLE_TICK * 1.1
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(10)
            elapsed = time.monotonic() - start
            assert info.value.sent_code == 1011
            # The ping went out at interval, its pong was due 0.3 s later: well under 10 s.
            assert interval + 0.3 <= elapsed < 10


def test_keepalive_timeout_server_1011() -> None:
    seen: List[BaseException] = []

    def handler(ws: ServerConnection) -> None:
        try:
            ws.recv(10)
        except ConnectionClosed as e:
            seen.append(e)

    with Running(handler, ping_interval=0.1, ping_timeout=0.2) as srv:
        s = raw_request(srv.server.port)
        with s:
            read_head(s)
            drain_until_eof(s)  # pings arrive, never answered
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert isinstance(seen[0], ConnectionClosedError) and seen[0].sent_code == 1011


def test_keepalive_pings_keep_connection_alive() -> None:
    with Running(echo, ping_interval=0.05, ping_timeout=1) as srv:
        with connect(srv.url, ping_interval=0.05, ping_timeout=1) as ws:
            with pytest.raises(TimeoutError):
                ws.recv(0.4)  # pings went both ways meanwhile
            assert ws.latency is not None
            ws.send("still here")
            assert ws.recv(10) == "still here"


def test_write_timeout() -> None:
    def never_read(sock: socket.socket) -> None:
        engine_handshake(sock)
        time.sleep(3)

    with RawServer(never_read) as raw:
        opts = [(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * KiB)]
        uri = f"ws://127.0.0.1:{raw.port}/"
        kw = dict(ping_interval=None, close_timeout=0.2, socket_options=opts, compression=None)
        with connect(uri, write_timeout=0.3, **kw) as ws:  # type: ignore[arg-type]
            with pytest.raises(ConnectionClosedError) as info:
                for _ in range(10000):
                    ws.send(b"x" * 64 * KiB)
            assert "write timed out" in str(info.value)


@pytest.mark.parametrize("unit,count", [(4 * KiB, 384), (100 * KiB, 16)])
def test_writer_reads_ahead_instead_of_deadlocking(unit: int, count: int) -> None:
    """The client writes 3 MiB before reading while the server echoes: with 32 KiB kernel
    buffers both sides would block in send; a blocked writer reads ahead instead. With
    200 KiB messages the reader takes their payloads into the message object (the engine's
    zero-copy buffer), part of them from what the blocked writer read ahead."""
    small = [(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * KiB), (socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * KiB)]
    with Running(echo, compression=None) as srv:
        for lst in srv.server.sockets:  # accepted sockets inherit the buffer sizes
            for level, opt, value in small:
                lst.setsockopt(level, opt, value)
        with connect(srv.url, compression=None, socket_options=small, ping_interval=None, write_timeout=10) as ws:
            for i in range(count):
                ws.send(i.to_bytes(2, "big") * unit)
            for i in range(count):
                assert ws.recv(20) == i.to_bytes(2, "big") * unit


def test_read_into_takes_the_backlog_first_and_keeps_the_rest() -> None:
    a, b = socket.socketpair()
    with a, b:
        t = BlockingSocketTransport(a)
        t._backlog.extend([b"0123", b"456789"])
        t._backlog_size = 10
        buf = memoryview(bytearray(6))
        assert t.read_into(buf, 0) == 6 and bytes(buf) == b"012345"
        assert t._backlog_size == 4
        assert t.read_into(buf, 0) == 4 and bytes(buf[:4]) == b"6789"
        assert t.read_into(buf, 0) is None  # nothing in the socket
        b.sendall(b"xyz")
        assert t.read_into(buf, 5) == 3 and bytes(buf[:3]) == b"xyz"
        b.close()
        assert t.read_into(buf, 5) == 0  # end of file
        t.close()


def test_eof_inside_a_large_frame_is_1006() -> None:
    """The peer closes TCP in the middle of a 2 MiB payload the server reads in place."""
    from .test_loop_helpers import client_frame, raw_handshake

    seen: List[Any] = []

    def app(ws: ServerConnection) -> None:
        try:
            for message in ws:
                seen.append(len(message))
        except ConnectionClosedError as exc:
            seen.append(exc.code)

    with Running(app, compression=None, max_size=None) as srv:
        s, _ = raw_handshake(srv.server.port)
        with s:
            s.sendall(client_frame(0x2, b"q" * (2 * MiB)) + client_frame(0x2, b"r" * (2 * MiB))[: MiB])
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert seen == [2 * MiB, 1006]


# ------------------------------------------------------------------------------ threads


def test_eight_threads_one_connection() -> None:
    """8 threads × 1,000 messages (small and 70 KB ones) on one connection, echoed and read
    by the main thread meanwhile: nothing lost, nothing interleaved, per-thread order kept."""
    with Running(echo, max_size=None) as srv, connect(srv.url, ping_interval=None, max_size=None) as ws:
        errors: List[BaseException] = []

        def sender(t: int) -> None:
            try:
                for n in range(1000):
                    body = f"{t}:{n}:"
                    ws.send(body + ("z" * 70000 if n % 100 == 7 else "") if n % 2 else (body + "b").encode())
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)

        threads = [threading.Thread(target=sender, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        last = [-1] * 8
        for _ in range(8000):
            m = ws.recv(30)
            text = m.decode() if isinstance(m, bytes) else m
            t, n, rest = text.split(":", 2)
            assert int(n) == last[int(t)] + 1
            assert rest == ("b" if int(n) % 2 == 0 else ("z" * 70000 if int(n) % 100 == 7 else ""))
            last[int(t)] = int(n)
        for th in threads:
            th.join(30)
        assert not errors and last == [999] * 8


# ------------------------------------------------------------------------------ TLS


def test_tls_echo(tls: Any) -> None:
    server_ctx, client_ctx = tls
    with Running(echo, ssl=server_ctx, max_size=None) as srv:
        assert srv.url.startswith("wss://")
        url = f"wss://localhost:{srv.server.port}/"
        with connect(url, ssl=client_ctx, ping_interval=None, max_size=None) as ws:
            assert isinstance(ws.socket, ssl.SSLSocket)
            for size in (0, 10, 70000, 3 * MiB):
                ws.send(b"t" * size)
                assert ws.recv(30) == b"t" * size
            assert ws.ping().wait(10) > 0


def test_tls_threads(tls: Any) -> None:
    server_ctx, client_ctx = tls
    with Running(echo, ssl=server_ctx) as srv:
        ws = connect(f"wss://localhost:{srv.server.port}/", ssl=client_ctx, ping_interval=None)
        with ws:

            def sender(t: int) -> None:
                for n in range(200):
                    ws.send(f"{t}:{n}:" + "q" * (n * 37 % 5000))

            threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
            for th in threads:
                th.start()
            got = [ws.recv(30) for _ in range(800)]
            for th in threads:
                th.join(30)
            assert sorted(got) == sorted(f"{t}:{n}:" + "q" * (n * 37 % 5000) for t in range(4) for n in range(200))


def test_tls_untrusted_certificate(tls: Any) -> None:
    server_ctx, _ = tls
    with Running(echo, ssl=server_ctx) as srv:
        with pytest.raises(TLSError) as info:
            connect(f"wss://localhost:{srv.server.port}/", ssl=ssl.create_default_context(), open_timeout=5)
        assert "certificate" in str(info.value)


def test_tls_to_plain_server(tls: Any) -> None:
    _, client_ctx = tls
    plain_http = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def answer_hello(sock: socket.socket) -> None:
        sock.recv(65536)  # the ClientHello
        sock.sendall(plain_http)
        time.sleep(0.2)

    with RawServer(answer_hello) as raw:
        with pytest.raises(TLSError) as info:
            connect(f"wss://localhost:{raw.port}/", ssl=client_ctx, open_timeout=5)
        assert "TLS" in str(info.value)
    with Running(echo, open_timeout=0.5) as srv:
        # The engine waits for a request head that never ends; the server's open timeout
        # closes TCP, which the TLS handshake sees.
        with pytest.raises((TLSError, OpenTimeout)):
            connect(f"wss://localhost:{srv.server.port}/", ssl=client_ctx, open_timeout=5)


def test_plain_to_tls_server(tls: Any) -> None:
    server_ctx, _ = tls
    with Running(echo, ssl=server_ctx) as srv:
        # The server's TLS handshake fails on the HTTP request and drops TCP (a reset).
        with pytest.raises((InvalidHandshake, NetworkError)):
            connect(f"ws://localhost:{srv.server.port}/", open_timeout=5)


# ------------------------------------------------------------------------------ bad servers


def _answer(response: bytes) -> Callable[[socket.socket], None]:
    def fn(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(response)
        time.sleep(0.2)

    return fn


def test_non_101_status() -> None:
    body = b"not a websocket server"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-A: b\r\n\r\n%s" % (len(body), body)
    with RawServer(_answer(resp)) as raw:
        with pytest.raises(InvalidStatus) as info:
            connect(f"ws://127.0.0.1:{raw.port}/", open_timeout=5)
    assert info.value.status == 200 and info.value.body == body and info.value.header("x-a") == "b"


def test_garbage_answer() -> None:
    with RawServer(_answer(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02\r\n\r\n")) as raw:
        with pytest.raises(InvalidHandshake):
            connect(f"ws://127.0.0.1:{raw.port}/", open_timeout=5)


def test_wrong_accept_hash() -> None:
    resp = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    with RawServer(_answer(resp)) as raw:
        with pytest.raises(InvalidHandshake) as info:
            connect(f"ws://127.0.0.1:{raw.port}/", open_timeout=5)
    assert "accept" in str(info.value).lower()


def test_closed_during_handshake() -> None:
    with RawServer(lambda s: read_head(s) and None) as raw:
        with pytest.raises(InvalidHandshake):
            connect(f"ws://127.0.0.1:{raw.port}/", open_timeout=5)


def test_refused() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectRefused):
        connect(f"ws://127.0.0.1:{port}/", open_timeout=5)


def test_dns_failure() -> None:
    with pytest.raises(ResolveError) as info:
        connect("ws://no-such-host.invalid/", open_timeout=5)
    assert "no-such-host.invalid" in str(info.value)


# ------------------------------------------------------------------------------ server behaviour


def test_process_request_reject_exact_bytes() -> None:
    def process_request(conn: ServerConnection, request: Any) -> Optional[Reject]:
        if request.header("Authorization") != "Bearer good":
            return Reject(401, [("WWW-Authenticate", 'Bearer realm="ws"')], b"who are you?\n")
        return None

    with Running(echo, process_request=process_request) as srv:
        s = raw_request(srv.server.port)
        with s:
            got = read_all(s)
        assert got == (
            b"HTTP/1.1 401 Unauthorized\r\n"
            b'WWW-Authenticate: Bearer realm="ws"\r\n'
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: 13\r\n"
            b"Connection: close\r\n\r\n"
            b"who are you?\n"
        )
        with pytest.raises(InvalidStatus) as info:
            connect(srv.url, open_timeout=5)
        assert info.value.status == 401 and info.value.header("WWW-Authenticate") == 'Bearer realm="ws"'
        with connect(srv.url, headers=[("Authorization", "Bearer good")], ping_interval=None) as ws:
            ws.send("in")
            assert ws.recv(10) == "in"


def test_max_connections_503() -> None:
    release = threading.Event()

    def handler(ws: ServerConnection) -> None:
        release.wait(10)

    with Running(handler, max_connections=1) as srv:
        first = connect(srv.url, ping_interval=None)
        try:
            with pytest.raises(InvalidStatus) as info:
                connect(srv.url, open_timeout=5)
            assert info.value.status == 503 and b"too many connections" in info.value.body
        finally:
            release.set()
            first.close()
        deadline = time.monotonic() + 10
        while srv.server.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        with connect(srv.url, ping_interval=None) as again:  # the slot is free again
            assert again.subprotocol is None


def test_graceful_shutdown() -> None:
    srv = Running(echo)
    clients = [connect(srv.url, ping_interval=None) for _ in range(3)]
    for c in clients:
        c.send("hi")
        assert c.recv(10) == "hi"
    srv.server.shutdown(5)
    srv.thread.join(5)
    assert not srv.thread.is_alive() and srv.server.connections == 0
    for c in clients:
        with pytest.raises(ConnectionClosedOK) as info:
            c.recv(10)
        assert info.value.code == 1001
        c.close()
    with pytest.raises(ConnectRefused):
        connect(srv.url, open_timeout=2)


def test_forced_shutdown() -> None:
    release = threading.Event()
    states: List[Any] = []

    def stubborn(ws: ServerConnection) -> None:
        release.wait(10)  # never reads: the 1001 close is not driven by this thread
        states.append(ws.closed)

    srv = Running(stubborn, close_timeout=10)
    client = connect(srv.url, ping_interval=None, close_timeout=10)
    deadline = time.monotonic() + 10
    while not srv.server.connections and time.monotonic() < deadline:
        time.sleep(0.01)

    def stubborn_client() -> None:
        time.sleep(0.5)
        release.set()

    helper = threading.Thread(target=stubborn_client)
    helper.start()
    srv.server.shutdown(0.2)  # drops the connection after 0.2 s; the handler returns later
    srv.thread.join(5)
    helper.join(5)
    deadline = time.monotonic() + 10
    while not states and time.monotonic() < deadline:
        time.sleep(0.01)
    assert states == [True]
    with pytest.raises(ConnectionClosed):
        client.recv(10)
    client.close()


def test_shutdown_answers_pending_handshake_503() -> None:
    srv = Running(echo, open_timeout=5)
    s = socket.create_connection(("127.0.0.1", srv.server.port), timeout=10)
    with s:
        deadline = time.monotonic() + 10
        while not srv.server.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        stopper = threading.Thread(target=srv.server.shutdown, args=(5,))
        stopper.start()
        time.sleep(0.1)
        s.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        got = read_all(s)
        stopper.join(10)
        srv.thread.join(5)
    assert got.startswith(b"HTTP/1.1 503 ")


def test_unix_socket(tmp_path: Any) -> None:
    path = str(tmp_path / "ws.sock")
    server = unix_serve(echo, path, ping_interval=None)
    t = threading.Thread(target=server.serve_forever)
    t.start()
    try:
        assert server.port is None and server.url == f"ws+unix://{path}"
        with unix_connect(path, ping_interval=None) as ws:
            ws.send("over unix")
            assert ws.recv(10) == "over unix"
    finally:
        server.shutdown(5)
        t.join(5)
    assert not os.path.exists(path)


def test_reuse_port() -> None:
    a = serve(echo, "127.0.0.1", 0, reuse_port=True)
    try:
        b = serve(echo, "127.0.0.1", a.port, reuse_port=True)  # type: ignore[arg-type]
        b.shutdown(1)
    finally:
        a.shutdown(1)


def test_logging(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="wsfast")
    with Running(echo) as srv, connect(srv.url, ping_interval=None) as ws:
        ws.send("x")
        ws.recv(10)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("wsfast.sync"))
    assert "listening on" in text and "connected to" in text and "closed" in text and "server stopped" in text
    assert all(r.levelno <= logging.INFO for r in caplog.records if "message" in r.getMessage())


# ------------------------------------------------------------------------------ the CLI's Mode


class EchoHandler(Handler):
    def on_text(self, ws: WebSocket, data: str) -> None:
        ws.send_text(data)

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        ws.send_binary(data)


class OneShot(Handler):
    def __init__(self) -> None:
        self.events: List[Any] = []

    def on_open(self, ws: WebSocket) -> None:
        ws.send_text("mode")

    def on_text(self, ws: WebSocket, data: str) -> None:
        self.events.append(data)
        ws.close(1000)

    def on_error(self, ws: WebSocket, exc: BaseException) -> None:
        self.events.append(exc)

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        self.events.append(("close", code, clean))


def test_mode_client_and_server() -> None:
    from wsfast._modes import get_mode
    from wsfast._options import ClientOptions, ServerOptions

    mode = get_mode("blocking")
    assert mode.name == "blocking" and mode.has_server
    stop = threading.Event()
    urls: List[str] = []
    ready = threading.Event()

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    t = threading.Thread(target=mode.run_server, args=("127.0.0.1", 0, EchoHandler, ServerOptions(), on_ready, stop))
    t.start()
    try:
        assert ready.wait(10)
        h = OneShot()
        mode.run_client(urls[0], h, ClientOptions())
        assert h.events == ["mode", ("close", 1000, True)]
        bad = OneShot()
        mode.run_client("ws://127.0.0.1:1/", bad, ClientOptions(open_timeout=2))
        assert isinstance(bad.events[0], ConnectRefused) and bad.events[1] == ("close", 1006, False)
    finally:
        stop.set()
        t.join(15)
    assert not t.is_alive()


def test_open_client_is_reusable() -> None:
    from wsfast._options import ClientOptions
    from wsfast._sockio import open_client, run_blocking

    with Running(echo) as srv:
        h = OneShot()
        ws, sock = open_client(srv.url, h, ClientOptions(ping_interval=None))
        run_blocking(ws, sock)
        assert h.events == ["mode", ("close", 1000, True)]
        with pytest.raises(ConnectRefused):
            open_client("ws://127.0.0.1:1/", h, ClientOptions(open_timeout=2))


def test_pong_waiting_in_kernel_is_seen_before_its_timeout() -> None:
    """The application was busy past ping_timeout while the pong sat in the kernel: the
    next recv reads it before judging the timer (no false 1011)."""
    with Running(echo) as srv, connect(srv.url, ping_interval=None, ping_timeout=0.2) as ws:
        waiter = ws.ping()
        time.sleep(0.5)  # busy: nobody reads
        with pytest.raises(TimeoutError):
            ws.recv(0.05)
        assert waiter.done and not ws.closed
        ws.send("alive")
        assert ws.recv(10) == "alive"


def test_close_from_another_thread_while_reader_waits_with_no_timer() -> None:
    """The reader sits in recv() with no timer armed; another thread closes and the peer
    never answers: the close timeout that thread armed still fires (IDLE_TICK)."""

    def ignore_close(sock: socket.socket) -> None:
        engine_handshake(sock)
        drain_until_eof(sock)

    with RawServer(ignore_close) as raw:
        ws = connect(f"ws://127.0.0.1:{raw.port}/", ping_interval=None, close_timeout=0.2)
        seen: List[BaseException] = []

        def reader() -> None:
            try:
                ws.recv()
            except BaseException as exc:
                seen.append(exc)

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.1)
        ws.close()
        t.join(10)
        assert ws.closed and ws.close_code == 1006
        assert len(seen) == 1 and isinstance(seen[0], ConnectionClosedError)


def test_tls_close_from_another_thread(tls: Any) -> None:
    server_ctx, client_ctx = tls
    with Running(echo, ssl=server_ctx) as srv:
        ws = connect(f"wss://localhost:{srv.server.port}/", ssl=client_ctx, ping_interval=None)
        seen: List[BaseException] = []

        def reader() -> None:
            try:
                ws.recv()
            except BaseException as exc:
                seen.append(exc)

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.1)
        ws.close(1000, "bye")
        t.join(10)
        assert len(seen) == 1 and isinstance(seen[0], ConnectionClosedOK)


def test_process_request_raising_answers_500() -> None:
    def process_request(conn: ServerConnection, request: Any) -> None:
        raise RuntimeError("bug in the hook")

    with Running(echo, process_request=process_request) as srv:
        with pytest.raises(InvalidStatus) as info:
            connect(srv.url, open_timeout=5)
        assert info.value.status == 500


def test_bad_request_gets_400_from_the_server() -> None:
    with Running(echo) as srv:
        s = socket.create_connection(("127.0.0.1", srv.server.port), timeout=10)
        with s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not an upgrade
            got = read_all(s)
        assert got.startswith(b"HTTP/1.1 4")


def test_server_handler_writes_a_lot_while_client_echoes() -> None:
    """The hazard as a server sees it: the handler sends 3 MiB before reading while the
    client echoes everything; small kernel buffers both ways."""
    small = [(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * KiB), (socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * KiB)]
    results: List[Any] = []

    def writer_first(ws: ServerConnection) -> None:
        for i in range(384):
            ws.send(i.to_bytes(2, "big") * 4 * KiB)
        results.append(all(ws.recv(20) == i.to_bytes(2, "big") * 4 * KiB for i in range(384)))

    with Running(writer_first, compression=None, write_timeout=10) as srv:
        for lst in srv.server.sockets:
            for level, opt, value in small:
                lst.setsockopt(level, opt, value)
        with connect(srv.url, compression=None, socket_options=small, ping_interval=None) as ws:
            for _ in range(384):
                ws.send(ws.recv(20))
            with pytest.raises(ConnectionClosedOK):
                ws.recv(20)
    assert results == [True]


def test_open_client_queue_mode_drains_commands() -> None:
    from wsfast._options import ClientOptions
    from wsfast._sockio import open_client, run_blocking

    class Collect(Handler):
        def __init__(self) -> None:
            self.got: List[str] = []

        def on_text(self, ws: WebSocket, data: str) -> None:
            self.got.append(data)
            ws.close(1000)

    with Running(echo) as srv:
        h = Collect()
        ws, sock = open_client(srv.url, h, ClientOptions(ping_interval=None), cross_thread="queue")
        t = threading.Thread(target=run_blocking, args=(ws, sock))
        t.start()
        deadline = time.monotonic() + 10
        while not ws.is_open and time.monotonic() < deadline:
            time.sleep(0.01)
        ws.send_text("queued")  # from this thread: queued, run by the stepping thread
        t.join(10)
        assert h.got == ["queued"] and ws.closed


def test_peer_reset_is_a_closed_error_not_a_crash(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="wsfast")
    seen: List[BaseException] = []

    def handler(ws: ServerConnection) -> None:
        try:
            ws.recv(10)
        except ConnectionClosed as exc:
            seen.append(exc)

    with Running(handler) as srv:
        ws = connect(srv.url, ping_interval=None)
        ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.ws.force_quit()  # shutdown + close with linger 0: the server sees a reset or EOF
        ws.close()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(seen) == 1 and isinstance(seen[0], ConnectionClosedError) and seen[0].code == 1006
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
