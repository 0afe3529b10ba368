"""The blocking connection both ``connect()`` and ``serve()`` hand out: ``recv``-style, on
the ``WebSocket`` driver in ``"lock"`` mode, with no helper thread.

Whoever calls ``recv()`` (or waits on a ping, or closes) drives the engine on its own thread:
it reads the socket, feeds the engine, answers pings, runs the keepalive and the close
timeout. Other threads may ``send``/``ping``/``close`` at any time; each call takes the
driver's lock and writes its frames itself, so frames never interleave. One thread at a
time reads (a second ``recv`` waits for the first).

Keepalive and timers run only while some thread is in ``recv()`` (or in ``ping().wait()``/
``close()``): a connection nobody reads answers no pings. See ``wsfast._sockio`` for the
write side's deadlock hazard (a writer that never reads while the peer echoes) and how a
blocked writer keeps reading into a bounded backlog.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Iterable, Iterator, Optional, Tuple, Union

from .._sockio import BlockingSocketTransport, blocking_step
from ..exceptions import ConnectionClosed, ConnectionClosedOK, InvalidState
from ..handler import Handler, WebSocket

__all__ = ["Connection", "PingWaiter", "Message"]

log = logging.getLogger("wsfast.sync")
_monotonic = time.monotonic

Message = Union[str, bytes]
Data = Union[str, bytes, bytearray, memoryview, Iterable[Union[str, bytes, bytearray, memoryview]]]

#: How often a waiter re-checks while another thread is the one reading.
_WAIT_TICK = 0.05


class _Collector(Handler):
    """Collects what the driver delivers for ``recv()``; nothing else runs on callbacks."""

    def __init__(self) -> None:
        self.messages: Deque[Message] = deque()
        self.closed = threading.Event()
        self.opened = False
        self.connection: Optional[Connection] = None
        append = self.messages.append

        if log.isEnabledFor(logging.DEBUG):  # decided once: nothing per message otherwise

            def on_message(ws: WebSocket, data: Any) -> None:
                ws.log.debug("< %s %d %s", "text" if isinstance(data, str) else "binary", len(data),
                             "chars" if isinstance(data, str) else "bytes")
                append(data)
                if ws.close_pending:
                    ws.pause_dispatch()

        else:

            def on_message(ws: WebSocket, data: Any) -> None:
                append(data)
                if ws.conn._pending is not None:  # ws.close_pending, one call less per message
                    # A close or a protocol failure waits behind this message: hand it out
                    # only once recv() returned this one, so the application's answer to it
                    # goes out before our close frame (Autobahn 3.x/4.x/5.15 strict).
                    ws.pause_dispatch()

        self.on_text = on_message  # type: ignore[method-assign]
        self.on_binary = on_message  # type: ignore[method-assign]

    def on_open(self, ws: WebSocket) -> None:
        self.opened = True

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        ws.log.info("connection %s closed: %s %r%s", ws.remote_address, code, reason, "" if clean else " (not clean)")
        self.closed.set()


class PingWaiter:
    """What ``ping()`` returns: ``wait(timeout)`` for the pong; ``latency`` once it came."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._event = threading.Event()
        #: Round-trip seconds, once the pong arrived (None before).
        self.latency: Optional[float] = None

    def _pong(self, latency: float) -> None:
        self.latency = latency
        self._event.set()

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: Optional[float] = None) -> float:
        """Wait (driving the connection if no other thread reads) for the pong; return the
        latency. Raises ``TimeoutError``, or ``ConnectionClosed`` if it closed first."""
        c = self._connection
        c._drive_until(self._event, timeout)
        if self.latency is not None:
            return self.latency
        if c._ws.closed:
            raise c._closed_exc()
        raise TimeoutError(f"no pong within {timeout} s")


class Connection:
    """A blocking WebSocket connection (the base of the client's and the server's)."""

    def __init__(self, ws: WebSocket, sock: socket.socket, collector: _Collector) -> None:
        self._ws = ws
        self._sock = sock
        self._collector = collector
        self._messages = collector.messages
        self._closed_event = collector.closed
        self._transport: BlockingSocketTransport = ws.transport  # type: ignore[assignment]
        self._recv_lock = threading.Lock()
        self._released = False
        collector.connection = self

    # ------------------------------------------------------------------ attributes

    @property
    def socket(self) -> socket.socket:
        """The socket (a ``ssl.SSLSocket`` for TLS). Do not read or write it yourself."""
        return self._sock

    @property
    def ws(self) -> WebSocket:
        """The driver underneath (counters, ``data``, close bookkeeping)."""
        return self._ws

    @property
    def subprotocol(self) -> Optional[str]:
        return self._ws.subprotocol

    @property
    def extensions(self) -> Tuple[str, ...]:
        return self._ws.extensions

    @property
    def local_address(self) -> Any:
        return self._ws.local_address

    @property
    def remote_address(self) -> Any:
        return self._ws.remote_address

    @property
    def latency(self) -> Optional[float]:
        """Round-trip seconds of the last ping answered (keepalive or ``ping()``), or None."""
        return self._ws.latency

    @property
    def state(self) -> Any:
        return self._ws.state

    @property
    def closed(self) -> bool:
        """True once the connection is gone (``close_code``/``close_reason`` are then set)."""
        return self._ws.closed

    @property
    def close_code(self) -> Optional[int]:
        """The peer's close code (1006 if none arrived), once closed."""
        ws = self._ws
        if not ws.closed:
            return None
        return ws.close_code if ws.close_code is not None else 1006

    @property
    def close_reason(self) -> str:
        return self._ws.close_reason

    # ------------------------------------------------------------------ receiving

    def recv(self, timeout: Optional[float] = None) -> Message:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Waits at most ``timeout`` seconds (None: forever; 0: only what has arrived) and
        raises ``TimeoutError`` then. Messages that arrived before the close are returned
        first; after them ``ConnectionClosedOK`` (1000/1001 both ways) or
        ``ConnectionClosedError`` (anything else) with the codes."""
        q = self._messages
        if q:
            return q.popleft()
        return self._recv(timeout)

    def _recv(self, timeout: Optional[float]) -> Message:
        q = self._messages
        ws = self._ws
        deadline = None if timeout is None else _monotonic() + timeout
        if not self._recv_lock.acquire(True, -1 if timeout is None else timeout):
            raise TimeoutError(f"no message within {timeout} s (another thread is reading)")
        try:
            sock = self._sock
            while True:
                if q:
                    return q.popleft()
                if ws._paused:  # dispatch_paused
                    ws.resume_dispatch()
                    continue
                if ws.closed:
                    break
                left = None
                if deadline is not None:
                    left = deadline - _monotonic()
                    if left < 0:
                        left = 0.0
                blocking_step(ws, sock, left)
                if q:
                    return q.popleft()
                if deadline is not None and not ws.closed and _monotonic() >= deadline:
                    raise TimeoutError(f"no message within {timeout} s")
        finally:
            self._recv_lock.release()
        self._release()
        raise self._closed_exc()

    def __iter__(self) -> Iterator[Message]:
        """Every message until the connection closes (``ConnectionClosedError`` propagates;
        a normal close ends the loop)."""
        recv = self.recv
        try:
            while True:
                yield recv()
        except ConnectionClosedOK:
            return

    def _drive_until(self, event: threading.Event, timeout: Optional[float]) -> None:
        """Read on this thread until ``event`` is set, the connection closes or ``timeout``
        passes; if another thread is reading, let it and watch ``event``."""
        ws = self._ws
        deadline = None if timeout is None else _monotonic() + timeout
        while not event.is_set() and not ws.closed:
            left = None if deadline is None else deadline - _monotonic()
            if left is not None and left <= 0:
                return
            if self._recv_lock.acquire(False):
                try:
                    blocking_step(ws, self._sock, left)
                finally:
                    self._recv_lock.release()
            else:
                event.wait(_WAIT_TICK if left is None else min(left, _WAIT_TICK))

    # ------------------------------------------------------------------ sending

    def send(self, message: Data) -> None:
        """Send ``str`` as text, bytes-like as binary, an iterable of either as one
        fragmented message (one frame per item). Safe from any thread.

        Raises ``ConnectionClosed`` when the connection is closed or closing, or when the
        write fails (``write_timeout`` passed without progress: the connection is dropped)."""
        ws = self._ws
        try:
            if self._transport.closed:
                raise InvalidState("closed")
            if type(message) is str:
                ws.send_text(message)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                ws.send_binary(message)
            elif isinstance(message, str):
                ws.send_text(str(message))
            else:
                ws.send(message)
        except InvalidState:
            raise self._closed_exc() from None

    def ping(self, payload: Union[bytes, bytearray, memoryview, str] = b"") -> PingWaiter:
        """Send a ping (a unique 4-byte payload if none is given); ``wait()`` on the result
        for its pong and its ``latency``. Safe from any thread."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        waiter = PingWaiter(self)
        try:
            if self._transport.closed:
                raise InvalidState("closed")
            self._ws.ping(payload, waiter._pong)
        except InvalidState:
            raise self._closed_exc() from None
        return waiter

    def pong(self, payload: Union[bytes, bytearray, memoryview] = b"") -> None:
        """Send an unsolicited pong (a one-way heartbeat)."""
        try:
            self._ws.pong(payload)
        except InvalidState:
            raise self._closed_exc() from None

    # ------------------------------------------------------------------ closing

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close: send a close frame, wait for the closing handshake (at most
        ``close_timeout``, then TCP is closed anyway), release the socket. Idempotent;
        safe from any thread."""
        ws = self._ws
        if not ws.closed:
            ws.resume_dispatch()  # a held close/failure takes effect first
            try:
                ws.close(code, reason)
            except InvalidState:
                pass  # closing already
            except ConnectionClosed:
                pass  # the close frame could not be written: the transport is shut
            self._drive_until(self._closed_event, None)
        self._release()

    def _abort(self) -> None:
        """Close TCP now, without the closing handshake."""
        self._ws.force_quit()

    def _release(self) -> None:
        if self._released:
            return
        lock = self._ws._lock
        if lock is None:
            return
        with lock:  # no writer is half-way through a send
            if not self._released:
                self._released = True
                self._transport.release()

    def _closed_exc(self) -> ConnectionClosed:
        exc = self._ws.closed_error()
        assert isinstance(exc, ConnectionClosed)
        return exc

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._ws.state.name} {self.remote_address}>"


def _call(fn: Optional[Callable[..., Any]], *args: Any) -> Any:
    return None if fn is None else fn(*args)
