"""A client that embeds the wsfast sans-IO engine in a plain blocking ``socket`` loop.

The mirror of ``echo_server.py``: the standard library around the engine and nothing else.
Read bytes, feed them, act on each event, write bytes; ``ssl`` for ``wss://``.

    python examples/client.py ws://127.0.0.1:9001/ hello world    # send, print the echoes
    python examples/client.py --deflate ws://127.0.0.1:9001/ hi   # offer permessage-deflate
    python examples/client.py wss://example.com/chat hi           # TLS, system CA store

Each argument goes out as one text message; the next one leaves when a reply has arrived.
After the last reply the client closes: it sends a close frame, waits for the server's close
frame and for the server to close TCP (RFC 6455 §7.1.1: the server closes TCP first), each
wait bounded by ``--timeout``. The exit status is 0 after a clean closing handshake.

``connect()`` and ``run()`` are the reusable part: ``autobahn/client.py`` drives the Autobahn
fuzzingserver with them and an echo handler.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import time
from typing import Callable, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import wsfast
from wsfast import (
    Accepted,
    BinaryMessage,
    ClientConnection,
    CloseReceived,
    TransportClosed,
    ConnectionFailed,
    Event,
    HandshakeFailed,
    Rejected,
    TextMessage,
)

#: How long the opening handshake, and the closing handshake, may take (seconds).
TIMEOUT = 10.0

Handler = Callable[[ClientConnection, Event], None]


def connect(
    url: str,
    *,
    extensions: Sequence[wsfast.extensions.ClientExtensionFactory] = (),
    timeout: float = TIMEOUT,
    ssl_context: Optional[ssl.SSLContext] = None,
    **options,
) -> Tuple[socket.socket, ClientConnection]:
    """Open TCP (and TLS for ``wss://``) to ``url`` and make the engine for it.

    The opening handshake request is queued in the engine, not sent yet: ``run()`` sends it.
    ``options`` go to ``ClientConnection`` (``max_message_size``, ``subprotocols``, ...).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    secure = parts.scheme == "wss"
    host = parts.hostname
    port = parts.port or (443 if secure else 80)
    # RFC 6455 §3 / RFC 9110 §7.2: Host is host[:port], the port omitted when it is the default;
    # an IPv6 literal keeps its brackets.
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != (443 if secure else 80):
        host_header += f":{parts.port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if secure:
            if ssl_context is None:
                ssl_context = ssl.create_default_context()
            sock = ssl_context.wrap_socket(sock, server_hostname=host)
        conn = ClientConnection(host_header, target, extensions=extensions, **options)
    except BaseException:
        sock.close()
        raise
    return sock, conn


def send_all(sock: socket.socket, conn: ClientConnection) -> None:
    chunks = conn.data_to_send()
    if len(chunks) == 1:
        sock.sendall(chunks[0])
    elif chunks:
        sock.sendall(b"".join(chunks))


def run(
    sock: socket.socket,
    conn: ClientConnection,
    handler: Handler,
    *,
    timeout: float = TIMEOUT,
    idle_timeout: Optional[float] = None,
) -> ClientConnection:
    """Drive ``conn`` over ``sock`` until the connection ends, then close the socket.

    ``handler(conn, event)`` is called for every event, one at a time and in order; it
    answers through ``conn`` (``send_text``, ``send_binary``, ``close``). What it queues is
    written once the events of a read are all taken, and keeps its order relative to a
    close or a failure that arrived in the same packet (replies to earlier messages first).

    Timeouts (seconds): the opening handshake gets ``timeout``; so does the closing handshake,
    counted from the moment a close frame was sent or received, after which this side closes
    TCP itself (RFC 6455 §7.1.1 lets the client do so when the server does not). While the
    connection is open, ``idle_timeout`` (None: forever) bounds the wait for the next bytes;
    when it expires the client starts the closing handshake with 1001 (going away).

    The last event the handler sees is always ``TransportClosed``.
    """
    deadline = time.monotonic() + timeout  # opening handshake
    closing = False
    try:
        while True:
            send_all(sock, conn)
            if conn.close_tcp:
                break
            if conn.state is wsfast.State.OPEN and conn.close_code_sent is None:
                wait = idle_timeout
            else:
                if not closing and conn.state is not wsfast.State.CONNECTING:
                    closing = True
                    deadline = time.monotonic() + timeout
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break  # the peer did not finish the handshake in time: close TCP
            sock.settimeout(wait)
            try:
                data = sock.recv(262144)
            except socket.timeout:
                if conn.state is wsfast.State.OPEN and conn.close_code_sent is None:
                    conn.close(1001, "idle timeout")
                    continue
                break
            if data:
                conn.receive_data(data)
            else:
                conn.receive_eof()
            # One write per read, after the handler has seen every event: replies queue in
            # event order, and the engine queues its close frame (or failure) only when that
            # event is taken, so replies to the messages before it still go out first.
            for event in conn.events():
                handler(conn, event)
    except OSError:
        pass  # reset by the peer, or a write that timed out: the connection is over
    finally:
        sock.close()
    # TCP is closed: let the engine know (idempotent) and hand over what that produced,
    # TransportClosed included.
    conn.receive_eof()
    for event in conn.events():
        handler(conn, event)
    return conn


class Conversation:
    """The command-line behaviour: send messages one by one, print replies, then close."""

    def __init__(self, messages: Sequence[str], out=sys.stdout, err=sys.stderr) -> None:
        self.pending = list(messages)
        self.out = out
        self.err = err
        self.clean = False

    def _next(self, conn: ClientConnection) -> None:
        if conn.state is not wsfast.State.OPEN:
            return
        if self.pending:
            conn.send_text(self.pending.pop(0))
        else:
            conn.close(1000)

    def __call__(self, conn: ClientConnection, event: Event) -> None:
        if isinstance(event, Accepted):
            self._next(conn)
        elif isinstance(event, TextMessage):
            print(event.data, file=self.out, flush=True)
            self._next(conn)
        elif isinstance(event, BinaryMessage):
            print(repr(event.data), file=self.out, flush=True)
            self._next(conn)
        elif isinstance(event, Rejected):
            print(f"rejected: HTTP {event.status} {event.reason}", file=self.err)
        elif isinstance(event, HandshakeFailed):
            print(f"handshake failed: {event.reason}", file=self.err)
        elif isinstance(event, ConnectionFailed):
            print(f"protocol error from the server: {event.code} {event.reason}", file=self.err)
        elif isinstance(event, CloseReceived) and conn.close_code_sent is None:
            print(f"server closed: {event.code} {event.reason}".rstrip(), file=self.err)
        elif isinstance(event, TransportClosed):
            self.clean = event.clean
            if not event.clean:
                print(f"connection closed uncleanly (code {event.code})", file=self.err)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="ws://host[:port]/path or wss://...")
    parser.add_argument("messages", nargs="*", help="text messages to send, one by one")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="handshake timeouts, seconds")
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="wait for a reply, seconds")
    parser.add_argument("--cafile", help="trust this CA bundle for wss:// (default: system store)")
    parser.add_argument("--max-size", type=int, default=16 * 1024 * 1024, help="max message size")
    args = parser.parse_args(argv)

    extensions = []
    if args.deflate:
        from wsfast.permessage_deflate import ClientPerMessageDeflate

        extensions.append(ClientPerMessageDeflate())
    context = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    try:
        sock, conn = connect(
            args.url,
            extensions=extensions,
            timeout=args.timeout,
            ssl_context=context,
            max_message_size=args.max_size,
        )
    except (OSError, ValueError) as exc:
        print(f"cannot connect to {args.url}: {exc}", file=sys.stderr)
        return 1
    conversation = Conversation(args.messages)
    run(sock, conn, conversation, timeout=args.timeout, idle_timeout=args.idle_timeout)
    return 0 if conversation.clean and not conversation.pending else 1


if __name__ == "__main__":
    sys.exit(main())
