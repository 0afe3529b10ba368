"""A test-only socket driver around the wsfast sans-IO engine, for the interop tests.

``Client``: a blocking client loop. ``Server``: a thread-per-connection server loop on
127.0.0.1 with an ephemeral port (the style of ``examples/echo_server.py``). Both follow the
integration loop of ``wsfast.connection``: take events one at a time, answer each, write
``data_to_send()`` after each, close TCP when ``close_tcp`` says so, and bound every wait
with a timeout so that a misbehaving peer fails a test instead of hanging it.

Both record the raw bytes that crossed the socket (``wire_in``/``wire_out``) so that the
tests can check, with ``parse_frames`` (a frame-header parser independent of the engine),
which messages were compressed (RSV1) on the wire.
"""

from __future__ import annotations

import collections
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, List, Optional, Sequence, Tuple

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
    Ping,
    Pong,
    Rejected,
    Request,
    ServerConnection,
    TextMessage,
)

#: Default bound (seconds) on any single wait: a handshake, a reply, a closing handshake.
TIMEOUT = 10.0
#: A server connection never lives longer than this, whatever the peer does.
MAX_LIFETIME = 30.0
LOOPBACK = "127.0.0.1"
_RECV = 262144


class DriverTimeout(AssertionError):
    """A wait bounded by the driver's timeout expired (a test failure, not a hang)."""


# ---------------------------------------------------------------------------------- wire


@dataclass
class FrameHeader:
    fin: bool
    rsv1: bool
    opcode: int
    length: int
    masked: bool


def parse_frames(raw: bytes) -> List[FrameHeader]:
    """Frame headers in ``raw``: the bytes one side wrote after the opening handshake head.

    Independent of the engine (RFC 6455 §5.2 by hand). The HTTP head, if ``raw`` starts
    with one, is skipped; a truncated last frame is ignored.
    """
    raw = bytes(raw)
    if raw.startswith((b"GET ", b"HTTP/")):
        end = raw.find(b"\r\n\r\n")
        raw = raw[end + 4 :] if end >= 0 else b""
    frames: List[FrameHeader] = []
    i = 0
    n = len(raw)
    while i + 2 <= n:
        b0, b1 = raw[i], raw[i + 1]
        i += 2
        length = b1 & 0x7F
        if length == 126:
            if i + 2 > n:
                break
            length = int.from_bytes(raw[i : i + 2], "big")
            i += 2
        elif length == 127:
            if i + 8 > n:
                break
            length = int.from_bytes(raw[i : i + 8], "big")
            i += 8
        masked = bool(b1 & 0x80)
        if masked:
            i += 4
        if i + length > n:
            break
        frames.append(FrameHeader(bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, length, masked))
        i += length
    return frames


def message_compression(raw: bytes) -> List[Tuple[int, bool]]:
    """``(opcode, compressed)`` of each data message in ``raw`` (RSV1 of its first frame)."""
    out: List[Tuple[int, bool]] = []
    start: Optional[FrameHeader] = None
    for f in parse_frames(raw):
        if f.opcode >= 8:
            continue
        if f.opcode != 0:
            start = f
        if f.fin and start is not None:
            out.append((start.opcode, start.rsv1))
            start = None
    return out


def _flush(sock: socket.socket, conn: wsfast.Connection, wire_out: bytearray, timeout: float) -> None:
    """Write what the engine queued (a whole write bounded by ``timeout``)."""
    chunks = conn.data_to_send()
    if chunks:
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        wire_out += data
        sock.settimeout(timeout)  # not the short timeout a read loop may have left
        sock.sendall(data)


# ---------------------------------------------------------------------------------- client


class Client:
    """A blocking wsfast client over a real socket.

    The constructor connects and completes the opening handshake (``self.handshake`` is the
    ``Accepted``, ``Rejected`` or ``HandshakeFailed`` event). Then ``send_*`` write at once,
    ``recv()`` returns the next message, ``close()`` runs the closing handshake. ``events``
    logs every event in order. Every wait is bounded by ``timeout``.
    """

    def __init__(
        self,
        port: int,
        target: str = "/",
        *,
        extensions: Sequence[wsfast.extensions.ClientExtensionFactory] = (),
        timeout: float = TIMEOUT,
        **options,
    ) -> None:
        self.timeout = timeout
        self.events: List[Event] = []
        self.wire_in = bytearray()
        self.wire_out = bytearray()
        self._inbox: Deque[Event] = collections.deque()
        self.closed_event: Optional[TransportClosed] = None
        #: True if we closed TCP ourselves because the server did not in time.
        self.closed_by_timeout = False
        #: The last socket error (a reset by the peer), for diagnostics.
        self.io_error: Optional[OSError] = None
        self.conn = ClientConnection(f"{LOOPBACK}:{port}", target, extensions=extensions, **options)
        self.sock: Optional[socket.socket] = socket.create_connection((LOOPBACK, port), timeout=timeout)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._flush()
            self.handshake = self.next_event()
            if not isinstance(self.handshake, (Accepted, Rejected, HandshakeFailed)):
                raise AssertionError(f"expected the handshake outcome, got {self.handshake!r}")
        except BaseException:
            self.abort()
            raise

    # -- plumbing

    def _write(self) -> bool:
        """Write what the engine queued; False if the socket is gone (reset by the peer)."""
        if self.sock is None:
            return False
        try:
            _flush(self.sock, self.conn, self.wire_out, self.timeout)
        except OSError as exc:
            self.io_error = exc
            return False
        return True

    def _flush(self) -> None:
        """Write, then honour ``close_tcp`` (or a dead socket) by closing TCP."""
        if not self._write() or self.conn.close_tcp:
            self._close_socket()

    def _close_socket(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.conn.receive_eof()  # idempotent; yields TransportClosed if not yet reported
        self._take_events()

    def _take_events(self) -> None:
        # One at a time, flushing after each: replies keep their order relative to a close.
        for event in self.conn.events():
            self.events.append(event)
            self._inbox.append(event)
            if isinstance(event, TransportClosed):
                self.closed_event = event
            self._write()
        if self.sock is not None and self.conn.close_tcp:
            self._close_socket()

    def _pump(self, deadline: float) -> None:
        """Read once (bounded by ``deadline``) and process what arrived."""
        if self.sock is None:
            raise AssertionError("the connection is closed")
        wait = deadline - time.monotonic()
        if wait <= 0:
            raise DriverTimeout(f"no progress within the timeout (state {self.conn.state.name})")
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(_RECV)
        except socket.timeout:
            raise DriverTimeout(f"no data within the timeout (state {self.conn.state.name})") from None
        except OSError as exc:
            self.io_error = exc
            data = b""  # reset by the peer: as good as EOF for the engine
        if data:
            self.wire_in += data
            self.conn.receive_data(data)
        else:
            self.conn.receive_eof()
        self._take_events()
        self._flush()
        if not data and self.sock is not None:
            self._close_socket()

    # -- API

    def next_event(self, timeout: Optional[float] = None) -> Event:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._inbox:
            self._pump(deadline)
        return self._inbox.popleft()

    def recv(self, timeout: Optional[float] = None) -> Event:
        """The next ``TextMessage``/``BinaryMessage`` (pings/pongs skipped)."""
        while True:
            event = self.next_event(timeout)
            if isinstance(event, (Ping, Pong)):
                continue
            if not isinstance(event, (TextMessage, BinaryMessage)):
                raise AssertionError(f"expected a message, got {event!r}")
            return event

    def send_text(self, text: str, fin: bool = True, **kw) -> None:
        self.conn.send_text(text, fin, **kw)
        self._flush()

    def send_binary(self, data: bytes, fin: bool = True, **kw) -> None:
        self.conn.send_binary(data, fin, **kw)
        self._flush()

    def wait_closed(self, timeout: Optional[float] = None) -> TransportClosed:
        """Run until TCP is closed; close it ourselves if the server does not do so in time
        after the closing handshake (RFC 6455 §7.1.1)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self.sock is not None:
            try:
                self._pump(deadline)
            except DriverTimeout:
                if not self.conn.close_expected():
                    raise
                self.closed_by_timeout = True
                self._close_socket()
        assert self.closed_event is not None
        return self.closed_event

    def close(self, code: int = 1000, reason: str = "", timeout: Optional[float] = None) -> TransportClosed:
        """Start the closing handshake and run it to the end."""
        self.conn.close(code, reason)
        self._flush()
        return self.wait_closed(timeout)

    def first(self, kind: type) -> Optional[Event]:
        """The first event of type ``kind`` seen so far."""
        for e in self.events:
            if isinstance(e, kind):
                return e
        return None

    def abort(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.abort()


# ---------------------------------------------------------------------------------- server


@dataclass
class Session:
    """One server-side connection: its engine, its events and its bytes."""

    conn: ServerConnection
    peer: Tuple[str, int]
    events: List[Event] = field(default_factory=list)
    wire_in: bytearray = field(default_factory=bytearray)
    wire_out: bytearray = field(default_factory=bytearray)
    request: Optional[Request] = None
    #: An exception raised by the handler (re-raised by ``Server.check()``).
    error: Optional[BaseException] = None
    #: The socket error that ended the connection, if any (a reset by the peer).
    io_error: Optional[OSError] = None
    #: True if the loop gave up waiting (handshake, closing handshake or lifetime).
    timed_out: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    #: Free for handlers to keep what they learn.
    state: dict = field(default_factory=dict)

    def messages(self) -> List[Event]:
        return [e for e in self.events if isinstance(e, (TextMessage, BinaryMessage))]

    def first(self, kind: type) -> Optional[Event]:
        for e in self.events:
            if isinstance(e, kind):
                return e
        return None


Handler = Callable[[Session, Event], None]


def echo_handler(session: Session, event: Event) -> None:
    """Accept every request; echo messages exactly; a text ``"__close__ CODE REASON"``
    makes the server start the closing handshake with that code and reason."""
    conn = session.conn
    if isinstance(event, Request):
        conn.accept()
    elif isinstance(event, TextMessage):
        if event.data.startswith("__close__ "):
            _, code, reason = (event.data + " ").split(" ", 2)
            conn.close(int(code), reason.rstrip(" "))
        else:
            conn.send_text(event.data)
    elif isinstance(event, BinaryMessage):
        conn.send_binary(event.data)


class Server:
    """A thread-per-connection wsfast server on 127.0.0.1 (ephemeral port).

    ``make_connection()`` builds the engine for each connection; ``handler(session, event)``
    answers each event (default: ``echo_handler``). Use as a context manager; ``sessions``
    lists the connections in accept order. Handler exceptions are kept in
    ``session.error`` and re-raised by ``check()`` (called on exit).
    """

    def __init__(
        self,
        make_connection: Callable[[], ServerConnection],
        handler: Handler = echo_handler,
        *,
        timeout: float = TIMEOUT,
        max_lifetime: float = MAX_LIFETIME,
    ) -> None:
        self.make_connection = make_connection
        self.handler = handler
        self.timeout = timeout
        self.max_lifetime = max_lifetime
        self.sessions: List[Session] = []
        self._lock = threading.Lock()
        self._new_session = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._listener = socket.create_server((LOOPBACK, 0), backlog=64)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"ws://{LOOPBACK}:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name="wsfast-accept", daemon=True)

    def __enter__(self) -> "Server":
        self._acceptor.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._stop.set()
        self._acceptor.join(5)
        self._listener.close()
        for t in list(self._threads):
            t.join(5)
        if exc_type is None:
            self.check()

    def check(self) -> None:
        for s in self.sessions:
            if s.error is not None:
                raise AssertionError(f"server handler failed: {s.error!r}") from s.error

    def wait_session(self, index: int = 0, timeout: Optional[float] = None) -> Session:
        """Wait until connection number ``index`` has ended; return it."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._new_session:
            while len(self.sessions) <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DriverTimeout(f"no connection #{index} within the timeout")
                self._new_session.wait(left)
            session = self.sessions[index]
        if not session.done.wait(max(0.0, deadline - time.monotonic())):
            raise DriverTimeout(f"connection #{index} did not end within the timeout")
        return session

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = Session(self.make_connection(), peer)
            with self._new_session:
                self.sessions.append(session)
                self._new_session.notify_all()
            t = threading.Thread(target=self._serve, args=(sock, session), name="wsfast-conn", daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket, session: Session) -> None:
        conn = session.conn
        start = time.monotonic()
        # Only the opening and closing handshakes wait on the peer with ``timeout``; an open
        # connection may idle, but never beyond ``max_lifetime``.
        deadline = start + self.timeout
        closing = False
        try:
            while not conn.close_tcp:
                if self._stop.is_set():
                    session.timed_out = True
                    break
                now = time.monotonic()
                if conn.state is wsfast.State.OPEN and conn.close_code_sent is None:
                    deadline = start + self.max_lifetime
                elif conn.state is not wsfast.State.CONNECTING and not closing:
                    closing = True
                    deadline = now + self.timeout
                if now >= deadline:
                    session.timed_out = True
                    break
                sock.settimeout(min(0.25, deadline - now))
                try:
                    data = sock.recv(_RECV)
                except socket.timeout:
                    continue
                except OSError as exc:
                    session.io_error = exc
                    data = b""
                if data:
                    session.wire_in += data
                    conn.receive_data(data)
                else:
                    conn.receive_eof()
                for event in conn.events():  # one at a time, flushing after each
                    session.events.append(event)
                    if isinstance(event, Request):
                        session.request = event
                    self.handler(session, event)
                    _flush(sock, conn, session.wire_out, self.timeout)
                _flush(sock, conn, session.wire_out, self.timeout)
        except OSError as exc:  # a write to a reset socket, or one that timed out
            session.io_error = exc
        except BaseException as exc:  # a handler bug
            session.error = exc
        finally:
            sock.close()
            # TCP is closed: let the engine (and the handler) see the end.
            try:
                conn.receive_eof()
                for event in conn.events():
                    session.events.append(event)
                    self.handler(session, event)
            except BaseException as exc:
                if session.error is None:
                    session.error = exc
            session.done.set()


__all__ = [
    "TIMEOUT",
    "DriverTimeout",
    "FrameHeader",
    "parse_frames",
    "message_compression",
    "Client",
    "Session",
    "Server",
    "echo_handler",
    "CloseReceived",
    "ConnectionFailed",
]
