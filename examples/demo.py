"""wsfast demo: a real echo server and client on loopback, both embedding the sans-IO engine.

    python examples/demo.py

1. starts examples/echo_server.py's server (thread per connection) with permessage-deflate;
2. connects a client (examples/client.py's loop) offering permessage-deflate, and exchanges
   text and binary messages from 0 bytes to 4 MiB, checking every echo byte for byte;
3. times a burst of small messages (round trips per second, with and without compression);
4. shows the engine's error handling on the wire: a raw socket sends invalid UTF-8, a
   reserved opcode and an oversized frame, and prints the close code each one gets back.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import client as ws_client  # noqa: E402  (examples/client.py)
import echo_server  # noqa: E402  (examples/echo_server.py)

import wsfast  # noqa: E402
from wsfast import BinaryMessage, TransportClosed, ServerConnection, TextMessage  # noqa: E402
from wsfast.permessage_deflate import ClientPerMessageDeflate, ServerPerMessageDeflate  # noqa: E402


def start_server(max_size: int) -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def make() -> ServerConnection:
        return ServerConnection(extensions=[ServerPerMessageDeflate()], max_message_size=max_size)

    ready = threading.Event()
    threading.Thread(target=echo_server.serve, args=("127.0.0.1", port, make, ready), daemon=True).start()
    ready.wait(5)
    return port


class Script:
    """Sends each message after the previous echo arrived; checks every echo."""

    def __init__(self, messages: list) -> None:
        self.messages = messages
        self.i = 0
        self.errors = 0
        self.closed: TransportClosed | None = None
        self.extensions: tuple = ()

    def send_next(self, conn: wsfast.ClientConnection) -> None:
        if self.i == len(self.messages):
            conn.close(1000, "demo done")
            return
        msg = self.messages[self.i]
        if isinstance(msg, str):
            conn.send_text(msg)
        else:
            conn.send_binary(msg)

    def __call__(self, conn: wsfast.ClientConnection, event: wsfast.Event) -> None:
        if isinstance(event, wsfast.Accepted):
            self.extensions = event.extensions
            self.send_next(conn)
        elif isinstance(event, (TextMessage, BinaryMessage)):
            if event.data != self.messages[self.i]:
                self.errors += 1
            self.i += 1
            self.send_next(conn)
        elif isinstance(event, TransportClosed):
            self.closed = event


def exchange(port: int, messages: list, deflate: bool) -> tuple[Script, float]:
    script = Script(messages)
    extensions = [ClientPerMessageDeflate()] if deflate else []
    sock, conn = ws_client.connect(f"ws://127.0.0.1:{port}/demo", extensions=extensions,
                                   max_message_size=16 << 20)
    t0 = time.perf_counter()
    ws_client.run(sock, conn, script)
    return script, time.perf_counter() - t0


def violation(port: int, frame: bytes) -> str:
    """Send a raw masked frame after a valid handshake; return the close frame we get."""
    conn = wsfast.ClientConnection(f"127.0.0.1:{port}", "/")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(conn.data_to_send()))
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        sock.sendall(frame)
        reply = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            reply += data
    tail = reply[head.index(b"\r\n\r\n") + 4 :] if b"\r\n\r\n" in reply else reply
    if len(tail) >= 4 and tail[0] == 0x88:
        code = int.from_bytes(tail[2:4], "big")
        return f"close {code} {tail[4:2 + tail[1]].decode()!r}, then TCP closed"
    return f"unexpected reply {tail[:16]!r}"


def masked(opcode: int, payload: bytes, length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big") if n > 125 else bytes((0x80 | opcode, 0x80 | n))
    return head + b"\0\0\0\0" + payload  # a zero masking key keeps the payload readable


def main() -> int:
    print(f"wsfast {wsfast.__version__}: kernels {wsfast._speedups.IMPLEMENTATION}, "
          f"parser {wsfast._speedups.PARSER_IMPLEMENTATION}")
    port = start_server(max_size=8 << 20)
    print(f"echo server on ws://127.0.0.1:{port}/ (thread per connection, permessage-deflate)\n")

    sizes = [0, 1, 125, 126, 65535, 65536, 1 << 20, 4 << 20]
    messages: list = []
    for n in sizes:
        messages.append(("wsfast ✓ " * (n // 10 + 1))[:n])
        messages.append(os.urandom(n))
    script, dt = exchange(port, messages, deflate=True)
    total = sum(len(m.encode() if isinstance(m, str) else m) for m in messages)
    print(f"1. {len(messages)} messages from 0 B to 4 MiB, text and binary, negotiated "
          f"{script.extensions or 'no extension'}: {script.errors} mismatches, "
          f"{2 * total / dt / 1e6:.0f} MB/s echoed; closed with "
          f"{script.closed.code if script.closed else None} (clean={script.closed.clean if script.closed else None})")

    small = ['{"id": %d, "op": "tick", "price": 101.25}' % i for i in range(5000)]
    for label, deflate in (("2a", False), ("2b", True)):
        script, dt = exchange(port, small, deflate)
        print(f"{label}. {len(small)} small JSON round trips {'with' if deflate else 'without'} compression: "
              f"{len(small) / dt:,.0f} round trips/s, {script.errors} mismatches")

    print("3. protocol violations get the right close code on the wire:")
    cases = [
        ("invalid UTF-8 in a text frame", masked(0x1, b"caf\xc3(")),
        ("reserved opcode 0x3", masked(0x3, b"")),
        ("frame announcing 64 MiB (limit 8 MiB)", masked(0x2, b"", length=64 << 20)),
        ("close code 1005 on the wire", masked(0x8, (1005).to_bytes(2, "big"))),
    ]
    for name, frame in cases:
        print(f"   {name:40} -> {violation(port, frame)}")
    return 0 if script.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
