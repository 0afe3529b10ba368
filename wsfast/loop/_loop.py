"""The selector event loop: one thread, thousands of client and server connections.

Theory of operation
-------------------
One ``selectors.DefaultSelector`` (epoll on Linux) watches every socket: listeners, client
and server connections, and one wake-up fd (an eventfd, or a socket pair elsewhere). Each
connection is a ``_Conn`` (a ``wsfast._nbio.NonBlockingSocketTransport``) driving one shared
``wsfast.handler.WebSocket``: the driver dispatches events to the ``Handler``, runs the
keepalive and the handshake/close timeouts, and queues sends from other threads. The loop
only moves bytes and runs timers.

* Sends made on the loop thread (inside callbacks, timers) go straight into the engine and
  the socket. Sends from other threads go through the driver's bounded queue
  (``cross_thread="queue"``: ``QueueFull`` when full, never a block); the first command
  queued for a connection wakes the loop through the one wake-up fd, and wakes are
  coalesced (one write per loop iteration at most), so the loop can never deadlock on its
  own queue (ws-rs#219).
* Timers live in one heap with lazy deletion (a cancelled entry is skipped when it reaches
  the top; the heap is rebuilt when most of it is dead). Each connection holds at most one
  live entry for its driver's next deadline, re-armed only when it moves earlier or fires,
  so 10,000 keepalives cost one heap operation per ping interval each, not a rescan.
* Backpressure: above ``high_water`` bytes buffered for a peer the loop stops reading from
  that peer (so an echo cannot grow) and calls ``on_pause``; below ``low_water`` it reads
  again and calls ``on_resume``. A slow-consumer policy can drop the connection after
  ``max_buffer`` bytes or ``slow_consumer_timeout`` seconds paused. A dropped consumer still
  gets its close frame (``slow_consumer_code``) when its socket can take it: the loop keeps
  only the rest of the frame the socket has begun (frames are never cut), discards the
  frames queued behind it, queues the close frame, sends FIN once it is out, and reads and
  discards the peer's input until EOF; after the connection's ``close_timeout`` (at most
  ``_DROP_LINGER``, 5 s) TCP is aborted anyway. Memory for that peer is then one frame and
  the close frame at most.
* Broadcast encodes the frame once (``wsfast.frames.prepare``) and queues that one bytes
  object for every connection whose frame would be the same bytes
  (``Connection.send_prepared``); the others encode their own.
* ``stop()`` and ``shutdown()`` only set a flag and write to the wake-up fd: they are safe
  from any thread and from a signal handler.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import logging
import os
import select
import selectors
import socket
import ssl as _ssl
import threading
import time
from collections import deque
from dataclasses import fields
from typing import Any, Callable, Deque, Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple, Union, cast

from .._nbio import NonBlockingSocketTransport, nonblocking_read, tls_handshake_step
from .._net import listen as _listen_tcp
from .._net import listen_unix as _listen_unix
from .._net import network_error, resolve, tune_socket
from .._options import ClientOptions, ServerOptions, new_client, new_server
from .._state import OPEN
from ..events import Request
from ..exceptions import ConnectionClosedError, NetworkError, OpenTimeout, QueueFull
from ..frames import PreparedFrame, frame_size, prepare
from ..handler import DEFAULT_QUEUE_SIZE, Decision, Handler, Reject, WebSocket

__all__ = ["Loop", "Listener", "TimerHandle", "SlowConsumerPolicy", "broadcast"]

log = logging.getLogger("wsfast.loop")

_monotonic = time.monotonic
_get_ident = threading.get_ident
_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE
_EP_READ = getattr(select, "EPOLLIN", 1) | getattr(select, "EPOLLERR", 8) | getattr(select, "EPOLLHUP", 16)
_EP_WRITE = getattr(select, "EPOLLOUT", 4) | getattr(select, "EPOLLERR", 8) | getattr(select, "EPOLLHUP", 16)

#: Connections accepted per listener wake-up before the loop serves the others.
ACCEPT_BATCH = 64
#: Bytes read from one peer per wake-up before the loop serves the others.
READ_BUDGET = 1 << 20
#: Callbacks other threads may queue on the loop (``call_soon_threadsafe``, cross-thread
#: ``connect``/``broadcast``) before ``QueueFull``.
DEFAULT_LOOP_QUEUE_SIZE = 65536
#: Bytes corked during one read's dispatch before they are written anyway.
_CORK_LIMIT = 64 * 1024
#: Seconds a listener rests after accept() fails for lack of file descriptors (EMFILE).
_ACCEPT_BACKOFF = 0.1
#: Seconds a closed-but-unflushed socket may linger (its peer does not read) before abort.
_LINGER = 10.0
#: Seconds at most a dropped slow consumer gets to take the rest of the frame being written
#: and the close frame (its connection's close_timeout if shorter) before TCP is aborted.
_DROP_LINGER = 5.0
#: The 503 answered above ``max_connections`` (before the upgrade).
BUSY_STATUS = 503
BUSY_HEADERS: Tuple[Tuple[str, str], ...] = (("Retry-After", "1"),)
BUSY_BODY = b"too many connections\n"

#: ``slow_consumer=``: ``"wait"`` (pause reading, nothing else), ``"drop"`` (close with
#: ``slow_consumer_code`` once the limit or the timeout is hit) or ``callable(ws) -> bool``
#: (asked then; True drops).
SlowConsumerPolicy = Union[str, Callable[[WebSocket], bool]]


def _unit_end(data: bytes, offset: int) -> int:
    """Where the frame that byte ``offset`` of ``data`` belongs to ends, ``data`` being this
    side's output from a frame boundary (or from its handshake head, which counts as one
    unit); -1 if that cannot be told."""
    pos = 0
    if data.startswith((b"HTTP/", b"GET ")):  # never a frame's first bytes (RSV2 unset)
        pos = data.find(b"\r\n\r\n")
        if pos < 0:
            return -1
        pos += 4
        if offset < pos:
            return pos
    n = len(data)
    while pos < n:
        size = frame_size(data, pos)
        if size < 0:
            return -1
        pos += size
        if offset < pos:
            return pos if pos <= n else -1
    return -1


def _pending(sock: socket.socket) -> int:
    """Bytes the TLS layer decrypted that the selector will not report."""
    return sock.pending() if isinstance(sock, _ssl.SSLSocket) else 0


class _Poller:
    """The loop's readiness source: ``selectors.DefaultSelector``, with the epoll case taken
    directly (an fd -> callback dict; no SelectorKey per event: the hot path of small
    messages). ``select`` returns ``(callback, EVENT_READ|EVENT_WRITE)`` pairs, resolved
    before any callback runs (an fd closed and reused meanwhile keeps its old callback)."""

    def __init__(self) -> None:
        self._sel: Optional[selectors.BaseSelector] = None
        self._ep: Any = None
        self._cbs: Dict[int, Callable[[int], None]] = {}
        if hasattr(select, "epoll"):
            self._ep = select.epoll()
        else:  # pragma: no cover - non-Linux
            self._sel = selectors.DefaultSelector()

    @property
    def name(self) -> str:
        return "epoll" if self._ep is not None else type(self._sel).__name__

    @staticmethod
    def _ep_mask(mask: int) -> int:
        return (select.EPOLLIN if mask & _EVENT_READ else 0) | (select.EPOLLOUT if mask & _EVENT_WRITE else 0)

    def register(self, fd: int, mask: int, cb: Callable[[int], None]) -> None:
        if self._ep is not None:
            self._ep.register(fd, self._ep_mask(mask))
            self._cbs[fd] = cb
        else:
            assert self._sel is not None
            self._sel.register(fd, mask, cb)

    def modify(self, fd: int, mask: int, cb: Callable[[int], None]) -> None:
        if self._ep is not None:
            self._ep.modify(fd, self._ep_mask(mask))
            self._cbs[fd] = cb
        else:
            assert self._sel is not None
            self._sel.modify(fd, mask, cb)

    def unregister(self, fd: int) -> None:
        if self._ep is not None:
            if self._cbs.pop(fd, None) is not None:
                try:
                    self._ep.unregister(fd)
                except OSError:
                    pass  # already closed (closing an fd removes it from epoll)
        else:
            assert self._sel is not None
            try:
                self._sel.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass

    def select(self, timeout: Optional[float]) -> List[Tuple[Optional[Callable[[int], None]], int]]:
        if self._ep is not None:
            evs = self._ep.poll(-1 if timeout is None else timeout, 1024)
            get = self._cbs.get
            out = []
            for fd, ev in evs:
                mask = 0
                if ev & _EP_READ:
                    mask = _EVENT_READ
                if ev & _EP_WRITE:
                    mask |= _EVENT_WRITE
                out.append((get(fd), mask))
            return out
        assert self._sel is not None
        return [(key.data, mask) for key, mask in self._sel.select(timeout)]

    def close(self) -> None:
        if self._ep is not None:
            self._ep.close()
            self._cbs.clear()
        elif self._sel is not None:
            self._sel.close()


class TimerHandle:
    """A timer from ``call_later``/``call_at``; ``cancel()`` it (from any thread)."""

    __slots__ = ("when", "callback", "args", "cancelled", "app", "_loop", "_in_heap")

    def __init__(self, loop: Loop, when: float, callback: Callable[..., Any], args: Tuple[Any, ...], app: bool) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False
        self.app = app
        self._loop = loop
        self._in_heap = False

    def cancel(self) -> None:
        """Cancel the timer (a no-op once it fired or was cancelled)."""
        if not self.cancelled:
            self.cancelled = True
            self._loop._timer_cancelled(self)

    def __repr__(self) -> str:
        return f"<TimerHandle when={self.when:.3f} {'cancelled' if self.cancelled else 'armed'}>"


class Listener:
    """One ``listen``/``listen_unix`` call: its sockets, factory and options."""

    def __init__(
        self,
        loop: Loop,
        socks: List[socket.socket],
        factory: Callable[[], Handler],
        options: ServerOptions,
        forwarded_allow_ips: Sequence[str],
        url: str,
    ) -> None:
        self.loop = loop
        self.sockets = socks
        self.factory = factory
        self.options = options
        self.forwarded_allow_ips = frozenset(forwarded_allow_ips)
        #: ``ws://host:port/`` (``wss://`` with TLS; ``ws+unix:PATH`` for Unix sockets).
        self.url = url
        #: Server connections of this listener now open (for ``max_connections``).
        self.active = 0
        self.closed = False
        self.rejected_busy = 0
        self._registered = False

    @property
    def port(self) -> int:
        """The TCP port (0 for a Unix socket)."""
        name = self.sockets[0].getsockname()
        return int(name[1]) if isinstance(name, tuple) else 0

    def close(self) -> None:
        """Stop accepting (connections already accepted go on). Loop thread, or queued."""
        self.loop._run_on_loop(self._close)

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop._listeners.discard(self)
        for s in self.sockets:
            if self._registered:
                try:
                    self.loop._selector.unregister(s.fileno())
                except (KeyError, ValueError, OSError):
                    pass
            s.close()
        self._registered = False
        log.info("stopped listening on %s", self.url)

    def _register(self) -> None:
        if self.closed or self._registered:
            return
        self._registered = True
        for s in self.sockets:
            self.loop._selector.register(s.fileno(), _EVENT_READ, self._accept_cb(s))

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            for s in self.sockets:
                try:
                    self.loop._selector.unregister(s.fileno())
                except (KeyError, ValueError, OSError):
                    pass

    def _accept_cb(self, sock: socket.socket) -> Callable[[int], None]:
        loop = self.loop

        def on_ready(mask: int) -> None:
            for _ in range(ACCEPT_BATCH):
                try:
                    conn_sock, addr = sock.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        log.warning("accept failed (%s): pausing this listener for %s s", exc, _ACCEPT_BACKOFF)
                        self._unregister()
                        loop._call_at(_monotonic() + _ACCEPT_BACKOFF, self._register, (), False)
                    else:
                        log.debug("accept failed: %r", exc)
                    return
                loop._accepted(self, conn_sock, addr)

        return on_ready

    def __repr__(self) -> str:
        return f"<Listener {self.url} active={self.active}>"


class _Busy(Handler):
    """Answers every request with 503 (over ``max_connections``): the factory is not called."""

    def on_request(self, ws: WebSocket, request: Request) -> Decision:
        return Reject(BUSY_STATUS, BUSY_HEADERS, BUSY_BODY)


class _Forwarded(Handler):
    """Wraps the application's handler when the listener trusts ``X-Forwarded-For`` from
    some proxies: ``ws.remote_address`` becomes the client the proxy saw."""

    def __init__(self, inner: Handler, allow: FrozenSet[str]) -> None:
        self.inner = inner
        self.allow = allow
        # The hot callbacks go straight to the application's bound methods.
        for name in ("on_open", "on_text", "on_binary", "on_ping", "on_pong", "on_close", "on_error",
                     "on_idle", "on_pause", "on_resume"):
            setattr(self, name, getattr(inner, name))

    def on_request(self, ws: WebSocket, request: Request) -> Decision:
        peer = ws.remote_address
        host = peer[0] if isinstance(peer, tuple) else peer
        if host in self.allow or "*" in self.allow:
            values = [v for k, v in request.headers if k.lower() == "x-forwarded-for"]
            if values:
                hops = [h.strip() for h in ",".join(values).split(",") if h.strip()]
                if hops:
                    try:
                        ipaddress.ip_address(hops[-1])
                    except ValueError:
                        log.debug("ignoring a malformed X-Forwarded-For %r", values)
                    else:
                        ws.data["proxy_address"] = peer
                        ws.remote_address = (hops[-1], 0)
        return self.inner.on_request(ws, request)


# Connection phases.
_RESOLVING, _CONNECTING, _TLS, _OPEN, _DONE = range(5)


class _Conn(NonBlockingSocketTransport):
    """One socket in the loop: the transport of one ``WebSocket``."""

    def __init__(self, loop: Loop, sock: Optional[socket.socket], listener: Optional[Listener]) -> None:
        super().__init__(
            cast(socket.socket, sock),
            high_water=loop.high_water,
            low_water=loop.low_water,
            max_buffer=loop.max_buffer if loop.slow_consumer != "wait" else None,
        )
        self.loop = loop
        self.listener = listener
        self.phase = _OPEN
        self.fd = -1 if sock is None else sock.fileno()
        self._mask = 0
        self._want_w = False
        # While a read is being dispatched, small writes are corked and sent as one.
        self._cork: Optional[List[bytes]] = None
        self._cork_bytes = 0
        self._timer: Optional[TimerHandle] = None
        self._phase_timer: Optional[TimerHandle] = None
        self._slow_timer: Optional[TimerHandle] = None
        self._linger: Optional[TimerHandle] = None
        self._tls_want = "read"
        self._open_deadline: Optional[float] = None
        # Client connect state.
        self._addrs: List[Tuple[Any, ...]] = []
        self._ssl_ctx: Optional[_ssl.SSLContext] = None
        self._server_hostname: Optional[str] = None
        self._copts: Optional[ClientOptions] = None
        self._where = ""
        self._last_error: Optional[BaseException] = None
        self._counted = False
        # The client target (set by Loop.connect).
        self._host = ""
        self._port = 0
        # A dropped slow consumer (see _drop): flushing, asked to close, sent FIN.
        self._dropping = False
        self._drop_close = False
        self._drop_shut = False

    # ----------------------------------------------------------- selector bookkeeping

    def _update(self) -> None:
        if self.closed or self.fd < 0:
            return
        if self.phase == _OPEN:
            mask = (0 if self.read_paused else _EVENT_READ) | (_EVENT_WRITE if self._want_w else 0)
        elif self.phase == _CONNECTING:
            mask = _EVENT_WRITE
        elif self.phase == _TLS:
            mask = _EVENT_READ if self._tls_want == "read" else _EVENT_WRITE
        else:
            mask = 0
        old = self._mask
        if mask == old:
            return
        sel = self.loop._selector
        self._mask = mask
        # The callback is the record itself (``__call__``): one bound-method object fewer per
        # connection for the garbage collector to traverse.
        if old == 0:
            sel.register(self.fd, mask, self)
        elif mask == 0:
            sel.unregister(self.fd)
        else:
            sel.modify(self.fd, mask, self)

    def __call__(self, mask: int) -> None:
        """Readiness from the selector (see ``_update``)."""
        self._ready(mask)

    def want_write(self, flag: bool) -> None:
        if flag != self._want_w:
            self._want_w = flag
            self._update()
        if not flag and self._drop_close and not self._drop_shut:
            self._drop_shutdown()  # a dropped consumer's close frame is out: send FIN

    def _really_close(self) -> None:
        if not self.closed:
            self._unregister()  # while the fd is open: after close(), epoll_ctl fails (EBADF)
        super()._really_close()

    def _unregister(self) -> None:
        if self._mask:
            self._mask = 0
            try:
                self.loop._selector.unregister(self.fd)
            except (KeyError, ValueError, OSError):
                pass

    def on_closed(self) -> None:
        self._unregister()
        for t in (self._timer, self._phase_timer, self._slow_timer, self._linger):
            if t is not None:
                t.cancel()
        self._timer = self._phase_timer = self._slow_timer = self._linger = None
        self.phase = _DONE
        self.loop._forget(self)
        ws = self.ws
        if ws is not None and not ws.closed and not ws._in_dispatch:
            # The socket broke under a write outside any read: finish the driver next turn.
            self.loop._soon.append((self._finish_ws, ()))

    def _finish_ws(self) -> None:
        ws = self.ws
        if ws is not None and not ws.closed:
            ws.feed_eof()

    def _broken(self, exc: OSError) -> None:
        ws = self.ws
        super()._broken(exc)
        if ws is not None and not ws.closed and ws.error is None:
            ws.error = network_error(exc, str(ws.remote_address))
            try:
                ws.handler.on_error(ws, ws.error)
            except Exception:
                log.exception("on_error raised")

    def write(self, chunks: List[bytes]) -> None:
        cork = self._cork
        if cork is not None:
            n = self._cork_bytes
            for c in chunks:
                n += len(c)
            cork += chunks
            self._cork_bytes = n
            if n < _CORK_LIMIT:
                return
            self._uncork()
            return
        self._put(chunks)

    def _uncork(self) -> None:
        cork = self._cork
        if cork:
            self._cork = []
            self._cork_bytes = 0
            if len(cork) > 1 and len(cork) < 512:
                cork = [b"".join(cork)]
            self._put(cork)

    def _put(self, chunks: List[bytes]) -> None:
        # Each write holds whole frames (the engine's data_to_send(), or several of them
        # corked), and so starts and ends on a frame boundary. With a dropping policy every
        # object buffered must do so too (see _drop: it cuts the buffer there), so a write
        # that is buffered behind others is joined into one object; a header and its large
        # payload (sent uncopied) would otherwise be two. An empty buffer needs nothing:
        # the base class joins a write it cannot send at once.
        if len(chunks) > 1 and self._buf and self.loop.slow_consumer != "wait":
            chunks = [b"".join(chunks)]
        NonBlockingSocketTransport.write(self, chunks)

    def abort(self) -> None:
        if self._cork:
            self._cork = []
            self._cork_bytes = 0
        super().abort()

    def close(self) -> None:
        if self._dropping:
            # A dropped consumer: FIN once the close frame is out, then EOF or the linger.
            self._drop_close = True
            if not self._buf and not self.closed and not self._drop_shut:
                self._drop_shutdown()
            return
        self._uncork()  # the close frame is in there
        super().close()
        if not self.closed and self._linger is None:
            # Flushing the last bytes (a close frame) to a peer that may never read them.
            self._linger = self.loop._call_at(_monotonic() + _LINGER, self.abort, (), False)

    # ----------------------------------------------------------- Transport hooks

    def wake(self) -> None:
        self.loop._wake_conn(self)

    def timers_changed(self) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        d = ws.next_deadline()
        if d is None:
            return
        t = self._timer
        if t is not None:
            if t.when <= d:
                return  # it fires first; check_timers re-arms from there
            t.cancel()
        self._timer = self.loop._call_at(d, self._on_timer, (), False)

    def _on_timer(self) -> None:
        self._timer = None
        ws = self.ws
        if ws is None or ws.closed:
            return
        nd = ws.check_timers()
        if nd is not None and not ws.closed and self._timer is None:
            self._timer = self.loop._call_at(nd, self._on_timer, (), False)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any:
        return self.loop.call_later(delay, callback)

    # ----------------------------------------------------------- backpressure

    def pause_changed(self, paused: bool) -> None:
        loop = self.loop
        self.read_paused = paused
        if self.phase == _OPEN:
            self._update()
        if paused:
            loop.pauses += 1
            log.debug("%s: %d bytes buffered, pausing reads", self.ws, self.buffered)
            if loop.slow_consumer != "wait" and loop.slow_consumer_timeout is not None and self._slow_timer is None:
                when = _monotonic() + loop.slow_consumer_timeout
                self._slow_timer = loop._call_at(when, self._slow, ("timeout",), False)
        else:
            log.debug("%s: write buffer drained, reading again", self.ws)
            if self._slow_timer is not None:
                self._slow_timer.cancel()
                self._slow_timer = None
        super().pause_changed(paused)

    def over_limit(self) -> None:
        self._slow("limit")

    def _slow(self, why: str) -> None:
        t = self._slow_timer
        self._slow_timer = None
        if t is not None:
            t.cancel()  # a no-op when it is this timer firing
        ws = self.ws
        if ws is None or ws.closed or self.closed or not self.paused:
            return
        loop = self.loop
        policy = loop.slow_consumer
        if callable(policy):
            try:
                drop = bool(policy(ws))
            except Exception:
                log.exception("the slow_consumer policy raised: dropping the connection")
                drop = True
            if not drop:
                self.max_buffer = None  # the application keeps it: do not ask on every write
                return
        loop.dropped_slow_consumers += 1
        code = loop.slow_consumer_code
        log.info("%s: slow consumer (%s, %d bytes buffered): dropping with %s", ws, why, self.buffered, code)
        exc = ConnectionClosedError(1006, f"slow consumer: {self.buffered} bytes unsent ({why})", code)
        if ws.error is None:
            ws.error = exc
        try:
            ws.handler.on_error(ws, exc)
        except Exception:
            log.exception("on_error raised")
        self._drop(ws, code)

    def _drop(self, ws: WebSocket, code: int) -> None:
        """Close a slow consumer with ``code`` in bounded memory.

        Of the bytes buffered, only the unsent tail of the frame the socket has begun is
        kept (a frame is never cut); the whole frames queued behind it are discarded, the
        close frame goes behind that tail, and the socket gets ``_drop_linger`` seconds to
        take them before it is aborted. What the loop holds for this peer is then at most
        one frame plus the close frame, whatever it does. (If a close frame was sent
        before, the buffer ends with it and is only given the same time to drain.)"""
        self.max_buffer = None
        conn = ws.conn
        had_close = conn.close_code_sent is not None
        try:
            if ws.close_pending:
                # The peer's close (or fault) waits behind events not handed out yet: apply
                # it first, so the engine does not act on it once it is closed.
                conn.close(code, "slow consumer")
            conn.fail(code, "slow consumer")
            out = conn.data_to_send()
        except Exception:
            log.exception("failing %s raised", ws)
            out = []
        close = None
        if out and not had_close and conn.close_code_sent is not None and out[-1][:1] == b"\x88":
            close = out[-1]  # the other frames in out are whole ones: discarded
        if close is None and not had_close:
            ws.force_quit()  # not open: there is no closing handshake to offer
            return
        if close is not None:
            if self._cork is not None:
                self._cork = []  # whole frames behind the buffered ones
                self._cork_bytes = 0
            kept = self._keep_started_frame()
            log.debug("%s: kept %d bytes of a partly written frame, then the close frame", ws, kept)
            self._buf.append(memoryview(close))
            self.buffered += len(close)
        else:
            self._uncork()  # the close frame sent before may be in there
        # From here on: neither on_pause nor on_resume; input is read and discarded (closing
        # with unread input would reset the connection, and the close frame with it).
        self._dropping = True
        self.paused = False
        self.read_paused = False
        self._update()
        if self._linger is None:
            self._linger = self.loop._call_at(_monotonic() + self._drop_linger(ws), self.abort, (), False)
        if self._buf:
            self.want_write(True)
            self.flush()
        # The engine is closed: this finishes the driver (on_close) and asks the transport
        # to close, which sends FIN once the buffer is flushed (close() above).
        ws.close(code)

    def _drop_shutdown(self) -> None:
        self._drop_shut = True
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.abort()
            return
        if self.read_paused:
            self.abort()  # the peer's EOF came already (_discard_input): nothing to wait for

    def _discard_input(self) -> None:
        """A dropped consumer's input: read and thrown away until EOF, which ends it."""
        sock = self.sock
        for _ in range(16):
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError, _ssl.SSLWantReadError, _ssl.SSLWantWriteError):
                return
            except OSError:
                self.abort()
                return
            if not data:
                if self._drop_shut or not self._buf:
                    self.abort()
                else:  # half closed: the peer may still read; flush until the linger ends
                    self.read_paused = True
                    self._update()
                return
            self.bytes_received += len(data)

    @staticmethod
    def _drop_linger(ws: WebSocket) -> float:
        t = ws.close_timeout
        return _DROP_LINGER if t is None else min(t, _DROP_LINGER)

    def _keep_started_frame(self) -> int:
        """Cut the write buffer after the frame (or handshake head) being written: returns
        the bytes kept. Every buffered object starts and ends on a frame boundary (``_put``),
        the first one possibly sent in part; its frames are measured from its start.

        With TLS the first object is kept whole: ``SSLSocket.send`` takes all of it or
        raises ``SSLWantWriteError``, and in the second case OpenSSL may already have
        encrypted any part of it and wants the same bytes, at least as many, presented
        again (``SSL_write``'s retry rule: fewer is ``BAD_LENGTH``). It is one write: a
        message's frames, or a corked batch of about ``_CORK_LIMIT`` bytes."""
        buf = self._buf
        if not buf:
            return 0
        head = buf[0]
        keep = len(head)
        obj = head.obj
        if not self._tls and type(obj) is bytes:
            start = len(obj) - keep  # bytes of this object already sent
            if start == 0:
                keep = 0  # nothing of it sent: the socket is on a frame boundary
            else:
                end = _unit_end(obj, start)
                if end > 0:
                    keep = end - start
        # Otherwise the whole rest of it, which ends on a frame boundary too.
        buf.clear()
        if keep:
            buf.append(head[:keep])
        self.buffered = keep
        return keep

    # ----------------------------------------------------------- readiness

    def _ready(self, mask: int) -> None:
        phase = self.phase
        if phase == _OPEN:
            if mask & _EVENT_WRITE:
                self.flush()
                if self.closed:
                    return
            if mask & _EVENT_READ:
                if self._dropping:
                    self._discard_input()
                    return
                ws = self.ws
                assert ws is not None
                self._cork = []
                try:
                    alive = nonblocking_read(ws, self.sock, READ_BUDGET)
                finally:
                    cork = self._cork
                    self._cork = None
                    if cork and not self.closed:
                        self._cork = cork
                        self._uncork()
                        self._cork = None
                if alive:
                    if self._tls and not self.read_paused and not self.closed and _pending(self.sock):
                        self.loop._again.append(self)
                elif not self.closed and ws.closed and self.phase == _OPEN:
                    if self._closing:
                        # Still flushing the last bytes: stop reading (an EOF would spin).
                        self.read_paused = True
                        self._update()
                    else:
                        self.abort()  # the driver is done; nothing more will come
        elif phase == _CONNECTING:
            self._connected()
        elif phase == _TLS:
            self._tls_step()

    def _read_again(self) -> None:
        if self.phase == _OPEN and not self.closed:
            self._ready(_EVENT_READ)

    # ----------------------------------------------------------- client connect

    def _start_connect(self) -> None:
        """Loop thread: resolve (numeric hosts at once, names on a short-lived thread)."""
        ws = self.ws
        assert ws is not None and self._copts is not None
        opts = self._copts
        if opts.unix_path is not None:
            self._addrs = [(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", opts.unix_path)]
            self._try_next()
            return
        host, port = self._host, self._port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        except socket.gaierror:
            infos = []
        if infos:
            self._addrs = list(infos)
            self._try_next()
            return
        self.phase = _RESOLVING
        loop = self.loop

        def resolve_thread() -> None:
            try:
                result: Any = resolve(host, port)
            except Exception as exc:  # ResolveError
                result = exc
            try:
                loop.call_soon_threadsafe(self._resolved, result)
            except Exception:
                pass  # the loop is gone

        threading.Thread(target=resolve_thread, name=f"wsfast-resolve-{host}", daemon=True).start()

    def _resolved(self, result: Any) -> None:
        if self.phase != _RESOLVING:
            return  # timed out meanwhile
        if isinstance(result, BaseException):
            self._fail(result)
            return
        self._addrs = list(result)
        self._try_next()

    def _try_next(self) -> None:
        opts = self._copts
        assert opts is not None
        while self._addrs:
            family, kind, proto, _name, addr = self._addrs.pop(0)
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:
                self._last_error = exc
                continue
            try:
                sock.setblocking(False)
                tune_socket(sock, opts.nodelay and family != socket.AF_UNIX, opts.socket_options)
                if opts.source_address is not None and family != socket.AF_UNIX:
                    sock.bind(opts.source_address)
                err = sock.connect_ex(addr)
            except OSError as exc:
                sock.close()
                self._last_error = exc
                continue
            if err not in (0, errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                sock.close()
                self._last_error = OSError(err, os.strerror(err))
                continue
            self.sock = sock
            self.fd = sock.fileno()
            self.phase = _CONNECTING
            if err == 0:
                self._connected()
            else:
                self._update()
            return
        last = self._last_error or OSError(errno.EHOSTUNREACH, "no address to connect to")
        self._fail(network_error(last, self._where))

    def _connected(self) -> None:
        sock = self.sock
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._drop_socket()
            self._last_error = OSError(err, os.strerror(err))
            self._try_next()
            return
        if self._ssl_ctx is not None:
            self._start_tls(self._ssl_ctx.wrap_socket(
                sock, server_hostname=self._server_hostname, do_handshake_on_connect=False))
            return
        self._open()

    def _drop_socket(self) -> None:
        self._unregister()
        try:
            self.sock.close()
        except OSError:
            pass
        self.fd = -1

    # ----------------------------------------------------------- TLS (both sides)

    def _start_tls(self, tls_sock: _ssl.SSLSocket) -> None:
        # Same file descriptor: the selector registration (if any) carries over.
        self.sock = tls_sock
        self._tls = True
        self.phase = _TLS
        self._tls_want = "read"
        self._tls_step()

    def _tls_step(self) -> None:
        sock = self.sock
        assert isinstance(sock, _ssl.SSLSocket)
        try:
            want = tls_handshake_step(sock)
        except (OSError, ValueError) as exc:
            self._fail(network_error(exc, self._where or str(self.ws.remote_address if self.ws else "")))
            return
        if want is not None:
            self._tls_want = want
            self._update()
            return
        log.debug("TLS handshake done with %s (%s)", self._where or "client", sock.version())
        self._open()

    # ----------------------------------------------------------- open / fail

    def _open(self) -> None:
        ws = self.ws
        assert ws is not None
        self.phase = _OPEN
        self._tls = isinstance(self.sock, _ssl.SSLSocket)
        if self._phase_timer is not None:
            self._phase_timer.cancel()
            self._phase_timer = None
        if self._open_deadline is not None and ws.open_timeout is not None:
            # The handshake gets what is left of open_timeout after TCP and TLS.
            ws.open_timeout = max(self._open_deadline - _monotonic(), 0.001)
        if ws.local_address is None:
            try:
                ws.local_address = self.sock.getsockname()
            except OSError:
                pass
        if ws.remote_address is None:
            try:
                ws.remote_address = self.sock.getpeername()
            except OSError:
                pass
        self._update()
        ws.start()
        if self._tls and not ws.closed and _pending(self.sock):
            self.loop._again.append(self)

    def _phase_timeout(self) -> None:
        self._phase_timer = None
        if self.phase in (_RESOLVING, _CONNECTING, _TLS):
            ws = self.ws
            t = ws.open_timeout if ws is not None else None
            self._fail(OpenTimeout(f"timed out connecting to {self._where or 'the client'} ({t} s)"))

    def _fail(self, exc: BaseException) -> None:
        """Before the driver started: close, then on_error and on_close (1006)."""
        if self.phase == _DONE:
            return
        self.phase = _DONE
        if self.fd >= 0:
            self._drop_socket()
        self.closed = True
        self.on_closed()
        ws = self.ws
        if ws is None or ws.closed:
            return
        log.info("connection to %s failed: %s", self._where or ws.remote_address, exc)
        ws.error = exc
        ws.closed = True
        ws.close_code = 1006
        try:
            ws.handler.on_error(ws, exc)
        except Exception:
            log.exception("on_error raised")
        try:
            ws.handler.on_close(ws, 1006, "", False)
        except Exception:
            log.exception("on_close raised")


class Loop:
    """One selector loop running client and server connections on one thread.

    Args:
        high_water: bytes buffered for one peer above which the loop stops reading from it
            and calls ``on_pause`` (1 MiB).
        low_water: bytes below which it reads again and calls ``on_resume`` (256 KiB).
        slow_consumer: ``"wait"`` (default: only pause), ``"drop"``, or ``callable(ws) ->
            bool`` asked when the limit or the timeout is hit (True: drop).
        max_buffer: with a dropping policy, bytes buffered for one peer that trigger the
            policy at once (default 4 × ``high_water``).
        slow_consumer_timeout: with a dropping policy, seconds paused that trigger it
            (None: only the byte limit).
        slow_consumer_code: the close code of a dropped consumer (1008 policy violation,
            or 1013 try again later), sent behind the frame being written (the frames
            queued behind that one are discarded); TCP closes once it is out, or after the
            connection's ``close_timeout`` (at most 5 s) if the peer does not take it.
        queue_size: commands another thread may queue per connection (``QueueFull`` beyond).
        loop_queue_size: callbacks other threads may queue on the loop.
    """

    def __init__(
        self,
        *,
        high_water: int = 1 << 20,
        low_water: int = 256 * 1024,
        slow_consumer: SlowConsumerPolicy = "wait",
        max_buffer: Optional[int] = None,
        slow_consumer_timeout: Optional[float] = 30.0,
        slow_consumer_code: int = 1008,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        loop_queue_size: int = DEFAULT_LOOP_QUEUE_SIZE,
    ) -> None:
        if low_water > high_water:
            raise ValueError("low_water must not exceed high_water")
        if not (slow_consumer in ("wait", "drop") or callable(slow_consumer)):
            raise ValueError("slow_consumer is 'wait', 'drop' or a callable(ws) -> bool")
        if max_buffer is not None and max_buffer < high_water:
            # Reading pauses at high_water and the policy acts on a paused peer only.
            raise ValueError("max_buffer must not be below high_water")
        if slow_consumer_code not in (1008, 1013):
            raise ValueError("slow_consumer_code is 1008 or 1013")
        self.high_water = high_water
        self.low_water = low_water
        self.slow_consumer = slow_consumer
        self.max_buffer = max_buffer if max_buffer is not None else 4 * high_water
        self.slow_consumer_timeout = slow_consumer_timeout
        self.slow_consumer_code = slow_consumer_code
        self.queue_size = queue_size
        self.loop_queue_size = loop_queue_size

        #: Counters (read them from any thread; they are plain ints).
        self.connections_opened = 0
        self.connections_closed = 0
        self.rejected_busy = 0
        self.dropped_slow_consumers = 0
        self.pauses = 0
        self._closed_messages_in = 0
        self._closed_messages_out = 0
        self._closed_bytes_in = 0
        self._closed_bytes_out = 0

        self._selector = _Poller()
        self._conns: Set[_Conn] = set()
        self._listeners: Set[Listener] = set()
        self._heap: List[Tuple[float, int, TimerHandle]] = []
        self._seq = 0
        self._dead_timers = 0
        self._app_timers = 0
        self._soon: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = deque()
        self._again: List[_Conn] = []
        self._threadsafe: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = deque()
        self._ready_conns: Deque[_Conn] = deque()
        self._thread_id: Optional[int] = None
        self._running = False
        self._closed = False
        self._stop_req = False
        self._leave_req = False
        self._shutdown_req: Optional[Tuple[int, str, Optional[float]]] = None
        self._shutting_down = False
        self._shutdown_deadline: Optional[float] = None
        self._wake_pending = False
        self._eventfd = -1
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        if hasattr(os, "eventfd"):
            self._eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._selector.register(self._eventfd, _EVENT_READ, self._on_wake)
        else:  # pragma: no cover - non-Linux
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector.register(self._wake_r.fileno(), _EVENT_READ, self._on_wake)

    # ================================================================ counters

    @property
    def open_connections(self) -> int:
        """Sockets the loop now holds (connecting, handshaking, open or closing)."""
        return len(self._conns)

    def _sum(self, attr: str) -> int:
        return sum(getattr(c.ws, attr) for c in list(self._conns) if c.ws is not None)

    @property
    def messages_received(self) -> int:
        return self._closed_messages_in + self._sum("messages_received")

    @property
    def messages_sent(self) -> int:
        return self._closed_messages_out + self._sum("messages_sent")

    @property
    def bytes_received(self) -> int:
        return self._closed_bytes_in + sum(c.bytes_received for c in list(self._conns))

    @property
    def bytes_sent(self) -> int:
        return self._closed_bytes_out + sum(c.bytes_sent for c in list(self._conns))

    @property
    def bytes_buffered(self) -> int:
        """Bytes written by handlers that the sockets have not taken yet (all peers)."""
        return sum(c.buffered for c in list(self._conns))

    def stats(self) -> Dict[str, int]:
        """Every counter, as a dict."""
        return {
            "open_connections": self.open_connections,
            "connections_opened": self.connections_opened,
            "connections_closed": self.connections_closed,
            "messages_received": self.messages_received,
            "messages_sent": self.messages_sent,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "bytes_buffered": self.bytes_buffered,
            "rejected_busy": self.rejected_busy,
            "dropped_slow_consumers": self.dropped_slow_consumers,
            "pauses": self.pauses,
        }

    @property
    def connections(self) -> List[WebSocket]:
        """The ``WebSocket`` of every connection the loop holds (a snapshot)."""
        return [c.ws for c in list(self._conns) if c.ws is not None]

    # ================================================================ threads and wakes

    @property
    def on_loop_thread(self) -> bool:
        return self._thread_id == _get_ident() or (self._thread_id is None and not self._running)

    def _wakeup(self) -> None:
        # Lock-free and signal-safe: producers queue first, then look at the flag; the loop
        # clears the flag before it drains, so no item is ever left without a wake.
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            if self._eventfd >= 0:
                os.eventfd_write(self._eventfd, 1)
            elif self._wake_w is not None:
                self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    def _on_wake(self, mask: int) -> None:
        try:
            if self._eventfd >= 0:
                os.eventfd_read(self._eventfd)
            elif self._wake_r is not None:
                self._wake_r.recv(4096)
        except (BlockingIOError, OSError):
            pass

    def _wake_conn(self, conn: _Conn) -> None:
        self._ready_conns.append(conn)
        if self._thread_id != _get_ident():
            self._wakeup()

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop thread soon; ``QueueFull`` if too many are queued."""
        if len(self._threadsafe) >= self.loop_queue_size:
            raise QueueFull(f"{len(self._threadsafe)} callbacks already queued for the loop")
        self._threadsafe.append((callback, args))
        self._wakeup()

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the next iteration (loop thread only; else threadsafe)."""
        if self.on_loop_thread:
            self._soon.append((callback, args))
        else:
            self.call_soon_threadsafe(callback, *args)

    def _run_on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.on_loop_thread:
            fn(*args)
        else:
            self.call_soon_threadsafe(fn, *args)

    # ================================================================ timers

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` on the loop thread after ``delay`` seconds (from any thread)."""
        return self.call_at(_monotonic() + max(delay, 0.0), callback, *args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` at ``time.monotonic()`` value ``when``."""
        if self.on_loop_thread:
            return self._call_at(when, callback, args, True)
        h = TimerHandle(self, when, callback, args, True)
        self.call_soon_threadsafe(self._push, h)
        return h

    def cancel(self, handle: TimerHandle) -> None:
        """Cancel a timer (same as ``handle.cancel()``)."""
        handle.cancel()

    def _call_at(self, when: float, callback: Callable[..., Any], args: Tuple[Any, ...], app: bool) -> TimerHandle:
        h = TimerHandle(self, when, callback, args, app)
        self._push(h)
        return h

    def _push(self, h: TimerHandle) -> None:
        if h.cancelled:
            return
        h._in_heap = True
        if h.app:
            self._app_timers += 1
        self._seq += 1
        heapq.heappush(self._heap, (h.when, self._seq, h))

    def _timer_cancelled(self, h: TimerHandle) -> None:
        if not self.on_loop_thread:
            self._threadsafe.append((self._timer_cancelled_here, (h,)))
            self._wakeup()
            return
        self._timer_cancelled_here(h)

    def _timer_cancelled_here(self, h: TimerHandle) -> None:
        if not h._in_heap:
            return  # cancelled (from another thread) before it was pushed
        if h.app:
            self._app_timers -= 1
        self._dead_timers += 1
        heap = self._heap
        if self._dead_timers > 256 and self._dead_timers * 2 > len(heap):
            self._heap = [e for e in heap if not e[2].cancelled]
            heapq.heapify(self._heap)
            self._dead_timers = 0

    def _run_timers(self) -> None:
        heap = self._heap
        now = _monotonic()
        while heap and heap[0][0] <= now:
            h = heapq.heappop(heap)[2]
            if h.cancelled:
                self._dead_timers -= 1
                continue
            h.cancelled = True  # fired: cancel() is a no-op from now on
            if h.app:
                self._app_timers -= 1
            try:
                h.callback(*h.args)
            except Exception:
                log.exception("timer callback %r raised", h.callback)
            heap = self._heap  # a rebuild may have replaced it

    @property
    def timers(self) -> int:
        """Entries in the timer heap (live and lazily deleted)."""
        return len(self._heap)

    # ================================================================ listeners

    def listen(
        self,
        host: Optional[str],
        port: int,
        handler_factory: Callable[[], Handler],
        *,
        options: Optional[ServerOptions] = None,
        forwarded_allow_ips: Sequence[str] = (),
        **kwargs: Any,
    ) -> Listener:
        """Serve WebSocket on ``host:port`` (TCP; port 0 picks one) with a new handler from
        ``handler_factory()`` per connection. Keyword arguments are ``ServerOptions`` fields
        (``ssl``, ``max_connections``, ``reuse_port``, timeouts, limits, compression...).

        ``forwarded_allow_ips``: peers (proxies) whose ``X-Forwarded-For`` is believed
        (``"*"``: all); by default it is ignored and ``ws.remote_address`` is the TCP peer."""
        opts = options.replace(**kwargs) if options is not None else ServerOptions.from_kwargs(kwargs)
        socks = _listen_tcp(host, port, backlog=opts.backlog, reuse_port=opts.reuse_port)
        name = socks[0].getsockname()
        shown = host or ("::" if socks[0].family == socket.AF_INET6 else "0.0.0.0")
        if ":" in shown:
            shown = f"[{shown}]"
        url = f"{'wss' if opts.ssl else 'ws'}://{shown}:{name[1]}/"
        return self._add_listener(socks, handler_factory, opts, forwarded_allow_ips, url)

    def listen_unix(
        self,
        path: str,
        handler_factory: Callable[[], Handler],
        *,
        options: Optional[ServerOptions] = None,
        forwarded_allow_ips: Sequence[str] = (),
        **kwargs: Any,
    ) -> Listener:
        """Serve WebSocket on the Unix socket ``path`` (see ``listen``)."""
        opts = options.replace(**kwargs) if options is not None else ServerOptions.from_kwargs(kwargs)
        sock = _listen_unix(path, backlog=opts.backlog)
        return self._add_listener([sock], handler_factory, opts, forwarded_allow_ips, f"ws+unix:{path}")

    def _add_listener(
        self,
        socks: List[socket.socket],
        factory: Callable[[], Handler],
        opts: ServerOptions,
        allow: Sequence[str],
        url: str,
    ) -> Listener:
        for s in socks:
            s.setblocking(False)
        listener = Listener(self, socks, factory, opts, allow, url)
        self._run_on_loop(self._start_listener, listener)
        log.info("listening on %s", url)
        return listener

    def _start_listener(self, listener: Listener) -> None:
        if self._shutting_down or self._closed:
            listener._close()
            return
        self._listeners.add(listener)
        listener._register()

    def _accepted(self, listener: Listener, sock: socket.socket, addr: Any) -> None:
        opts = listener.options
        try:
            sock.setblocking(False)
            tune_socket(sock, opts.nodelay and sock.family != socket.AF_UNIX)
        except OSError as exc:
            log.debug("accepted socket unusable: %r", exc)
            sock.close()
            return
        busy = opts.max_connections is not None and listener.active >= opts.max_connections
        if busy:
            listener.rejected_busy += 1
            self.rejected_busy += 1
            log.info("%s: %d connections open (max_connections): answering 503", listener.url, listener.active)
            handler: Handler = _Busy()
        else:
            try:
                handler = listener.factory()
            except Exception:
                log.exception("the handler factory raised: closing the connection")
                sock.close()
                return
            if listener.forwarded_allow_ips:
                handler = _Forwarded(handler, listener.forwarded_allow_ips)
        c = _Conn(self, sock, listener)
        ws = WebSocket.with_options(
            new_server(opts), handler, c, opts, cross_thread="queue", queue_size=self.queue_size, logger=log
        )
        c.ws = ws
        ws.response_headers = opts.headers
        ws.remote_address = addr if addr else None
        ws.data["listener"] = listener
        if not busy:
            listener.active += 1
            c._counted = True
        self._conns.add(c)
        self.connections_opened += 1
        log.debug("accepted %s on %s", addr, listener.url)
        if opts.ssl is not None:
            if opts.open_timeout is not None:
                c._open_deadline = _monotonic() + opts.open_timeout
                c._phase_timer = self._call_at(c._open_deadline, c._phase_timeout, (), False)
            try:
                tls_sock = opts.ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError) as exc:
                c._fail(network_error(exc, str(addr)))
                return
            c._start_tls(tls_sock)
        else:
            c._open()

    # ================================================================ clients

    def connect(
        self,
        uri: str,
        handler: Handler,
        *,
        options: Optional[ClientOptions] = None,
        **kwargs: Any,
    ) -> WebSocket:
        """Open a client connection to ``uri`` in this loop; returns its ``WebSocket`` at once.

        Callable from inside any handler callback (as ws-rs's ``Sender::connect``) and from
        other threads (queued; ``QueueFull`` if the loop's queue is full). Keyword arguments
        are ``ClientOptions`` fields. A bad URI or option raises ``InvalidURI``/``ValueError``
        here; everything after (refused, DNS, TLS, timeout, HTTP status) reaches the
        handler's ``on_error`` then ``on_close``."""
        opts = options.replace(**kwargs) if options is not None else ClientOptions.from_kwargs(kwargs)
        parsed, engine = new_client(uri, opts)
        ctx = opts.ssl_context(parsed)
        c = _Conn(self, None, None)
        c.phase = _RESOLVING
        c._copts = opts
        c._ssl_ctx = ctx
        c._server_hostname = parsed.server_hostname or parsed.host if ctx is not None else None
        c._host, c._port = parsed.host, parsed.port
        c._where = parsed.host_header if opts.unix_path is None else opts.unix_path
        ws = WebSocket.with_options(
            engine, handler, c, opts, cross_thread="queue", queue_size=self.queue_size, logger=log
        )
        c.ws = ws
        if self._thread_id is not None:
            # The loop thread owns it from the start: sends from this thread are queued.
            ws._owner = self._thread_id
        if self.on_loop_thread:
            self._soon.append((self._start_client, (c,)))
        else:
            self.call_soon_threadsafe(self._start_client, c)
        return ws

    def _start_client(self, c: _Conn) -> None:
        ws = c.ws
        assert ws is not None
        ws.bind_thread()
        if self._shutting_down or self._closed:
            c.phase = _RESOLVING
            c._fail(NetworkError("the loop is shutting down"))
            return
        self._conns.add(c)
        self.connections_opened += 1
        log.info("connecting to %s", c._where)
        if ws.open_timeout is not None:
            c._open_deadline = _monotonic() + ws.open_timeout
            c._phase_timer = self._call_at(c._open_deadline, c._phase_timeout, (), False)
        try:
            c._start_connect()
        except Exception as exc:
            c._fail(network_error(exc, c._where))

    def _forget(self, c: _Conn) -> None:
        if c in self._conns:
            self._conns.discard(c)
            self.connections_closed += 1
            if c._counted and c.listener is not None:
                c._counted = False
                c.listener.active -= 1
            ws = c.ws
            if ws is not None:
                self._closed_messages_in += ws.messages_received
                self._closed_messages_out += ws.messages_sent
            self._closed_bytes_in += c.bytes_received
            self._closed_bytes_out += c.bytes_sent

    # ================================================================ broadcast

    def broadcast(
        self,
        message: Union[str, bytes, bytearray, memoryview, PreparedFrame],
        connections: Optional[Iterable[WebSocket]] = None,
    ) -> Optional[int]:
        """Send ``message`` to every open connection (or to ``connections``).

        The frame is encoded once (``wsfast.frames.prepare``; a ``PreparedFrame`` is taken as
        it is) and that one bytes object is queued for every connection whose frame would be
        the same bytes (``Connection.send_prepared``: server side, no compression of this
        message), and buffered as it is for every slow peer; compressed and client (masked)
        connections encode their own. Connections that are not open are skipped. On the loop
        thread it returns how many got the message; from another thread it is queued (one
        loop callback, ``QueueFull`` if the loop queue is full) and returns None."""
        frame = message if isinstance(message, PreparedFrame) else prepare(message)
        if not self.on_loop_thread:
            targets = None if connections is None else list(connections)
            self.call_soon_threadsafe(self._broadcast, frame, targets)
            return None
        return self._broadcast(frame, connections)

    def _broadcast(self, frame: PreparedFrame, connections: Optional[Iterable[WebSocket]]) -> int:
        if connections is None:
            targets: Iterable[WebSocket] = [c.ws for c in list(self._conns) if c.ws is not None]
        else:
            targets = connections
        sent = shared = 0
        for ws in targets:
            conn = ws.conn
            if conn.state is not OPEN or ws.closed:
                continue
            try:
                if conn.send_prepared(frame):
                    shared += 1
            except Exception as exc:  # closed meanwhile (InvalidState)
                log.debug("broadcast skipped %s: %r", ws, exc)
                continue
            ws.messages_sent += 1
            sent += 1
            out = conn.data_to_send()
            if out:
                ws.transport.write(out)
        log.debug("broadcast of %r to %d connections (%d shared the frame)", frame, sent, shared)
        return sent

    # ================================================================ running

    def run(self) -> None:
        """Run on the calling thread until nothing is left (no listener, connection, timer
        or queued callback), or until ``stop()``/``shutdown()`` completes."""
        self._run(False)

    def run_forever(self) -> None:
        """Run on the calling thread until ``stop()``/``shutdown()`` completes."""
        self._run(True)

    def _run(self, forever: bool) -> None:
        if self._closed:
            raise RuntimeError("the loop is closed")
        if self._running:
            raise RuntimeError("the loop is already running")
        self._running = True
        self._thread_id = _get_ident()
        for c in list(self._conns):
            if c.ws is not None:
                c.ws.bind_thread()
        log.info("loop running (%s)", self._selector.name)
        select = self._selector.select
        heap = self._heap
        try:
            while True:
                if self._stop_req:
                    self._do_stop()
                    return
                if self._leave_req:
                    self._leave_req = False
                    return
                if self._shutdown_req is not None and not self._shutting_down:
                    self._begin_shutdown()
                if self._shutting_down:
                    if not self._conns:
                        self._end_shutdown()
                        return
                    d = self._shutdown_deadline
                    if d is not None and _monotonic() >= d:
                        log.info("shutdown: %d connections still open after the timeout: aborting", len(self._conns))
                        self._abort_all()
                        self._end_shutdown()
                        return
                elif not forever and not (self._conns or self._listeners or self._app_timers
                                          or self._soon or self._threadsafe or self._ready_conns):
                    return
                # Clear the wake flag before looking at the queues: anything queued after
                # this point writes the wake-up fd again, anything before is seen below.
                self._wake_pending = False
                heap = self._heap
                while heap and heap[0][2].cancelled:
                    heapq.heappop(heap)
                    self._dead_timers -= 1
                if self._soon or self._again or self._threadsafe or self._ready_conns:
                    timeout: Optional[float] = 0.0
                elif heap:
                    timeout = max(heap[0][0] - _monotonic(), 0.0)
                else:
                    timeout = None
                if self._shutting_down and self._shutdown_deadline is not None:
                    left = max(self._shutdown_deadline - _monotonic(), 0.0)
                    timeout = left if timeout is None else min(timeout, left)
                events = select(timeout)
                for cb, mask in events:
                    if cb is None:
                        continue
                    try:
                        cb(mask)
                    except Exception:
                        self._callback_failed(cb)
                if self._heap and self._heap[0][0] <= _monotonic():
                    self._run_timers()
                if self._again:
                    again, self._again = self._again, []
                    for c in again:
                        try:
                            c._read_again()
                        except Exception:
                            self._callback_failed(c._ready)
                if self._threadsafe or self._ready_conns:
                    self._drain_threads()
                soon = self._soon
                n = len(soon)
                while n:
                    n -= 1
                    fn, args = soon.popleft()
                    try:
                        fn(*args)
                    except Exception:
                        log.exception("callback %r raised", fn)
        finally:
            self._running = False

    def _drain_threads(self) -> None:
        ts = self._threadsafe
        while ts:
            fn, args = ts.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("callback %r raised", fn)
        rc = self._ready_conns
        while rc:
            c = rc.popleft()
            ws = c.ws
            if ws is not None and not ws.closed:
                try:
                    ws.drain_commands()
                except Exception:
                    log.exception("draining the commands of %s raised", ws)

    def _callback_failed(self, cb: Any) -> None:
        owner = getattr(cb, "__self__", None)
        log.exception("the loop's callback for %s raised: closing that connection", owner)
        if isinstance(owner, _Conn):
            try:
                owner.abort()
                if owner.ws is not None and not owner.ws.closed:
                    owner.ws.feed_eof()
            except Exception:
                log.exception("aborting %s raised", owner)

    # ================================================================ shutdown

    def shutdown(self, code: int = 1001, reason: str = "going away", timeout: Optional[float] = None) -> None:
        """Graceful stop (any thread, or a signal handler): stop accepting, close every
        connection with ``code`` (1001), wait at most ``timeout`` seconds (default: the
        largest close_timeout, 10 s) for the closing handshakes, abort the rest; then
        ``run()`` returns."""
        if self._shutdown_req is None:
            self._shutdown_req = (code, reason, timeout)
        self._wakeup()

    def stop(self) -> None:
        """Immediate stop (any thread, or a signal handler): close every socket now
        (handlers get ``on_close`` with 1006), then ``run()`` returns."""
        self._stop_req = True
        self._wakeup()

    def leave(self) -> None:
        """Make ``run()``/``run_forever()`` return after this iteration, leaving every
        connection, listener and timer as it is (run again to go on). Any thread."""
        self._leave_req = True
        self._wakeup()

    def _begin_shutdown(self) -> None:
        assert self._shutdown_req is not None
        code, reason, timeout = self._shutdown_req
        self._shutting_down = True
        if timeout is None:
            timeout = 10.0
        self._shutdown_deadline = _monotonic() + timeout
        log.info("shutting down: closing %d connections with %s", len(self._conns), code)
        for listener in list(self._listeners):
            listener._close()
        self._drain_threads()
        for c in list(self._conns):
            ws = c.ws
            if ws is None or ws.closed:
                continue
            try:
                if c.phase == _OPEN and ws.conn.state is OPEN:
                    ws.close(code, reason)
                elif c.phase == _OPEN and ws.conn.state.name == "CONNECTING":
                    ws.force_quit()
                elif c.phase != _OPEN:
                    c._fail(NetworkError("the loop is shutting down"))
            except Exception:
                log.exception("closing %s raised", ws)

    def _end_shutdown(self) -> None:
        self._shutting_down = False
        self._shutdown_req = None
        self._shutdown_deadline = None
        log.info("loop stopped (graceful)")

    def _abort_all(self) -> None:
        for c in list(self._conns):
            try:
                if c.phase == _OPEN:
                    c.abort()
                    ws = c.ws
                    if ws is not None and not ws.closed:
                        ws.feed_eof()
                else:
                    c._fail(NetworkError("the loop stopped"))
            except Exception:
                log.exception("aborting %s raised", c.ws)
            self._conns.discard(c)

    def _do_stop(self) -> None:
        self._stop_req = False
        self._leave_req = False
        self._shutdown_req = None
        self._shutting_down = False
        for listener in list(self._listeners):
            listener._close()
        self._abort_all()
        log.info("loop stopped (immediate)")

    def close(self) -> None:
        """Release the selector and the wake-up fd (after ``run()`` returned)."""
        if self._running:
            raise RuntimeError("stop the loop before closing it")
        if self._closed:
            return
        if self._conns or self._listeners:
            self._do_stop()
        self._closed = True
        self._selector.close()
        if self._eventfd >= 0:
            os.close(self._eventfd)
            self._eventfd = -1
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()

    def __enter__(self) -> Loop:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._running:
            self.close()

    def __repr__(self) -> str:
        return f"<Loop connections={len(self._conns)} listeners={len(self._listeners)}>"


def server_options_kwargs(options: ServerOptions) -> Dict[str, Any]:
    """``options`` as keyword arguments for ``Loop.listen``."""
    return {f.name: getattr(options, f.name) for f in fields(options)}


def broadcast(
    connections: Iterable[WebSocket],
    message: Union[str, bytes, bytearray, memoryview, PreparedFrame],
) -> int:
    """Send ``message`` to ``connections`` (websockets' ``broadcast`` argument order), each
    group through its own loop's ``Loop.broadcast``, the frame encoded once for all of them.
    Returns how many were sent at once (those queued from other threads are not counted)."""
    groups: Dict[Loop, List[WebSocket]] = {}
    for ws in connections:
        t = ws.transport
        if isinstance(t, _Conn):
            groups.setdefault(t.loop, []).append(ws)
    if not groups:
        return 0
    frame = message if isinstance(message, PreparedFrame) else prepare(message)
    total = 0
    for loop, members in groups.items():
        total += loop.broadcast(frame, members) or 0
    return total
