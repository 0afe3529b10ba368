"""The blocking server: ``serve(handler, host, port, ...)`` and ``unix_serve(handler, path, ...)``.

::

    from wsfast.sync import serve

    def echo(ws):
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 8765) as server:
        server.serve_forever()

One thread per connection runs the opening handshake and then ``handler(connection)``; the
connection is closed (1000) when the handler returns, or with 1011 when it raises. At most
``max_connections`` connections (handshakes included) exist at once; beyond that a client
gets HTTP 503 with a body saying why (by a small, bounded pool of short-lived threads).

``shutdown(timeout)`` (from any thread) stops accepting, answers handshakes still in
progress with 503, sends 1001 to open connections, waits up to ``timeout`` for the
handlers to finish, then drops what is left (TCP closed; their ``recv``/``send`` raise
``ConnectionClosedError``) and returns.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .._net import listen, listen_unix, peer_name, tune_socket
from .._options import ServerOptions, new_server
from .._sockio import DEFAULT_WRITE_TIMEOUT, BlockingSocketTransport, blocking_step, run_blocking
from ..events import Request
from ..handler import Accept, Decision, Handler, Reject, WebSocket
from ._connection import Connection, _Collector

__all__ = ["ServerConnection", "Server", "serve", "unix_serve", "ProcessRequest"]

log = logging.getLogger("wsfast.sync.server")
_monotonic = time.monotonic

#: Short-lived threads answering 503 beyond ``max_connections`` at once (more are dropped).
MAX_REJECTING = 8
#: Seconds a 503 answer may take (reading the request, writing the response).
REJECT_TIMEOUT = 5.0
_BUSY_BODY = b"server busy: too many connections, try again later\n"
_GOING_AWAY_BODY = b"server shutting down\n"

ProcessRequest = Callable[["ServerConnection", Request], Union[None, Accept, Reject]]


class ServerConnection(Connection):
    """A server-side connection (see ``Connection`` for ``send``/``recv``/``ping``/``close``)."""

    #: The ``Server`` it belongs to.
    server: Server

    @property
    def request(self) -> Optional[Request]:
        """The handshake request (``.path``, ``.target``, ``.headers``, ``.header(name)``)."""
        return self._ws.request

    @property
    def request_headers(self) -> Tuple[Tuple[str, str], ...]:
        r = self._ws.request
        return () if r is None else tuple(r.headers)

    @property
    def path(self) -> str:
        """The request target (path and query), e.g. ``"/chat?room=1"``."""
        r = self._ws.request
        return "" if r is None else r.target


class _ServerCollector(_Collector):
    def __init__(self, server: Server, process_request: Optional[ProcessRequest], reject: Optional[Reject]) -> None:
        super().__init__()
        self.server = server
        self.process_request = process_request
        self.reject = reject

    def on_request(self, ws: WebSocket, request: Request) -> Decision:
        if self.reject is not None:
            return self.reject
        if self.server._closing:
            return Reject(503, body=_GOING_AWAY_BODY)
        if self.process_request is None:
            return None
        conn = self.connection
        assert isinstance(conn, ServerConnection)
        return self.process_request(conn, request)


class _ModeHandler(Handler):
    """Forwards to a ``Handler`` (``wsfast.sync._mode``); answers 503 while shutting down."""

    def __init__(self, inner: Handler, server: Server, reject: Optional[Reject]) -> None:
        self.inner = inner
        self.server = server
        self.reject = reject
        for name in ("on_open", "on_text", "on_binary", "on_ping", "on_pong", "on_close", "on_error", "on_idle"):
            setattr(self, name, getattr(inner, name))

    def on_request(self, ws: WebSocket, request: Request) -> Decision:
        if self.reject is not None:
            return self.reject
        if self.server._closing:
            return Reject(503, body=_GOING_AWAY_BODY)
        return self.inner.on_request(ws, request)


#: What runs in a connection's thread: (server, socket, reject or None).
Session = Callable[["Server", socket.socket, Optional[Reject]], None]


class Server:
    """Listening sockets and the threads serving them (made by ``serve``/``unix_serve``)."""

    def __init__(
        self,
        sockets: List[socket.socket],
        session: Session,
        options: ServerOptions,
        write_timeout: Optional[float],
        unix_path: Optional[str] = None,
    ) -> None:
        self._listeners = sockets
        self._session = session
        self.options = options
        self.write_timeout = write_timeout
        self.unix_path = unix_path
        self._closing = False
        self._stopped = threading.Event()  # serve_forever returned (or never ran and shut down)
        self._lock = threading.Lock()
        #: Live connection threads -> their driver once it exists (None during TLS).
        self._live: Dict[threading.Thread, Optional[WebSocket]] = {}
        self._raw: Dict[threading.Thread, socket.socket] = {}
        self._rejecting = 0
        self._serving = False
        self._listeners_closed = False
        self._url = self._make_url()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in sockets:
            s.setblocking(False)
        log.info("listening on %s", self.url)

    # ------------------------------------------------------------------ attributes

    @property
    def sockets(self) -> List[socket.socket]:
        """The listening sockets."""
        return list(self._listeners)

    @property
    def port(self) -> Optional[int]:
        """The listening TCP port (the real one if 0 was asked); None for Unix sockets."""
        if self.unix_path is not None or not self._listeners:
            return None
        return int(self._listeners[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``ws://host:port/`` (``wss://`` with TLS); for Unix sockets ``ws+unix://path``."""
        return self._url

    def _make_url(self) -> str:
        if self.unix_path is not None:
            return f"ws+unix://{self.unix_path}"
        name = self._listeners[0].getsockname()
        host = name[0] if ":" not in name[0] else f"[{name[0]}]"
        return f"{'wss' if self.options.ssl else 'ws'}://{host}:{name[1]}/"

    @property
    def connections(self) -> int:
        """Connections now served (handshakes included)."""
        return len(self._live)

    # ------------------------------------------------------------------ accepting

    def serve_forever(self) -> None:
        """Accept connections until ``shutdown()`` (from another thread) or KeyboardInterrupt
        (which shuts down gracefully, then re-raises)."""
        with self._lock:
            if self._serving:
                raise RuntimeError("serve_forever is already running")
            if self._closing:
                return
            self._serving = True
        sel = selectors.DefaultSelector()
        try:
            for s in self._listeners:
                sel.register(s, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        continue
                    self._accept(key.fileobj)  # type: ignore[arg-type]
        except KeyboardInterrupt:
            sel.close()
            self._stop_listening()
            self._stopped.set()
            self.shutdown()
            raise
        finally:
            sel.close()
            self._stop_listening()
            self._stopped.set()

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(64):  # a burst, then look at the wake-up socket again
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                log.warning("accept failed: %s", exc)
                time.sleep(0.05)
                return
            sock.setblocking(True)
            try:
                tune_socket(sock, self.options.nodelay)
            except OSError:
                pass
            self._start_session(sock)

    def _start_session(self, sock: socket.socket) -> None:
        limit = self.options.max_connections
        reject: Optional[Reject] = None
        with self._lock:
            if limit is not None and len(self._live) >= limit:
                if self._rejecting >= MAX_REJECTING:
                    log.info("connection from %s dropped: %d connections and %d rejections running",
                             peer_name(sock), len(self._live), self._rejecting)
                    sock.close()
                    return
                self._rejecting += 1
                reject = Reject(503, headers=[("Retry-After", "1")], body=_BUSY_BODY)
            t = threading.Thread(target=self._run, args=(sock, reject), daemon=True)
            if reject is None:
                self._live[t] = None
            self._raw[t] = sock
        t.name = f"wsfast-sync-{peer_name(sock)}"
        t.start()

    def _run(self, sock: socket.socket, reject: Optional[Reject]) -> None:
        me = threading.current_thread()
        try:
            if reject is not None:
                log.info("rejecting %s with 503: %d connections (max_connections)", peer_name(sock), len(self._live))
            self._session(self, sock, reject)
        except Exception:
            log.exception("connection thread failed")
        finally:
            with self._lock:
                self._live.pop(me, None)
                self._raw.pop(me, None)
                if reject is not None:
                    self._rejecting -= 1
            try:
                sock.close()
            except OSError:
                pass

    def _register(self, ws: WebSocket) -> None:
        me = threading.current_thread()
        with self._lock:
            if me in self._live:
                self._live[me] = ws

    # ------------------------------------------------------------------ per connection

    def _tls(self, sock: socket.socket, timeout: Optional[float]) -> Optional[socket.socket]:
        ctx = self.options.ssl
        if ctx is None:
            return sock
        try:
            sock.settimeout(timeout)
            tls = ctx.wrap_socket(sock, server_side=True)
        except (OSError, ValueError) as exc:
            log.info("TLS handshake with %s failed: %s", peer_name(sock), exc)
            return None
        me = threading.current_thread()
        with self._lock:
            if me in self._raw:
                self._raw[me] = tls
        return tls

    def _new_ws(self, sock: socket.socket, handler: Handler, reject: Optional[Reject], start: float) -> WebSocket:
        opts = self.options
        open_timeout = REJECT_TIMEOUT if reject is not None else opts.open_timeout
        if open_timeout is not None:
            open_timeout = max(open_timeout - (_monotonic() - start), 0.001)
        transport = BlockingSocketTransport(sock, REJECT_TIMEOUT if reject is not None else self.write_timeout)
        ws = WebSocket.with_options(
            new_server(opts), handler, transport, opts, open_timeout=open_timeout, cross_thread="lock", logger=log
        )
        ws.response_headers = tuple(opts.headers)
        ws.remote_address = peer_name(sock) if self.unix_path is None else self.unix_path
        try:
            ws.local_address = sock.getsockname()
        except OSError:
            pass
        return ws

    # ------------------------------------------------------------------ shutting down

    def _stop_listening(self) -> None:
        with self._lock:
            listeners, self._listeners_closed = self._listeners, True
        for s in listeners:
            try:
                s.close()
            except OSError:
                pass
        if self.unix_path is not None:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass

    def shutdown(self, timeout: float = 10.0, code: int = 1001, reason: str = "server shutting down") -> None:
        """Stop accepting, answer handshakes in progress with 503, close open connections
        with ``code`` and wait up to ``timeout`` seconds for their handlers to return; then
        close TCP under those left and return. Callable from any thread; idempotent."""
        deadline = _monotonic() + timeout
        with self._lock:
            first = not self._closing
            self._closing = True
            serving = self._serving
        if first:
            log.info("shutting down %s: %d connections", self.url, len(self._live))
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if serving:
            self._stopped.wait(max(deadline - _monotonic(), 0.0) + 1.0)
        else:
            self._stop_listening()
        with self._lock:
            live = list(self._live.items())
        for _t, ws in live:
            if ws is not None and ws.is_open and not ws.closed:
                self._close_ws(ws, code, reason, deadline)
        for t, _ws in live:
            t.join(max(deadline - _monotonic(), 0.0))
        with self._lock:
            left = list(self._live.items())
            raws = dict(self._raw)
        if left:
            log.info("shutdown: dropping %d connections still open after %s s", len(left), timeout)
        for t, ws in left:
            if ws is not None:
                ws.force_quit()
            else:
                raw = raws.get(t)
                if raw is not None:
                    try:
                        socket.socket.shutdown(raw, socket.SHUT_RDWR)
                    except OSError:
                        pass
        grace = _monotonic() + 1.0
        for t, _ws in left:
            t.join(max(grace - _monotonic(), 0.0))
            if t.is_alive():
                log.warning("shutdown: handler thread %s did not return", t.name)
        if first:
            for s in (self._wake_r, self._wake_w):
                s.close()
            log.info("server stopped")

    def _close_ws(self, ws: WebSocket, code: int, reason: str, deadline: float) -> None:
        lock = ws._lock
        assert lock is not None
        # A writer blocked on a slow peer holds the lock: do not wait past the deadline.
        if not lock.acquire(True, max(deadline - _monotonic(), 0.0)):
            return
        try:
            ws.close(code, reason)
        except Exception as exc:  # the close frame could not be written: the transport is shut
            log.debug("closing %s for shutdown failed: %r", ws.remote_address, exc)
        finally:
            lock.release()

    def close(self, timeout: float = 10.0) -> None:
        """Same as ``shutdown``."""
        self.shutdown(timeout)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<Server {self.url} {len(self._live)} connections>"


def _sync_session(handler: Callable[[ServerConnection], Any], process_request: Optional[ProcessRequest]) -> Session:
    """The session of ``serve``: handshake, then ``handler(connection)``, then close."""

    def session(server: Server, sock: socket.socket, reject: Optional[Reject]) -> None:
        start = _monotonic()
        tls = server._tls(sock, REJECT_TIMEOUT if reject is not None else server.options.open_timeout)
        if tls is None:
            return
        collector = _ServerCollector(server, process_request, reject)
        ws = server._new_ws(tls, collector, reject, start)
        conn = ServerConnection(ws, tls, collector)
        conn.server = server
        if reject is None:
            server._register(ws)
        try:
            ws.start()
            while not collector.opened and blocking_step(ws, tls):
                pass
            if not collector.opened:
                return
            log.info("connection from %s opened: %s", ws.remote_address, ws.request.target if ws.request else "")
            try:
                handler(conn)
            except Exception as exc:
                if not ws.closed:
                    log.error("handler raised %r: closing with 1011", exc, exc_info=exc)
                    conn.close(1011, "internal error")
                else:
                    log.debug("handler raised %r after the close", exc)
            else:
                conn.close(1000)
        finally:
            if not ws.closed:
                ws.force_quit()
            conn._release()

    return session


def _handler_session(handler_factory: Callable[[], Handler]) -> Session:
    """The session of ``wsfast.sync._mode``: a ``Handler`` on the driver, stepped until closed."""

    def session(server: Server, sock: socket.socket, reject: Optional[Reject]) -> None:
        start = _monotonic()
        tls = server._tls(sock, REJECT_TIMEOUT if reject is not None else server.options.open_timeout)
        if tls is None:
            return
        ws = server._new_ws(tls, _ModeHandler(handler_factory(), server, reject), reject, start)
        if reject is None:
            server._register(ws)
        ws.start()
        run_blocking(ws, tls)

    return session


def _listen(host: Optional[str], port: int, opts: ServerOptions) -> List[socket.socket]:
    return listen(host, port, backlog=opts.backlog, reuse_port=opts.reuse_port)


def serve(
    handler: Callable[[ServerConnection], Any],
    host: Optional[str],
    port: int,
    *,
    process_request: Optional[ProcessRequest] = None,
    write_timeout: Optional[float] = DEFAULT_WRITE_TIMEOUT,
    **options: Any,
) -> Server:
    """Listen on ``host:port`` (None/"" = all interfaces; port 0 picks one: ``server.port``)
    and serve each connection in its own thread with ``handler(connection)``.

    ``process_request(connection, request)`` sees the handshake request (``request.path``,
    ``.headers``, ``connection.remote_address``) and returns None (accept), ``Accept``
    (a subprotocol, extra headers) or ``Reject(status, headers, body)`` (e.g. 401 with
    ``WWW-Authenticate``). Keyword arguments are ``wsfast._options.ServerOptions``
    (``subprotocols``, ``compression``, ``ssl`` (an ``ssl.SSLContext``), the timeouts,
    ``max_size``, ``max_frame_size``, ``max_connections``, ``nodelay``, ``reuse_port``,
    ``backlog``, ``headers``) plus ``write_timeout`` (see ``wsfast._sockio``).
    Call ``serve_forever()`` to accept, ``shutdown()`` to stop."""
    opts = ServerOptions.from_kwargs(options)
    return Server(_listen(host, port, opts), _sync_session(handler, process_request), opts, write_timeout)


def unix_serve(
    handler: Callable[[ServerConnection], Any],
    path: str,
    *,
    process_request: Optional[ProcessRequest] = None,
    write_timeout: Optional[float] = DEFAULT_WRITE_TIMEOUT,
    **options: Any,
) -> Server:
    """``serve`` on a Unix socket at ``path`` (removed again at shutdown)."""
    opts = ServerOptions.from_kwargs(options)
    sock = listen_unix(path, backlog=opts.backlog)
    return Server([sock], _sync_session(handler, process_request), opts, write_timeout, unix_path=path)


def serve_handlers(
    handler_factory: Callable[[], Handler],
    host: Optional[str],
    port: int,
    options: ServerOptions,
    write_timeout: Optional[float] = DEFAULT_WRITE_TIMEOUT,
) -> Server:
    """A ``Server`` running ``Handler`` objects (one per connection, from ``handler_factory``)
    thread-per-connection: the ``blocking`` mode's server (``wsfast.sync._mode``)."""
    return Server(_listen(host, port, options), _handler_session(handler_factory), options, write_timeout)

