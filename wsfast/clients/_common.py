"""What the three client modes share: options, reconnect policy, the client-side driver, the
non-blocking connector and the polling read.

Each mode owns only its loop; the connection itself (engine, dispatch, keepalive, timeouts,
the error mapping) is ``wsfast.handler.WebSocket`` and ``wsfast._net``.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
import ssl as _ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple, Union

from .._nbio import tls_handshake_step
from .._net import network_error, resolve, tune_socket
from .._options import ClientOptions, new_client
from .._sockio import RECV_SIZE
from .._uri import WebSocketURI, parse_uri
from ..exceptions import (
    InvalidHandshake,
    InvalidState,
    InvalidStatus,
    InvalidURI,
    OpenTimeout,
    TLSError,
)
from ..handler import Handler, Transport, WebSocket

__all__ = ["Reconnect", "ClientWebSocket", "ClientBase", "Connector", "poll_read"]

log = logging.getLogger("wsfast.clients")
_monotonic = time.monotonic

#: ``on_socket(sock)``: called with the raw TCP socket once it is connected, before TLS and
#: the WebSocket handshake (every attempt, reconnects too). Options that must precede
#: ``connect()`` go in ``socket_options``.
SocketHook = Callable[[socket.socket], None]


@dataclass
class Reconnect:
    """Reconnect policy: exponential backoff with jitter and a cap.

    The n-th attempt in a row waits ``min(max_delay, initial_delay * factor ** (n - 1))``
    scaled by a random factor in ``[1 - jitter, 1]`` (so that many clients dropped at once do
    not come back at once). A connection that opened resets the count. There is no reconnect
    after a deliberate close (``ws.close()``/``ws.force_quit()``, or the client's own
    ``close``/``force_quit``), nor after errors that retrying cannot fix (a bad URI, a TLS
    certificate or handshake failure, an HTTP 4xx answer, a malformed handshake).

    Args:
        initial_delay: seconds before the first attempt after a loss.
        max_delay: the cap of the delay.
        factor: growth per attempt.
        jitter: fraction of the delay that is random (0: none, 1: "full jitter").
        max_attempts: attempts in a row without a successful open before giving up (None: forever).
        before_attempt: ``before_attempt(attempt, delay, error)`` runs on the client's thread
            before each wait (``error``: why the last connection ended, or None); return
            False to stop reconnecting.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    max_attempts: Optional[int] = None
    before_attempt: Optional[Callable[[int, float, Optional[BaseException]], Optional[bool]]] = None

    def delay(self, attempt: int, rnd: random.Random) -> float:
        base = min(self.max_delay, self.initial_delay * self.factor ** max(attempt - 1, 0))
        return base * (1.0 - self.jitter * rnd.random())


def retryable(exc: Optional[BaseException]) -> bool:
    """Whether a connection that ended with ``exc`` is worth another attempt."""
    if exc is None:
        return True
    if isinstance(exc, InvalidStatus):
        return exc.status >= 500 or exc.status == 429
    if isinstance(exc, (TLSError, InvalidURI, InvalidHandshake, ValueError, TypeError)):
        return False
    return True


class ClientWebSocket(WebSocket):
    """The driver, remembering whether the application closed the connection on purpose
    (a deliberate close is never followed by a reconnect)."""

    deliberate = False

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.deliberate = True
        super().close(code, reason)

    def force_quit(self) -> None:
        self.deliberate = True
        super().force_quit()

    def _report(self, exc: BaseException) -> None:
        # The driver's open timer reports OpenTimeout, then its abort makes the engine see EOF
        # mid-handshake, which it reports again as InvalidHandshake: one failure, one error.
        # (Asked of handler.py's owner; remove once the driver does this itself.)
        # Likewise a deliberate close or force quit during the handshake is no handshake error.
        if isinstance(exc, InvalidHandshake) and self.response is None:
            if self.deliberate or isinstance(self.error, OpenTimeout):
                return
        super()._report(exc)

    def callback_failed(self, exc: Exception) -> None:
        """A callback the mode runs itself (``on_idle``) raised: as any callback, 1011."""
        self._handler_failed(exc)


class PendingTransport(Transport):
    """The transport of a connection whose socket is not connected yet: nothing to write
    (the request goes out at ``start()``), closing is the connector's business."""

    def __init__(self, wake: Callable[[], None] = lambda: None) -> None:
        self._wake = wake
        self.closed = False

    def write(self, chunks: List[bytes]) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def wake(self) -> None:
        self._wake()


def fail_before_open(ws: WebSocket, exc: Optional[BaseException]) -> None:
    """Report a connection that never got to the handshake: ``on_error`` then ``on_close``."""
    if ws.closed:
        return
    handler = ws.handler
    if exc is not None:
        ws.error = exc
        try:
            handler.on_error(ws, exc)
        except Exception:
            log.exception("on_error raised")
    ws.closed = True
    ws.close_code = 1006
    try:
        handler.on_close(ws, 1006, "", False)
    except Exception:
        log.exception("on_close raised")


class Connector:
    """A TCP (or Unix) connect and TLS handshake that never blocks: ``step()`` advances it.

    ``step()`` returns True once the socket is connected (and TLS is done), False while it
    waits (``want`` says for what: ``"read"`` or ``"write"``); failures raise the wsfast
    exceptions of ``_net.network_error`` (``ConnectRefused``, ``TLSError``, ...). Every resolved
    address is tried in turn. Resolving the host itself is a blocking ``getaddrinfo``."""

    def __init__(
        self,
        uri: WebSocketURI,
        opts: ClientOptions,
        ssl_context: Optional[_ssl.SSLContext],
        on_socket: Optional[SocketHook] = None,
    ) -> None:
        self.uri = uri
        self.opts = opts
        self.ssl_context = ssl_context
        self.on_socket = on_socket
        self.where = uri.host_header if opts.unix_path is None else opts.unix_path
        self.sock: Optional[socket.socket] = None
        self.want = "write"
        self._phase = "tcp"
        self._addrs: List[Any] = []
        self._last: Optional[BaseException] = None
        self._started = False

    def _start(self) -> None:
        self._started = True
        opts = self.opts
        if opts.unix_path is not None:
            # A Unix connect is local and immediate: do it blocking, then go non-blocking.
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                tune_socket(s, False, opts.socket_options)
                s.settimeout(opts.open_timeout)
                s.connect(opts.unix_path)
            except OSError as exc:
                s.close()
                raise network_error(exc, self.where) from None
            s.setblocking(False)
            self.sock = s
            self._connected()
            return
        self._addrs = list(resolve(self.uri.host, self.uri.port))
        self._next_address()

    def _next_address(self) -> None:
        while self._addrs:
            family, kind, proto, _name, addr = self._addrs.pop(0)
            s = socket.socket(family, kind, proto)
            try:
                tune_socket(s, self.opts.nodelay, self.opts.socket_options)
                if self.opts.source_address is not None:
                    s.bind(self.opts.source_address)
                s.setblocking(False)
                rc = s.connect_ex(addr)
            except OSError as exc:
                s.close()
                self._last = exc
                continue
            if rc in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                self.sock = s
                self._phase = "tcp"
                self.want = "write"
                return
            s.close()
            self._last = ConnectionRefusedError(rc, "connection refused") if rc == errno.ECONNREFUSED else OSError(
                rc, errno.errorcode.get(rc, str(rc))
            )
        last = self._last or OSError("no address to connect to")
        raise network_error(last, self.where) from None

    def _connected(self) -> None:
        sock = self.sock
        assert sock is not None
        log.debug("TCP connected to %s", self.where)
        if self.on_socket is not None:
            self.on_socket(sock)
        if self.ssl_context is None:
            self._phase = "done"
            return
        try:
            self.sock = self.ssl_context.wrap_socket(
                sock,
                server_hostname=self.uri.server_hostname or self.uri.host,
                do_handshake_on_connect=False,
            )
        except OSError as exc:
            sock.close()
            raise network_error(exc, self.where) from None
        self._phase = "tls"
        self.want = "read"

    def step(self) -> bool:
        if not self._started:
            self._start()
        phase = self._phase
        if phase == "tcp":
            sock = self.sock
            assert sock is not None
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                sock.close()
                self.sock = None
                self._last = ConnectionRefusedError(err, "refused") if err == errno.ECONNREFUSED else OSError(
                    err, errno.errorcode.get(err, str(err))
                )
                self._next_address()
                return False
            try:
                sock.getpeername()
            except OSError:
                return False  # still connecting
            self._connected()
            phase = self._phase
        if phase == "tls":
            sock = self.sock
            assert isinstance(sock, _ssl.SSLSocket)
            try:
                want = tls_handshake_step(sock)
            except OSError as exc:
                self.close()
                raise network_error(exc, self.where) from None
            if want is not None:
                self.want = want
                return False
            log.debug("TLS done with %s: %s", self.where, sock.version())
            self._phase = "done"
        return True

    def close(self) -> None:
        """Give up: close the socket (an attempt that timed out or was cancelled)."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def poll_read(ws: WebSocket, sock: socket.socket) -> int:
    """One non-blocking read and feed; the bytes read (0: nothing there, -1: finished).

    The spin loop needs to know whether anything arrived (it sleeps only when nothing did),
    which ``_nbio.nonblocking_read`` does not say; errors are mapped the same way."""
    try:
        data = sock.recv(RECV_SIZE)
    except (BlockingIOError, _ssl.SSLWantReadError, _ssl.SSLWantWriteError):
        return 0
    except OSError as exc:
        if not ws.closed:
            if getattr(ws.transport, "closed", False):
                ws.feed_eof()  # we shut it down ourselves
            else:
                ws.transport_error(network_error(exc, str(ws.remote_address)))
        return -1
    if not data:
        ws.feed_eof()
        return -1
    ws.feed(data)
    n = len(data)
    if type(sock) is not socket.socket and isinstance(sock, _ssl.SSLSocket):
        while not ws.closed and sock.pending():  # decrypted bytes the kernel will not signal
            more = poll_read(ws, sock)
            if more <= 0:
                break
            n += more
    return -1 if ws.closed else n


UriArg = Union[str, WebSocketURI]


class ClientBase:
    """Options, URI, reconnect bookkeeping and the application-facing commands of a client.

    Args:
        uri: ``ws://`` or ``wss://`` URI.
        handler: the ``Handler`` whose callbacks run for each connection.
        reconnect: a ``Reconnect`` policy, True for the default one, or None (no reconnect).
        on_socket: ``on_socket(sock)`` with each raw socket once TCP is connected.
        **options: ``wsfast._options.ClientOptions`` fields (subprotocols, headers, origin,
            compression, ssl, open_timeout, close_timeout, ping_interval, ping_timeout,
            max_size, max_frame_size, nodelay, socket_options, source_address, unix_path).
    """

    def __init__(
        self,
        uri: UriArg,
        handler: Optional[Handler],
        *,
        reconnect: Union[None, bool, Reconnect] = None,
        on_socket: Optional[SocketHook] = None,
        **options: Any,
    ) -> None:
        self.options = ClientOptions.from_kwargs(options)
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.ssl_context = self.options.ssl_context(self.uri)  # a bad ssl= raises here
        self.handler = handler if handler is not None else Handler()
        self.reconnect = Reconnect() if reconnect is True else (reconnect or None)
        self.on_socket = on_socket
        #: The current connection's socket (None before connecting and after the end).
        self.socket: Optional[socket.socket] = None
        #: The current (or last) connection's driver, None before the first attempt.
        self.ws: Optional[ClientWebSocket] = None
        #: Connections that opened, and reconnect attempts made.
        self.connections = 0
        self.attempts = 0
        self._stop = threading.Event()  # the application closed the client: no reconnect
        self._random = random.Random()
        self._request: Optional[Tuple[str, int, str]] = None
        self._loop_ident: Optional[int] = None

    # ------------------------------------------------------------------ building blocks

    def _new_ws(self, transport: Transport, cross_thread: str, queue_size: int) -> ClientWebSocket:
        _uri, conn = new_client(self.uri, self.options)
        opts = self.options
        ws = ClientWebSocket.with_options(
            conn, self.handler, transport, opts, cross_thread=cross_thread, queue_size=queue_size, logger=log
        )
        self.ws = ws
        return ws

    def _attempt(self) -> ClientWebSocket:
        """One connection, from connect to ``on_close`` (each mode's own IO)."""
        raise NotImplementedError

    def _run_attempts(self) -> None:
        """Attempts until the handler is done and the reconnect policy says stop."""
        while True:
            ws = self._attempt()
            self.socket = None
            delay = self._next_delay(ws, ws.error)
            if delay is None:
                break
            if self._stop.wait(delay):
                break

    def _next_delay(self, ws: Optional[ClientWebSocket], exc: Optional[BaseException]) -> Optional[float]:
        """After a connection ended: the delay before the next attempt, or None to stop."""
        policy = self.reconnect
        if policy is None or self._stop.is_set():
            return None
        if ws is not None and ws.deliberate:
            return None
        if not retryable(exc):
            log.info("not reconnecting after %r", exc)
            return None
        if ws is not None and ws.response is not None:
            self.attempts = 0  # it had opened: start the backoff again
        self.attempts += 1
        if policy.max_attempts is not None and self.attempts > policy.max_attempts:
            log.info("giving up after %d reconnect attempts", policy.max_attempts)
            return None
        delay = policy.delay(self.attempts, self._random)
        if policy.before_attempt is not None:
            if policy.before_attempt(self.attempts, delay, exc) is False:
                return None
        log.info("reconnecting in %.3f s (attempt %d)", delay, self.attempts)
        return delay

    def _open_ws(self) -> ClientWebSocket:
        ws = self.ws
        if ws is None:
            raise InvalidState("not connected yet: run() or start() first")
        if ws.closed:
            raise ws.closed_error()
        return ws

    # ------------------------------------------------------------------ commands

    def send_text(self, text: str) -> None:
        """Send a text message (any thread)."""
        self._open_ws().send_text(text)

    def send_binary(self, data: Any) -> None:
        """Send a binary message (any thread)."""
        self._open_ws().send_binary(data)

    def send(self, message: Any) -> None:
        """``str``, bytes-like, or an iterable of either (one fragmented message)."""
        self._open_ws().send(message)

    def ping(self, payload: Any = b"", callback: Optional[Callable[[float], Any]] = None) -> None:
        """Send a ping (``callback(latency)`` runs on the IO thread when its pong arrives)."""
        self._open_ws().ping(payload, callback)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Graceful close, bounded by ``close_timeout``; no reconnect after it. From another
        thread it never raises ``QueueFull``: it runs after every command queued before it."""
        self._request_end(("close", code, reason))

    def force_quit(self) -> None:
        """Leave at once: TCP closed without a closing handshake; no reconnect after it."""
        self._request_end(("quit", 1006, ""))

    #: Whether other threads' commands go through the driver's queue (False: its lock).
    _queued = True

    def _request_end(self, request: Tuple[str, int, str]) -> None:
        self._stop.set()
        ws = self.ws
        if ws is not None and not ws.closed:
            if not self._queued or threading.get_ident() == self._loop_ident:
                self._end(ws, request)
            else:
                self._request = request  # the loop takes it (a flag: no queue to overflow)
        self._wake_loop()

    def _end(self, ws: ClientWebSocket, request: Tuple[str, int, str]) -> None:
        if request[0] == "close":
            ws.close(request[1], request[2])
        else:
            ws.force_quit()

    def _take_request(self, ws: ClientWebSocket) -> None:
        """The loop's thread: act on a close()/force_quit() from another thread."""
        request = self._request
        if request is None:
            return
        self._request = None
        ws.drain_commands()  # what was queued before it goes first
        if not ws.closed:
            self._end(ws, request)

    def _wake_loop(self) -> None:
        """Wake the loop out of a reconnect wait (modes override)."""

    @property
    def closed(self) -> bool:
        """True once the client is done (no connection and no reconnect to come)."""
        raise NotImplementedError


def wait_or_stop(stop: threading.Event, delay: float) -> bool:
    """Sleep ``delay`` seconds unless the client is stopped first; True if stopped."""
    return stop.wait(delay)


def remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    return max(deadline - _monotonic(), 0.0)


__all__ += ["SocketHook", "PendingTransport", "fail_before_open", "retryable", "wait_or_stop", "remaining"]
