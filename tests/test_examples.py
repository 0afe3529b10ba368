"""The examples over real loopback sockets: ``examples/echo_server.py`` and ``examples/client.py``.

What the Autobahn runner does not check is checked here, byte for byte: the echo frames, the
close frame a protocol violation gets, and that the server closes TCP after the closing
handshake (RFC 6455 §7.1.1: "the underlying TCP connection [...] SHOULD be closed first by
the server"), which kosoku does not verify.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wsfast import BinaryMessage, CloseReceived, TransportClosed, ServerConnection, TextMessage
from wsfast.permessage_deflate import ServerPerMessageDeflate

from .helpers import KEY, frame

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3, for KEY
TIMEOUT = 5.0


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"wsfast_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


echo_server = load("echo_server")
example_client = load("client")


def make_connection() -> ServerConnection:
    # As `echo_server.py --deflate`: what the Autobahn runs test.
    return ServerConnection(extensions=[ServerPerMessageDeflate()], max_message_size=16 * 1024 * 1024)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def port() -> int:
    """examples/echo_server.py's serve() in a daemon thread on a free port."""
    for _ in range(5):
        port = free_port()
        ready = threading.Event()
        errors: list = []

        def target() -> None:
            try:
                echo_server.serve("127.0.0.1", port, make_connection, ready)
            except OSError as exc:  # the port was taken between free_port() and bind()
                errors.append(exc)
                ready.set()

        threading.Thread(target=target, daemon=True).start()
        assert ready.wait(TIMEOUT)
        if not errors:
            return port
    pytest.fail(f"could not start the echo server: {errors}")


# ------------------------------------------------------------------------- raw client


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"TCP closed after {data!r}, expected {n} bytes"
        data += chunk
    return data


def assert_tcp_closed(sock: socket.socket) -> None:
    """The server closes TCP: recv returns b"" (and nothing else arrives first)."""
    sock.settimeout(TIMEOUT)
    assert sock.recv(1024) == b""


def handshake(port: int, extra: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(
        b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"TCP closed during the handshake: {head!r}"
        head += byte
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert f"Sec-WebSocket-Accept: {ACCEPT}\r\n".encode() in head, head
    return sock


def read_close(sock: socket.socket) -> tuple:
    """One unmasked close frame, exactly: returns (code, reason)."""
    b0, b1 = recv_exact(sock, 2)
    assert b0 == 0x88, f"expected a close frame, got first byte {b0:#x}"
    assert b1 < 126, "server close frames are unmasked and at most 125 bytes"
    payload = recv_exact(sock, b1)
    assert len(payload) >= 2
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8")


# ------------------------------------------------------------------------- echo


def test_echo_text_exact_frame(port: int) -> None:
    with handshake(port) as sock:
        sock.sendall(frame(0x1, b"hello"))
        assert recv_exact(sock, 7) == b"\x81\x05hello"
        sock.sendall(frame(0x1, "héllo €".encode()))
        assert recv_exact(sock, 12) == b"\x81\x0a" + "héllo €".encode()


def test_echo_binary_exact_frame(port: int) -> None:
    payload = bytes(range(256)) * 2
    with handshake(port) as sock:
        sock.sendall(frame(0x2, payload))
        assert recv_exact(sock, 4 + 512) == b"\x82\x7e\x02\x00" + payload
        sock.sendall(frame(0x2, b""))
        assert recv_exact(sock, 2) == b"\x82\x00"


def test_echo_fragmented_message_is_one_frame(port: int) -> None:
    with handshake(port) as sock:
        sock.sendall(frame(0x1, b"frag", fin=False) + frame(0x9, b"p") + frame(0x0, b"ment"))
        # The ping interleaved in the message is answered first, then the whole message.
        assert recv_exact(sock, 3) == b"\x8a\x01p"
        assert recv_exact(sock, 10) == b"\x81\x08fragment"


def test_messages_and_close_in_one_packet_keep_their_order(port: int) -> None:
    """Replies to every message before the close echo, though echo_server.py writes after
    each event (data_to_send() must not act on a close still queued behind later events)."""
    with handshake(port) as sock:
        sock.sendall(frame(0x1, b"a") + frame(0x2, b"b") + frame(0x8, b"\x03\xe8"))
        assert recv_exact(sock, 3) == b"\x81\x01a"
        assert recv_exact(sock, 3) == b"\x82\x01b"
        assert recv_exact(sock, 4) == b"\x88\x02\x03\xe8"
        assert_tcp_closed(sock)


def test_frames_in_the_handshake_write_are_echoed_at_once(port: int) -> None:
    """Issue 10 item 1: a client that writes its first frames right behind its request, in
    one write, gets the 101 and the echoes without sending anything more (the server's
    loop used to see only the Request, and answered the frames after the next read)."""
    request = (
        b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request + frame(0x1, b"early") + frame(0x2, b"b"))
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = sock.recv(1)
            assert byte, head
            head += byte
        assert head.startswith(b"HTTP/1.1 101 ")
        assert recv_exact(sock, 7) == b"\x81\x05early"
        assert recv_exact(sock, 3) == b"\x82\x01b"
        sock.sendall(frame(0x8, b"\x03\xe8"))
        assert recv_exact(sock, 4) == b"\x88\x02\x03\xe8"
        assert_tcp_closed(sock)


# ------------------------------------------------------------------------- closing


def test_client_close_gets_echo_then_server_closes_tcp(port: int) -> None:
    with handshake(port) as sock:
        sock.sendall(frame(0x8, b"\x03\xe8" + b"bye"))
        assert recv_exact(sock, 4) == b"\x88\x02\x03\xe8"  # the code echoed (RFC 6455 §5.5.1)
        assert_tcp_closed(sock)


def test_close_without_code_gets_empty_close_then_tcp_close(port: int) -> None:
    with handshake(port) as sock:
        sock.sendall(frame(0x8, b""))
        assert recv_exact(sock, 2) == b"\x88\x00"
        assert_tcp_closed(sock)


@pytest.mark.parametrize(
    "violation, code",
    [
        (frame(0x3, b"x"), 1002),  # reserved opcode
        (frame(0x1, b"x", mask=None), 1002),  # unmasked client frame (RFC 6455 §5.1)
        (frame(0x1, b"x", rsv=0x20), 1002),  # RSV2 without an extension
        (frame(0x9, b"x", fin=False), 1002),  # fragmented control frame
        (frame(0x0, b"x"), 1002),  # continuation with nothing to continue
        (frame(0x8, b"\x03\xe8\xff"), 1007),  # close reason that is not UTF-8
        (frame(0x8, b"\x03\xec"), 1002),  # close code 1004 (reserved)
        (frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), 1007),  # surrogate
    ],
    ids=["opcode", "unmasked", "rsv2", "fragmented-ping", "continuation", "close-utf8", "code-1004", "utf8"],
)
def test_protocol_violation_gets_close_code_then_tcp_close(port: int, violation: bytes, code: int) -> None:
    with handshake(port) as sock:
        sock.sendall(frame(0x1, b"ok") + violation)
        assert recv_exact(sock, 4) == b"\x81\x02ok"  # the message before the fault, first
        got, reason = read_close(sock)
        assert got == code, reason
        assert_tcp_closed(sock)


def test_protocol_violation_exact_close_frame(port: int) -> None:
    with handshake(port) as sock:
        sock.sendall(frame(0x3, b""))
        head = recv_exact(sock, 4)
        assert head[0] == 0x88 and head[2:] == b"\x03\xea", head  # 88 xx 03 ea: 1002
        reason = recv_exact(sock, head[1] - 2)
        reason.decode("utf-8")
        assert_tcp_closed(sock)


def test_bad_handshake_gets_http_error_then_tcp_close(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 4"), data


# ------------------------------------------------------------------------- examples/client.py


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "client.py"), *args],
        env=env, capture_output=True, text=True, timeout=30,
    )


def test_client_cli_prints_echoes(port: int) -> None:
    out = run_cli(f"ws://127.0.0.1:{port}/", "hello", "world")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello\nworld\n"
    assert out.stderr == ""


def test_client_cli_with_deflate(port: int) -> None:
    big = "compress me " * 100  # above the threshold: sent and echoed compressed
    out = run_cli("--deflate", f"ws://127.0.0.1:{port}/path?q=1", "tiny", big)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"tiny\n{big}\n"


def test_client_cli_connection_refused() -> None:
    out = run_cli(f"ws://127.0.0.1:{free_port()}/", "x")
    assert out.returncode == 1
    assert "cannot connect" in out.stderr


def test_client_run_in_process_closes_cleanly(port: int) -> None:
    sock, conn = example_client.connect(f"ws://127.0.0.1:{port}/")
    stdout = io.StringIO()
    conversation = example_client.Conversation(["one", "two", "three"], out=stdout, err=stdout)
    t0 = time.monotonic()
    example_client.run(sock, conn, conversation, timeout=TIMEOUT)
    assert time.monotonic() - t0 < 2.0  # the server closed TCP; no timeout was needed
    assert stdout.getvalue() == "one\ntwo\nthree\n"
    assert conversation.clean
    assert conn.close_code_received == 1000
    assert sock.fileno() == -1  # run() closed the socket


def test_client_closes_tcp_itself_when_server_does_not() -> None:
    """A server that answers the close but keeps TCP open: the client gives up after timeout."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def lazy_server() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                server = ServerConnection()
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return  # the client closed TCP: done
                    server.receive_data(data)
                    for _ in server.events():
                        if server.state.name == "CONNECTING":
                            server.accept()
                    out = b"".join(server.data_to_send())  # the close echo, but no TCP close
                    if out:
                        conn.sendall(out)

        thread = threading.Thread(target=lazy_server, daemon=True)
        thread.start()
        events: list = []
        sock, conn = example_client.connect(f"ws://127.0.0.1:{port}/")

        def handler(conn, event) -> None:
            events.append(event)
            if conn.state.name == "OPEN" and conn.close_code_sent is None:
                conn.close()

        t0 = time.monotonic()
        example_client.run(sock, conn, handler, timeout=0.5)
        took = time.monotonic() - t0
        thread.join(TIMEOUT)
    assert 0.4 < took < 3.0
    assert isinstance(events[-1], TransportClosed) and events[-1].code == 1000


def test_client_answers_every_message_before_a_close_in_the_same_packet() -> None:
    """Two messages and a close in one packet: both are echoed, then the close (strict order)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        received: list = []

        def raw_server() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                server = ServerConnection()
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                server.receive_data(data)
                list(server.events())
                server.accept()
                conn.sendall(b"".join(server.data_to_send()))
                conn.sendall(b"\x81\x01a\x82\x01b\x88\x02\x03\xe8")  # unmasked: server frames
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    server.receive_data(chunk)
                    received.extend(server.events())
                    if any(isinstance(e, CloseReceived) for e in received):
                        break  # closing handshake done: the server closes TCP

        thread = threading.Thread(target=raw_server, daemon=True)
        thread.start()
        sock, conn = example_client.connect(f"ws://127.0.0.1:{port}/")

        def echo(conn, event) -> None:
            if conn.state.name != "OPEN":
                return
            if isinstance(event, TextMessage):
                conn.send_text(event.data)
            elif isinstance(event, BinaryMessage):
                conn.send_binary(event.data)

        example_client.run(sock, conn, echo, timeout=TIMEOUT)
        thread.join(TIMEOUT)
    assert received == [TextMessage("a"), BinaryMessage(b"b"), CloseReceived(1000, "")]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_client_wss(tmp_path: Path) -> None:
    """wss://: examples/client.py over TLS to the echo handler behind an ssl server socket."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def tls_server() -> None:
            raw, _ = listener.accept()
            try:
                tls = server_ctx.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                return
            echo_server.handle(tls, make_connection)

        thread = threading.Thread(target=tls_server, daemon=True)
        thread.start()
        client_ctx = ssl.create_default_context(cafile=str(cert))
        sock, conn = example_client.connect(f"wss://localhost:{port}/", ssl_context=client_ctx)
        received: list = []

        def handler(conn, event) -> None:
            received.append(event)
            if conn.state.name != "OPEN":
                return
            if isinstance(event, TextMessage):
                conn.close()
            elif not any(isinstance(e, TextMessage) for e in received):
                conn.send_text("over tls")

        example_client.run(sock, conn, handler, timeout=TIMEOUT)
        thread.join(TIMEOUT)
    texts = [e.data for e in received if isinstance(e, TextMessage)]
    assert texts == ["over tls"]
    assert isinstance(received[-1], TransportClosed) and received[-1].clean
