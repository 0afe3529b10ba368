"""One handler interface for every callback adapter, and the per-connection driver behind it.

A ``Handler`` written once runs unchanged in the three client modes (``wsfast.clients``),
in the selector loop (``wsfast.loop``, servers and clients) and in asyncio's callback face
(``wsfast.asyncio``). The blocking ``wsfast.sync`` connections run on the same driver with a
handler that collects messages for ``recv()``.

``WebSocket`` is the object every callback receives as ``ws``. It owns the sans-IO engine,
dispatches its events to the handler, runs the keepalive, the handshake timeout and the close
timeout, and turns sends from other threads into commands for the owning thread. What it
does *not* own is IO: an adapter gives it a ``Transport`` (write bytes, close TCP, wake the
owning thread, timers changed) and calls ``feed``/``feed_eof``/``check_timers``/
``drain_commands`` from its own loop. No adapter touches frames or handshakes.

Threading contract
------------------
Inside a callback (the owning thread), ``ws.send_text`` and friends act at once: the frame is
encoded and handed to the transport before the call returns. From any other thread they go
through one of two paths chosen by the adapter:

* ``queue`` (the loop, asyncio, the background client): the call is queued (bounded;
  ``QueueFull`` when full, never a silent drop, never a block) and the owning thread is woken;
* ``lock`` (the blocking adapters, whose owning thread may sit in ``recv``): the call takes
  the connection's lock and writes itself, so frames never interleave.

Order of callbacks: ``on_request`` (servers) → ``on_open`` → messages, pings, pongs →
``on_close`` exactly once, last, for every connection (also one that never opened). Errors
(``on_error``) come before ``on_close``, with a typed exception: ``InvalidStatus``/
``InvalidHandshake``/``OpenTimeout`` when the handshake fails, ``ProtocolError`` (and its
``InvalidUTF8``/``PayloadTooBig``) when the peer breaks the protocol, ``ConnectionClosedError``
when the keepalive times out, ``NetworkError`` when the transport breaks, or the exception a
callback raised (the connection is then closed with 1011 and the loop goes on).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple, Type, TypeVar, Union

from ._net import closed_error, handshake_error
from ._state import CLOSED, CONNECTING, OPEN
from .connection import Connection, ServerConnection
from .events import (
    Accepted,
    BinaryMessage,
    CloseReceived,
    ConnectionFailed,
    HandshakeFailed,
    Ping,
    Pong,
    Rejected,
    Request,
    TextMessage,
    TransportClosed,
)
from .exceptions import (
    ConnectionClosedError,
    InvalidHandshake,
    InvalidState,
    InvalidUTF8,
    OpenTimeout,
    PayloadTooBig,
    ProtocolError,
    QueueFull,
)

__all__ = ["Handler", "Accept", "Reject", "DEFER", "WebSocket", "Transport", "DriverTimer", "DEFAULT_QUEUE_SIZE"]

log = logging.getLogger("wsfast.handler")
_get_ident = threading.get_ident
_monotonic = time.monotonic

#: Commands another thread may queue for one connection before ``QueueFull``.
DEFAULT_QUEUE_SIZE = 4096

Headers = Sequence[Tuple[str, str]]
_W = TypeVar("_W", bound="WebSocket")


@dataclass(frozen=True)
class Accept:
    """``on_request``'s answer: accept, with a subprotocol (one the client offered) and
    extra response headers. Returning ``None`` accepts with the server's defaults."""

    subprotocol: Optional[str] = None
    headers: Headers = ()


@dataclass(frozen=True)
class Reject:
    """``on_request``'s answer: refuse the upgrade with an HTTP status, headers and body
    (e.g. ``Reject(401, [("WWW-Authenticate", 'Basic realm="ws"')])``)."""

    status: int = 403
    headers: Headers = ()
    body: bytes = b""


class _Defer:
    """The type of ``DEFER``."""

    def __repr__(self) -> str:
        return "DEFER"


#: ``on_request``'s answer when the decision comes later, from outside the callback (an
#: ASGI app's task): call ``ws.accept()``/``ws.reject()`` then; the handshake timer runs on.
DEFER = _Defer()

Decision = Union[None, Accept, Reject, _Defer]


class Handler:
    """Override the callbacks you need; every one gets the connection as ``ws`` first.

    Text arrives as ``str`` (decoded once, while validating: a borrowed-bytes variant saved
    nothing measurable, since the engine validates UTF-8 as it parses), binary as ``bytes``.
    """

    def on_request(self, ws: WebSocket, request: Request) -> Decision:
        """Servers: the handshake request (``request.path``, ``.query``, ``.headers``,
        ``ws.remote_address``). Return ``None``/``Accept(...)`` to accept, ``Reject(...)`` to refuse."""
        return None

    def on_open(self, ws: WebSocket) -> None:
        """The handshake is done: ``ws.subprotocol``, ``ws.request``/``ws.response`` are set."""

    def on_text(self, ws: WebSocket, data: str) -> None:
        """A text message."""

    def on_binary(self, ws: WebSocket, data: bytes) -> None:
        """A binary message."""

    def on_ping(self, ws: WebSocket, payload: bytes) -> None:
        """A ping arrived (the pong was already queued automatically)."""

    def on_pong(self, ws: WebSocket, payload: bytes) -> None:
        """A pong arrived."""

    def on_close(self, ws: WebSocket, code: int, reason: str, clean: bool) -> None:
        """The connection is gone. ``code``/``reason`` are the peer's close frame (1006: none
        arrived); ``clean`` is True when the closing handshake completed before TCP ended."""

    def on_error(self, ws: WebSocket, exc: BaseException) -> None:
        """Something failed (see the module docstring for the types); ``on_close`` follows."""

    def on_idle(self, ws: WebSocket) -> None:
        """Spin-wait client modes: an iteration found nothing to do."""

    def on_pause(self, ws: WebSocket) -> None:
        """The write buffer passed its high watermark: stop producing until ``on_resume``."""

    def on_resume(self, ws: WebSocket) -> None:
        """The write buffer drained below its low watermark."""


class DriverTimer:
    """A handler timer the driver keeps itself (adapters without timers of their own: the
    client modes and the blocking adapters); ``cancel()`` it from the owning thread."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], Any]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:
        return f"<DriverTimer at {self.when:.3f}{' cancelled' if self.cancelled else ''}>"


_timer_seq = itertools.count()


class Transport:
    """What an adapter provides to a ``WebSocket``: its side of the IO."""

    def write(self, chunks: List[bytes]) -> None:
        """Write ``chunks`` in order (buffer what the socket does not take yet)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close TCP once what was written is flushed (or at once if it cannot be)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Close TCP now, dropping anything unsent (force quit, timeouts)."""
        self.close()

    def wake(self) -> None:
        """Another thread queued a command: make the owning thread call ``drain_commands``."""
        raise NotImplementedError

    def timers_changed(self) -> None:
        """``next_deadline()`` may have moved earlier: re-arm the adapter's timer."""

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        """Run ``callback`` on the owning thread after ``delay`` seconds (handler timers).

        An adapter with a timer service of its own (the loop, asyncio) overrides this; for
        the others ``WebSocket.call_later`` keeps the timers itself, in the deadlines the
        adapter already waits on (``next_deadline``/``check_timers``)."""
        raise NotImplementedError("this adapter has no application timers")


def _protocol_error(ev: ConnectionFailed) -> ProtocolError:
    if ev.code == 1007:
        return InvalidUTF8(ev.reason)
    if ev.code == 1009:
        return PayloadTooBig(ev.reason)
    return ProtocolError(ev.reason, ev.code)


class WebSocket:
    """One connection as a handler sees it, and the driver its adapter calls.

    Args:
        conn: the sans-IO engine (a ``ClientConnection`` or ``ServerConnection``).
        handler: the ``Handler``.
        transport: the adapter's ``Transport``.
        open_timeout: seconds for the opening handshake (None: none).
        ping_interval: send a keepalive ping after this many seconds without input
            (None: no keepalive).
        ping_timeout: fail with 1011 when its pong does not arrive within this (None: wait).
        close_timeout: seconds the closing handshake may take before TCP is closed anyway.
        cross_thread: ``"queue"`` or ``"lock"`` (see the module docstring).
        queue_size: bound of the cross-thread command queue.
    """

    def __init__(
        self,
        conn: Connection,
        handler: Handler,
        transport: Transport,
        *,
        open_timeout: Optional[float] = 10.0,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: Optional[float] = 20.0,
        close_timeout: Optional[float] = 10.0,
        cross_thread: str = "queue",
        queue_size: int = DEFAULT_QUEUE_SIZE,
        logger: Optional[logging.Logger] = None,
    ) -> None:
        if cross_thread not in ("queue", "lock"):
            raise ValueError("cross_thread is 'queue' or 'lock'")
        self.conn = conn
        self.handler = handler
        self.transport = transport
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.log = logger or log
        #: Set by the adapter.
        self.local_address: Any = None
        self.remote_address: Any = None
        #: Servers: the handshake request; clients: the ``Accepted`` response.
        self.request: Optional[Request] = getattr(conn, "request", None)
        self.response: Optional[Accepted] = None
        #: Round-trip time of the last ping answered (seconds), or None.
        self.latency: Optional[float] = None
        #: Servers: headers added to every 101 response this driver sends.
        self.response_headers: Headers = ()
        #: Free for the application (per-connection state without subclassing).
        self.data: Dict[str, Any] = {}
        #: Counters (read them from the owning thread).
        self.messages_received = 0
        self.messages_sent = 0
        #: True once ``on_close`` ran.
        self.closed = False
        self.close_code: Optional[int] = None
        self.close_reason = ""
        self.clean = False
        #: The first error reported to ``on_error`` (None if none).
        self.error: Optional[BaseException] = None

        self._on_text = handler.on_text
        self._on_binary = handler.on_binary
        self._owner = _get_ident()
        self._lock: Optional[threading.RLock] = threading.RLock() if cross_thread == "lock" else None
        self._commands: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = deque()
        self._qlock = threading.Lock()
        self._queue_size = queue_size
        # Timers: absolute monotonic deadlines (None = not armed).
        self._open_deadline: Optional[float] = None
        self._ping_deadline: Optional[float] = None
        self._pong_deadline: Optional[float] = None
        self._close_deadline: Optional[float] = None
        self._rx = 0  # receive_data calls: the keepalive skips pings while input flows
        self._rx_seen = 0
        self._pings: Dict[bytes, Tuple[float, Optional[Callable[[float], Any]]]] = {}
        self._ping_seq = int.from_bytes(os.urandom(4), "big")
        self._transport_closed = False
        self._opened = False
        self._in_dispatch = False
        self._eof_pending = False  # a close asked for inside a callback: finish after dispatch
        self._gave_up = False  # the application closed/force-quit during the handshake
        self._paused = False  # pause_dispatch(): hand out nothing more until resume_dispatch()
        self._held: Optional[Iterator[Any]] = None  # the events() iterator a pause stopped
        self._app_timers: List[Tuple[float, int, DriverTimer]] = []  # heap: call_later without adapter timers
        #: Set by an adapter whose application answers events on another thread (the
        #: background client): while the peer's close or a protocol failure waits in the
        #: engine, it is asked on the owning thread before each event is handed out; True
        #: pauses the dispatch there, with nothing of the close applied yet (its close frame
        #: unsent, sends still allowed), until ``resume_dispatch()``; before answering False
        #: it may run commands (``drain_commands``), which go out first. None: never hold.
        self.hold_close: Optional[Callable[[WebSocket], bool]] = None

    @classmethod
    def with_options(
        cls: Type[_W], conn: Connection, handler: Handler, transport: Transport, options: Any, **kwargs: Any
    ) -> _W:
        """A driver with the timers of ``options`` (a ``ClientOptions``/``ServerOptions``:
        ``open_timeout``, ``ping_interval``, ``ping_timeout``, ``close_timeout``); keyword
        arguments override them and give the rest (``cross_thread``, ``queue_size``, ...)."""
        timers: Dict[str, Any] = {
            "open_timeout": options.open_timeout,
            "ping_interval": options.ping_interval,
            "ping_timeout": options.ping_timeout,
            "close_timeout": options.close_timeout,
        }
        timers.update(kwargs)
        return cls(conn, handler, transport, **timers)

    # ------------------------------------------------------------------ adapter side

    def bind_thread(self, ident: Optional[int] = None) -> None:
        """Make the calling thread (or the thread ``ident``) the owning one (the adapter's loop)."""
        self._owner = _get_ident() if ident is None else ident

    @property
    def in_dispatch(self) -> bool:
        """True while a callback of this connection runs (on the owning thread)."""
        return self._in_dispatch

    @property
    def close_pending(self) -> bool:
        """True when the peer's close or a protocol failure waits behind events not yet
        handed out (its close frame goes out when they are: answer them first)."""
        return self.conn._pending is not None

    def set_handler(self, handler: Handler) -> None:
        """Replace the handler before ``start()`` (a server that decides per connection only
        once the transport is up, e.g. after its TLS handshake)."""
        self.handler = handler
        self._on_text = handler.on_text
        self._on_binary = handler.on_binary

    def start(self) -> None:
        """The transport is connected: write the client's request, arm the handshake timer."""
        if self.open_timeout is not None and self.conn.state is CONNECTING:
            self._open_deadline = _monotonic() + self.open_timeout
        self._flush()
        self.transport.timers_changed()

    def feed(self, data: Any) -> None:
        """Bytes arrived from the transport."""
        lock = self._lock
        if lock is not None:
            with lock:
                self._feed(data)
        else:
            self._feed(data)

    def payload_buffer(self) -> Optional[memoryview]:
        """The zero-copy receive buffer when the next bytes are the payload of a large
        uncompressed frame (``Connection.get_payload_buffer``), else None: read into it,
        then call ``buffer_updated(n)`` (also when the read brought nothing or failed: 0);
        otherwise read as usual and ``feed``."""
        lock = self._lock
        if lock is not None:
            with lock:
                return self.conn.get_payload_buffer()
        return self.conn.get_payload_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` bytes were read into the buffer from ``payload_buffer()`` (0: none;
        call it before ``feed_eof`` then)."""
        lock = self._lock
        if lock is not None:
            with lock:
                self._buffer_updated(nbytes)
        else:
            self._buffer_updated(nbytes)

    def _buffer_updated(self, nbytes: int) -> None:
        if nbytes:
            self._rx += 1  # (the keepalive counts reads that brought something)
        self.conn.buffer_updated(nbytes)
        self._after_input()

    def _feed(self, data: Any) -> None:
        self._rx += 1
        conn = self.conn  # (typed in handler.pxd: a C call into the compiled engine)
        conn.receive_data(data)
        self._after_input()

    def _after_input(self) -> None:
        conn = self.conn
        if conn._events and not self._paused:
            self._dispatch()
        # data_to_send() has nothing to give and nothing to apply unless one of these holds
        # (most reads answer nothing: no call then).
        if conn._out or conn._pending is not None or conn._eof_deferred:
            out = conn.data_to_send()
            if out:
                self.transport.write(out)
        if conn.state is not OPEN:
            self._after_state_change()

    def feed_eof(self) -> None:
        """The peer closed TCP (or the transport broke: call ``transport_error`` first)."""
        if self._lock is not None:
            with self._lock:
                self._feed_eof()
        else:
            self._feed_eof()

    def _feed_eof(self) -> None:
        if self.closed:
            return
        if self._in_dispatch or self._paused:
            self._eof_pending = True
            return
        self.conn.receive_eof()
        self._dispatch()
        self._flush_out()
        self._close_transport()
        self._finish()

    def transport_error(self, exc: BaseException) -> None:
        """The transport broke (reset, TLS error): report it, then the close."""
        if self.closed:
            return
        self._report(exc)
        self._transport_closed = True
        self.feed_eof()

    def next_deadline(self) -> Optional[float]:
        """The earliest armed timer (monotonic seconds), or None."""
        # (Called before every read of the blocking adapters: the usual case, only the
        # keepalive armed, takes no loop.)
        best = self._ping_deadline
        for d in (self._open_deadline, self._pong_deadline, self._close_deadline):
            if d is not None and (best is None or d < best):
                best = d
        timers = self._app_timers
        if timers:
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            if timers and (best is None or timers[0][0] < best):
                best = timers[0][0]
        return best

    def check_timers(self, now: Optional[float] = None) -> Optional[float]:
        """Fire the timers that are due; return the next deadline."""
        if self.closed:
            return None
        if now is None:
            now = _monotonic()
        if self._lock is not None:
            with self._lock:
                self._check_timers(now)
        else:
            self._check_timers(now)
        if self._app_timers and not self.closed:
            self._fire_app_timers(now)
        return None if self.closed else self.next_deadline()

    def _fire_app_timers(self, now: float) -> None:
        timers = self._app_timers
        while timers and timers[0][0] <= now and not self.closed:
            timer = heapq.heappop(timers)[2]
            if timer.cancelled:
                continue
            timer.cancelled = True  # fired: a later cancel() is a no-op
            try:
                timer.callback()
            except Exception:
                self.log.exception("timer callback %r raised", timer.callback)

    def _check_timers(self, now: float) -> None:
        conn = self.conn
        d = self._open_deadline
        if d is not None and now >= d:
            self._open_deadline = None
            if conn.state is CONNECTING:
                self._report(OpenTimeout(f"the opening handshake did not finish within {self.open_timeout} s"))
                self._abort()
                return
        d = self._close_deadline
        if d is not None and now >= d:
            self._close_deadline = None
            self.log.debug("close timeout after %s s: closing TCP", self.close_timeout)
            self._abort()
            return
        d = self._pong_deadline
        if d is not None and now >= d:
            self._pong_deadline = None
            if conn.state is OPEN:
                self.log.info("keepalive: no pong within %s s, failing with 1011", self.ping_timeout)
                self._report(ConnectionClosedError(1006, f"keepalive: no pong within {self.ping_timeout} s", 1011))
                conn.fail(1011, "keepalive ping timeout")
                self._flush_out()
                self._abort()
                return
        d = self._ping_deadline
        if d is not None and now >= d:
            interval = self.ping_interval
            assert interval is not None
            if conn.state is not OPEN:
                self._ping_deadline = None
            elif self._rx != self._rx_seen:
                self._rx_seen = self._rx  # input flowed: the peer is alive, no ping needed
                self._ping_deadline = now + interval
            else:
                self._ping_deadline = now + interval
                self._send_ping(b"", None, keepalive=True)
                self._flush_out()

    def drain_commands(self) -> None:
        """Run every command other threads queued (all of them, in order)."""
        with self._qlock:
            if not self._commands:
                return
            commands = self._commands
            self._commands = deque()
        for fn, args in commands:
            try:
                fn(*args)
            except Exception as exc:  # e.g. a send after close: report, keep draining
                self.log.debug("queued command %s failed: %r", getattr(fn, "__name__", fn), exc)
        self._flush()

    @property
    def pending_commands(self) -> int:
        return len(self._commands)

    # ------------------------------------------------------------------ dispatch

    def pause_dispatch(self) -> None:
        """Inside a callback: hand out no further event until ``resume_dispatch()``.

        The events behind stay in the engine, in order; so does a protocol failure among
        them, whose close frame therefore goes out only after the application answered the
        messages before it (an ASGI app's task answers later than its callback). Bytes fed
        meanwhile are buffered by the engine within its limits; the adapter should stop
        reading the socket while paused."""
        self._paused = True

    def resume_dispatch(self) -> None:
        """Owning thread: go on handing out events where ``pause_dispatch`` stopped."""
        if self._lock is not None:
            with self._lock:
                self._resume_dispatch()
        else:
            self._resume_dispatch()

    def _resume_dispatch(self) -> None:
        if not self._paused or self._in_dispatch:
            self._paused = False
            return
        self._paused = False
        held, self._held = self._held, None
        self._dispatch(held)
        self._flush()
        if self._eof_pending and not self._paused and not self.closed:
            self._eof_pending = False
            self._feed_eof()

    @property
    def dispatch_paused(self) -> bool:
        return self._paused

    def _dispatch(self, held: Optional[Iterator[Any]] = None) -> None:
        conn = self.conn
        hold = self.hold_close
        if hold is not None and conn._pending is not None:
            # Taken below or held: either way data_to_send() (in hold, or while held) must
            # not apply it before its turn.
            conn._pending.handed_out = True
            if hold(self):
                self._held = held
                self._paused = True
                return
        on_text = self._on_text
        on_binary = self._on_binary
        self._in_dispatch = True
        try:
            while True:
                ev: Any
                it = held if held is not None else conn.events()
                held = None
                for ev in it:
                    t = type(ev)
                    if t is TextMessage:
                        self.messages_received += 1
                        on_text(self, ev.data)
                    elif t is BinaryMessage:
                        self.messages_received += 1
                        on_binary(self, ev.data)
                    else:
                        self._on_event(ev)
                    if self._paused or (hold is not None and conn._pending is not None and hold(self)):
                        self._paused = True
                        self._held = it
                        return
                if not conn._events:
                    break
        except Exception as exc:
            self._handler_failed(exc)
        finally:
            self._in_dispatch = False
        if self._eof_pending and not self._paused:
            self._eof_pending = False
            self._feed_eof()

    def _on_event(self, ev: Any) -> None:
        t = type(ev)
        h = self.handler
        if t is Ping:
            h.on_ping(self, ev.data)
        elif t is Pong:
            self._pong(ev.data)
            h.on_pong(self, ev.data)
        elif t is Request:
            self._on_request(ev)
        elif t is Accepted:
            self.response = ev
            self.log.debug("handshake accepted: subprotocol %r, extensions %r", ev.subprotocol, ev.extensions)
            self._opened_now()
        elif t is CloseReceived:
            self.log.debug("close frame received: %s %r", ev.code, ev.reason)
        elif t is ConnectionFailed:
            self.log.debug("protocol failure %s: %s", ev.code, ev.reason)
            self._report(_protocol_error(ev))
        elif t is Rejected or t is HandshakeFailed:
            if self.error is not None or self._gave_up:
                # Already explained (OpenTimeout), or the application gave up the handshake
                # itself (close/force_quit while connecting): one error, not a second one.
                self.log.debug("handshake ended: %s", ev.reason)
            elif isinstance(self.conn, ServerConnection):
                self.log.info("handshake refused with %s: %s", ev.status, ev.reason)
                self._report(InvalidHandshake(ev.reason, ev.status))
            else:
                exc = handshake_error(ev)
                self.log.info("handshake failed: %s", exc)
                self._report(exc)
        elif t is TransportClosed:
            self.close_code = ev.code
            self.close_reason = ev.reason
            self.clean = ev.clean

    def _on_request(self, request: Request) -> None:
        self.request = request
        conn = self.conn
        assert isinstance(conn, ServerConnection)
        self.log.debug("handshake request %s %s", request.method, request.target)
        try:
            decision = self.handler.on_request(self, request)
        except Exception as exc:
            self.log.exception("on_request raised; answering 500")
            self._report(exc)
            conn.reject(500, body=b"internal server error\n")
            return
        if conn.state is not CONNECTING:
            return  # the hook answered through ws.accept()/ws.reject() itself
        if decision is DEFER:
            return  # answered later with ws.accept()/ws.reject() (e.g. an ASGI app's task)
        if isinstance(decision, Reject):
            self.log.info("handshake rejected by the application with %s", decision.status)
            conn.reject(decision.status, headers=decision.headers, body=decision.body)
            return
        if isinstance(decision, Accept):
            conn.accept(decision.subprotocol, extra_headers=[*self.response_headers, *decision.headers])
        else:
            conn.accept(extra_headers=self.response_headers)
        self._opened_now()

    def _opened_now(self) -> None:
        self._open_deadline = None
        self._opened = True
        if self.ping_interval is not None:
            self._ping_deadline = _monotonic() + self.ping_interval
            self.transport.timers_changed()
        self.handler.on_open(self)

    def _report(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        try:
            self.handler.on_error(self, exc)
        except Exception:
            self.log.exception("on_error raised")

    def _handler_failed(self, exc: Exception) -> None:
        self.log.error("handler raised %r: closing with 1011", exc, exc_info=exc)
        self._report(exc)
        conn = self.conn
        if conn.state is OPEN or conn.state.name == "CLOSING":
            conn.fail(1011, "internal error")
        elif conn.state is CONNECTING and isinstance(conn, ServerConnection) and conn.request is not None:
            conn.reject(500, body=b"internal server error\n")
        self._flush_out()
        self._close_transport()
        self._feed_eof()  # deferred to the end of the dispatch

    # ------------------------------------------------------------------ closing

    def _after_state_change(self) -> None:
        conn = self.conn
        if conn.close_tcp:
            self._close_transport()
            if not self.closed:
                self._feed_eof()
            return
        if self._close_deadline is None and self.close_timeout is not None:
            if conn.close_code_sent is not None or conn.close_expected() or conn.state is CLOSED:
                self._close_deadline = _monotonic() + self.close_timeout
                self._ping_deadline = self._pong_deadline = None
                self.transport.timers_changed()

    def _close_transport(self) -> None:
        if not self._transport_closed:
            self._transport_closed = True
            self.transport.close()

    def _abort(self) -> None:
        if not self._transport_closed:
            self._transport_closed = True
            self.transport.abort()
        self._feed_eof()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._open_deadline = self._ping_deadline = self._pong_deadline = self._close_deadline = None
        for _, _, timer in self._app_timers:
            timer.cancelled = True
        self._app_timers.clear()
        code = self.close_code if self.close_code is not None else 1006
        self.log.debug("closed: %s %r clean=%s", code, self.close_reason, self.clean)
        try:
            self.handler.on_close(self, code, self.close_reason, self.clean)
        except Exception:
            self.log.exception("on_close raised")

    # ------------------------------------------------------------------ output

    def _flush_out(self) -> None:
        out = self.conn.data_to_send()
        if out and not self._transport_closed:
            self.transport.write(out)

    def _flush(self) -> None:
        self._flush_out()
        if self.conn.state is not OPEN:
            self._after_state_change()

    def _run(self, fn: Callable[..., Any], args: Tuple[Any, ...]) -> Any:
        """Run an operation on the owning thread, under the lock, or queue it."""
        lock = self._lock
        if lock is not None:
            with lock:
                r = fn(*args)
                self._flush()
                return r
        if _get_ident() == self._owner:
            r = fn(*args)
            self._flush()
            return r
        with self._qlock:
            if len(self._commands) >= self._queue_size:
                raise QueueFull(f"{len(self._commands)} commands already queued for this connection")
            self._commands.append((fn, args))
            first = len(self._commands) == 1
        if first:
            self.transport.wake()
        return None

    # ------------------------------------------------------------------ user side

    @property
    def state(self) -> Any:
        return self.conn.state

    @property
    def subprotocol(self) -> Optional[str]:
        return self.conn.subprotocol

    @property
    def extensions(self) -> Tuple[str, ...]:
        return tuple(e.name for e in self.conn.extensions)

    @property
    def is_open(self) -> bool:
        return self.conn.state is OPEN

    def _send_locked(self, send: Callable[[Any], None], data: Any) -> None:
        """cross_thread="lock": ``_run``'s work for one message, with fewer calls."""
        assert self._lock is not None
        with self._lock:
            conn = self.conn
            send(data)
            self.messages_sent += 1
            out = conn.data_to_send()
            if out and not self._transport_closed:
                self.transport.write(out)
            if conn.state is not OPEN:
                self._after_state_change()

    def send_text(self, text: str) -> None:
        """Send a text message."""
        if self._lock is not None:
            self._send_locked(self.conn.send_text, text)
            return
        if _get_ident() == self._owner:
            conn = self.conn
            conn.send_text(text)
            self.messages_sent += 1
            self.transport.write(conn.data_to_send())
            return
        self._run(self._send_text, (text,))

    def _send_text(self, text: str) -> None:
        self.conn.send_text(text)
        self.messages_sent += 1

    def send_binary(self, data: Any) -> None:
        """Send a binary message (bytes, bytearray or memoryview)."""
        if self._lock is not None:
            self._send_locked(self.conn.send_binary, data)
            return
        if _get_ident() == self._owner:
            conn = self.conn
            conn.send_binary(data)
            self.messages_sent += 1
            self.transport.write(conn.data_to_send())
            return
        if type(data) is not bytes:
            data = bytes(data)  # the caller may reuse its buffer before the owner runs
        self._run(self._send_binary, (data,))

    def _send_binary(self, data: Any) -> None:
        self.conn.send_binary(data)
        self.messages_sent += 1

    def send(self, message: Any) -> None:
        """``str`` → text, bytes-like → binary, an iterable of either → one fragmented message."""
        if isinstance(message, str):
            self.send_text(message)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            self.send_binary(message)
        else:
            parts = list(message)
            self._run(self._send_fragments, (parts,))

    def _send_fragments(self, parts: List[Any]) -> None:
        if not parts:
            raise ValueError("an empty iterable is not a message")
        kind = str if isinstance(parts[0], str) else bytes
        conn = self.conn
        last = len(parts) - 1
        for i, part in enumerate(parts):
            if kind is str:
                if not isinstance(part, str):
                    raise TypeError("a fragmented message mixes str and bytes")
                conn.send_text(part, fin=i == last)
            else:
                if isinstance(part, str):
                    raise TypeError("a fragmented message mixes str and bytes")
                conn.send_binary(part, fin=i == last)
        self.messages_sent += 1

    def ping(self, payload: Any = b"", callback: Optional[Callable[[float], Any]] = None) -> None:
        """Send a ping; ``callback(latency)`` runs on the owning thread when its pong arrives.

        With no payload a unique 4-byte one is chosen, so each pong matches its ping."""
        self._run(self._send_ping, (bytes(payload), callback))

    def _send_ping(self, payload: bytes, callback: Optional[Callable[[float], Any]], keepalive: bool = False) -> None:
        if not payload:
            self._ping_seq = (self._ping_seq + 1) & 0xFFFFFFFF
            payload = self._ping_seq.to_bytes(4, "big")
        self.conn.send_ping(payload)
        now = _monotonic()
        if len(self._pings) > 64:  # pongs that never came (RFC 6455 lets peers skip some)
            self._pings.clear()
        self._pings[payload] = (now, callback)
        if self.ping_timeout is not None and self._pong_deadline is None:
            self._pong_deadline = now + self.ping_timeout
            self.transport.timers_changed()
        self.log.debug("ping %s%s", payload.hex(), " (keepalive)" if keepalive else "")

    def _pong(self, payload: bytes) -> None:
        entry = self._pings.pop(payload, None)
        if entry is None:
            return  # unsolicited pong (a heartbeat), or one for a ping we forgot
        sent, callback = entry
        # RFC 6455 §5.5.3: a pong may answer only the latest ping; older ones are answered too.
        for key, (t, cb) in list(self._pings.items()):
            if t <= sent:
                del self._pings[key]
                if cb is not None:
                    cb(_monotonic() - t)
        self.latency = _monotonic() - sent
        self._pong_deadline = None
        if callback is not None:
            callback(self.latency)

    def pong(self, payload: Any = b"") -> None:
        """Send an unsolicited pong (a one-way heartbeat)."""
        self._run(self.conn.send_pong, (bytes(payload),))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; ``on_close`` follows when it completes or times out."""
        self._run(self._close, (code, reason))

    def _close(self, code: int, reason: str) -> None:
        conn = self.conn
        if conn.state is CONNECTING:
            # Nothing to close yet: give up the handshake.
            self._gave_up = True
            self._abort()
            return
        conn.close(code, reason)
        self.log.debug("close sent: %s %r", code, reason)

    def force_quit(self) -> None:
        """Leave at once: close TCP without a closing handshake (``on_close`` with 1006)."""
        self._run(self._force_quit, ())

    def _force_quit(self) -> None:
        if self.conn.state is CONNECTING:
            self._gave_up = True
        self._abort()

    def accept(self, subprotocol: Optional[str] = None, headers: Headers = ()) -> None:
        """Servers, inside ``on_request``: accept now (as returning ``Accept`` does)."""
        conn = self.conn
        if not isinstance(conn, ServerConnection):
            raise InvalidState("only a server connection accepts")
        conn.accept(subprotocol, extra_headers=[*self.response_headers, *headers])
        self._opened_now()
        if not self._in_dispatch:
            # Deferred answer (DEFER): nothing else will write the 101, nor hand out the
            # frames that arrived behind the request.
            if conn._events:
                self._dispatch()
            self._flush()

    def reject(self, status: int = 403, headers: Headers = (), body: bytes = b"") -> None:
        """Servers, inside ``on_request``: refuse now (as returning ``Reject`` does)."""
        conn = self.conn
        if not isinstance(conn, ServerConnection):
            raise InvalidState("only a server connection rejects")
        conn.reject(status, headers=headers, body=body)
        if not self._in_dispatch:
            self._flush()  # deferred answer (DEFER): write the response, close TCP

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        """Run ``callback`` on the owning thread after ``delay`` seconds; returns a handle
        with ``cancel()``. In every adapter: the loop's and asyncio's own timers where they
        have them, else the driver's (fired between reads, with the keepalive, in the client
        modes and the blocking adapters). A callback that raises is logged; the connection
        goes on. Timers die with the connection: none fires after ``on_close``."""
        transport = self.transport
        if type(transport).call_later is not Transport.call_later:

            def fire() -> None:
                if not self.closed:
                    callback()

            return transport.call_later(delay, fire)
        timer = DriverTimer(_monotonic() + max(delay, 0.0), callback)
        heapq.heappush(self._app_timers, (timer.when, next(_timer_seq), timer))
        transport.timers_changed()
        return timer

    def closed_error(self) -> Exception:
        """The ``ConnectionClosedOK``/``ConnectionClosedError`` describing how it ended."""
        return closed_error(self.conn)

    def __repr__(self) -> str:
        return f"<WebSocket {self.conn.role.name.lower()} {self.conn.state.name} {self.remote_address}>"
