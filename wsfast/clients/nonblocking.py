"""The non-blocking client mode: a spin loop over a non-blocking socket on the caller's thread.

``run()`` polls the socket, the driver's timers and the cross-thread commands in one loop.
With ``spin_wait=None`` it never sleeps (a busy poll: the lowest latency, one core at 100 %);
with a duration it sleeps that long, but only after an iteration that found nothing to do
(nothing read, nothing sent, no command, no timer, and ``on_idle`` sent nothing), never right
after a read or a send. ``sleeps`` counts the sleeps. The opening (TCP connect, TLS, the HTTP
upgrade) is polled the same way and bounded by ``open_timeout``. ``on_idle`` runs on each
idle iteration between ``on_open`` and ``on_close``; if it sends, the loop does not sleep.

Other threads' commands (``client.send_text``, ``ws.send_text``...) are queued (the driver's
``cross_thread="queue"``, ``QueueFull`` past ``queue_size``) and run on the next iteration, so
within ``spin_wait``; ``client.close()``/``force_quit()`` are flags, never ``QueueFull``.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Optional, Union

from .._nbio import NonBlockingSocketTransport
from .._net import peer_name
from ..exceptions import OpenTimeout
from ..handler import DEFAULT_QUEUE_SIZE, Handler
from ._common import (
    ClientBase,
    ClientWebSocket,
    Connector,
    PendingTransport,
    Reconnect,
    SocketHook,
    UriArg,
    fail_before_open,
    log,
    poll_read,
    remaining,
)

__all__ = ["NonBlockingClient"]

_monotonic = time.monotonic


class _SpinTransport(NonBlockingSocketTransport):
    """The loop flushes when ``want_flush`` and re-reads the deadline when ``timers_dirty``."""

    want_flush = False
    timers_dirty = False

    def want_write(self, flag: bool) -> None:
        self.want_flush = flag

    def wake(self) -> None:
        pass  # the loop looks at the command queue every iteration

    def timers_changed(self) -> None:
        self.timers_dirty = True


class NonBlockingClient(ClientBase):
    """A client that runs ``handler`` on the caller's thread over a polled non-blocking socket.

    Args:
        uri, handler, reconnect, on_socket, **options: as ``ClientBase`` (every
            ``ClientOptions`` field).
        spin_wait: None to busy-poll, or the seconds to sleep after an idle iteration (never
            longer than the next timer).
        high_water, low_water: write-buffer watermarks (``on_pause``/``on_resume``).
        queue_size: bound of the cross-thread command queue (``QueueFull`` beyond it).

    Other threads may call ``send_text``/``close``/... on the client (or on ``ws``): the
    command is queued and runs on the loop's next iteration (within ``spin_wait``).
    """

    def __init__(
        self,
        uri: UriArg,
        handler: Handler,
        *,
        spin_wait: Optional[float] = None,
        high_water: int = 1 << 20,
        low_water: int = 256 * 1024,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        reconnect: Union[None, bool, Reconnect] = None,
        on_socket: Optional[SocketHook] = None,
        **options: Any,
    ) -> None:
        if spin_wait is not None and spin_wait < 0:
            raise ValueError("spin_wait is None or a duration >= 0")
        super().__init__(uri, handler, reconnect=reconnect, on_socket=on_socket, **options)
        self.spin_wait = spin_wait
        self.high_water = high_water
        self.low_water = low_water
        self.queue_size = queue_size
        #: Sleeps taken (each after an idle iteration), over the client's life.
        self.sleeps = 0
        #: Loop iterations over the client's life (busy and idle).
        self.iterations = 0
        self._connector: Optional[Connector] = None
        self._connect_deadline: Optional[float] = None
        self._done = False

    @property
    def closed(self) -> bool:
        return self._done

    # ------------------------------------------------------------------ opening

    #: The sleep of an idle iteration (a seam for tests that check when it is called).
    _sleep = staticmethod(time.sleep)

    def _idle_sleep(self, deadline: Optional[float]) -> None:
        spin = self.spin_wait
        if spin is None:
            return
        if deadline is not None:
            spin = min(spin, max(deadline - _monotonic(), 0.0))
        self._sleep(spin)
        self.sleeps += 1

    def _open_socket(self) -> socket.socket:
        """TCP + TLS, polled; raises the wsfast exceptions (OpenTimeout past open_timeout)."""
        conn = self._connector
        if conn is None:
            conn = self._connector = Connector(self.uri, self.options, self.ssl_context, self.on_socket)
            t = self.options.open_timeout
            self._connect_deadline = None if t is None else _monotonic() + t
        deadline = self._connect_deadline
        try:
            while not conn.step():
                self.iterations += 1
                if self._stop.is_set():
                    raise OpenTimeout("the client was closed while connecting")
                if deadline is not None and _monotonic() >= deadline:
                    raise OpenTimeout(f"connecting to {conn.where} did not finish within {self.options.open_timeout} s")
                self._idle_sleep(deadline)
        except BaseException:
            conn.close()
            self._connector = None
            raise
        assert conn.sock is not None
        self.socket = conn.sock
        return conn.sock

    def connect(self) -> socket.socket:
        """Open TCP (and TLS) now, on this thread, polled like the rest; ``run()`` then does
        the WebSocket handshake on it. Returns the socket (also ``client.socket``), e.g. to
        set options on it before ``run()``. Raises the wsfast connection exceptions."""
        return self._open_socket()

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        """Connect (unless ``connect()`` did), run the handler until its ``on_close``, and
        reconnect as the policy says; return when done. Errors reach ``on_error``."""
        self._loop_ident = threading.get_ident()
        self._run_attempts()
        self._done = True

    def _attempt(self) -> ClientWebSocket:
        ws = self._new_ws(PendingTransport(), "queue", self.queue_size)
        if self._stop.is_set():
            fail_before_open(ws, None)
            return ws
        try:
            sock = self._open_socket()
        except Exception as exc:
            log.info("connecting to %s failed: %s", self.uri.host_header, exc)
            fail_before_open(ws, exc)
            return ws
        deadline = self._connect_deadline
        self._connector = None
        transport = _SpinTransport(sock, high_water=self.high_water, low_water=self.low_water)
        transport.ws = ws
        ws.transport = transport
        ws.local_address = sock.getsockname()
        ws.remote_address = peer_name(sock)
        if deadline is not None:
            ws.open_timeout = remaining(deadline)
        log.info("connected to %s", self.uri.host_header)
        ws.start()
        try:
            self._loop(ws, transport, sock)
        finally:
            self._finish_transport(transport)
        if ws.response is not None:
            self.connections += 1
        return ws

    def _loop(self, ws: ClientWebSocket, transport: _SpinTransport, sock: socket.socket) -> None:
        spin = self.spin_wait
        sleep = self._sleep
        mono = _monotonic
        read = poll_read
        on_idle = self.handler.on_idle
        deadline = ws.next_deadline()
        transport.timers_dirty = False
        iterations = 0
        sleeps = 0
        try:
            while True:
                iterations += 1
                busy = False
                if self._request is not None:
                    self._take_request(ws)
                    busy = True
                if ws.pending_commands:
                    ws.drain_commands()  # every queued command, in order
                    busy = True
                if transport.want_flush:
                    transport.flush()
                    busy = True
                n = read(ws, sock)
                if n:
                    if n < 0:
                        break
                    busy = True
                if transport.timers_dirty:
                    transport.timers_dirty = False
                    deadline = ws.next_deadline()
                if deadline is not None and mono() >= deadline:
                    ws.check_timers()
                    transport.timers_dirty = False
                    deadline = ws.next_deadline()
                    busy = True
                if ws.closed:
                    break
                if busy:
                    continue
                if ws.response is not None:
                    before = transport.bytes_sent + transport.buffered
                    try:
                        on_idle(ws)
                    except Exception as exc:
                        ws.callback_failed(exc)
                    if ws.closed:
                        break
                    if transport.bytes_sent + transport.buffered != before or ws.pending_commands:
                        continue  # it sent something: no sleep right after a send
                if spin is not None:
                    t = spin
                    if deadline is not None:
                        left = deadline - mono()
                        if left < t:
                            t = left if left > 0 else 0.0
                    sleep(t)
                    sleeps += 1
        finally:
            self.iterations += iterations
            self.sleeps += sleeps

    def _finish_transport(self, transport: _SpinTransport) -> None:
        """The connection ended: flush what is buffered (briefly), then close the socket."""
        end = _monotonic() + 1.0
        while not transport.closed and transport.buffered and _monotonic() < end:
            transport.flush()
            if transport.buffered:
                time.sleep(0.001)
        transport.abort()
