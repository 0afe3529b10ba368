"""The blocking-handler client mode: blocking socket reads on the caller's thread.

Each read waits at most until the driver's next timer (``_sockio.blocking_step``), so the
keepalive ping, its pong timeout, the handshake timeout and the close timeout fire without a
helper thread, and control frames are answered as they arrive. Writes are bounded by
``write_timeout``. Other threads may send: in this mode they take the connection's lock and
write themselves (the driver's ``cross_thread="lock"``), so frames never interleave.
``on_idle`` is not called in this mode (nothing spins).
"""

from __future__ import annotations

import socket
import time
from typing import Any, Optional, Union

from .._net import connect_socket, network_error, peer_name
from .._sockio import DEFAULT_WRITE_TIMEOUT, BlockingSocketTransport, blocking_step
from ..exceptions import WebSocketError
from ..handler import DEFAULT_QUEUE_SIZE, Handler
from ._common import (
    ClientBase,
    ClientWebSocket,
    PendingTransport,
    Reconnect,
    SocketHook,
    UriArg,
    fail_before_open,
    log,
    remaining,
)

__all__ = ["BlockingClient"]

_monotonic = time.monotonic


class BlockingClient(ClientBase):
    """A client that runs ``handler`` on the caller's thread over a blocking socket.

    Args:
        uri, handler, reconnect, on_socket, **options: as ``ClientBase`` (every
            ``ClientOptions`` field).
        read_timeout: the longest one read waits (None: until the next timer or data).
        write_timeout: the longest one write may make no progress before the connection
            fails with ``ConnectionClosedError`` (default 30 s, as ``wsfast.sync``; None: no
            bound, and a peer that stops reading can then block a send forever).
    """

    _queued = False  # other threads write under the connection's lock

    def __init__(
        self,
        uri: UriArg,
        handler: Handler,
        *,
        read_timeout: Optional[float] = None,
        write_timeout: Optional[float] = DEFAULT_WRITE_TIMEOUT,
        reconnect: Union[None, bool, Reconnect] = None,
        on_socket: Optional[SocketHook] = None,
        **options: Any,
    ) -> None:
        super().__init__(uri, handler, reconnect=reconnect, on_socket=on_socket, **options)
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._pre: Optional[socket.socket] = None
        self._connect_deadline: Optional[float] = None
        self._done = False

    @property
    def closed(self) -> bool:
        return self._done

    def _open_socket(self) -> socket.socket:
        opts = self.options
        t = opts.open_timeout
        deadline = None if t is None else _monotonic() + t
        self._connect_deadline = deadline
        sock = connect_socket(
            self.uri,
            timeout=t,
            nodelay=opts.nodelay,
            options=opts.socket_options,
            source_address=opts.source_address,
            unix_path=opts.unix_path,
        )
        try:
            if self.on_socket is not None:
                self.on_socket(sock)
            if self.ssl_context is not None:
                sock = connect_socket(self.uri, timeout=remaining(deadline), ssl_context=self.ssl_context, sock=sock)
        except BaseException:
            sock.close()
            raise
        self.socket = sock
        return sock

    def connect(self) -> socket.socket:
        """Open TCP (and TLS) now, blocking; ``run()`` then does the WebSocket handshake on
        it. Returns the socket (also ``client.socket``). Raises the wsfast exceptions."""
        self._pre = self._open_socket()
        return self._pre

    def run(self) -> None:
        """Connect (unless ``connect()`` did), run the handler until its ``on_close``, and
        reconnect as the policy says; return when done. Errors reach ``on_error``."""
        self._run_attempts()
        self._done = True

    def _attempt(self) -> ClientWebSocket:
        ws = self._new_ws(PendingTransport(), "lock", DEFAULT_QUEUE_SIZE)
        if self._stop.is_set():
            fail_before_open(ws, None)
            return ws
        sock, self._pre = self._pre, None
        try:
            if sock is None:
                sock = self._open_socket()
        except Exception as exc:
            log.info("connecting to %s failed: %s", self.uri.host_header, exc)
            fail_before_open(ws, exc)
            return ws
        transport = BlockingSocketTransport(sock, self.write_timeout)
        ws.transport = transport
        ws.local_address = sock.getsockname()
        ws.remote_address = peer_name(sock)
        if self._connect_deadline is not None:
            ws.open_timeout = remaining(self._connect_deadline)
        log.info("connected to %s", self.uri.host_header)
        max_wait = self.read_timeout
        if self.write_timeout is not None and (max_wait is None or self.write_timeout < max_wait):
            max_wait = self.write_timeout  # a socket timeout must be set for writes to be bounded
        try:
            try:
                ws.start()
                while blocking_step(ws, sock, max_wait):
                    pass
            except (WebSocketError, OSError) as exc:  # a write inside a callback failed
                if not ws.closed:
                    err = exc if isinstance(exc, WebSocketError) else network_error(exc, str(ws.remote_address))
                    ws.transport_error(err)
        finally:
            transport.release()
        if ws.response is not None:
            self.connections += 1
        return ws
