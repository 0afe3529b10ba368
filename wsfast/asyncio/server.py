"""asyncio servers: ``serve`` (a coroutine per connection) and ``serve_handler`` (callbacks).

Both take the keyword arguments of ``wsfast._options.ServerOptions`` (subprotocols,
compression, ssl, timeouts, max_size, max_connections, backlog, reuse_port, headers).
Above ``max_connections`` open connections a new handshake is refused with 503. ``close()``
(or leaving ``async with``) stops listening, closes every connection with 1001 and aborts
those still there after ``close_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set

from .._net import listen
from .._options import ServerOptions, new_server
from ..events import Request
from ..exceptions import ConnectionClosed
from ..handler import Decision, Handler, Reject, WebSocket
from ._connection import DEFAULT_MAX_QUEUE, Connection
from ._protocol import READ_SIZE, AsyncioTransport, WSProtocol

__all__ = ["Server", "serve", "serve_handler"]

log = logging.getLogger("wsfast.asyncio.server")


class _Busy(Handler):
    """Stands in for the application's handler above ``max_connections``: answers 503."""

    def on_request(self, ws: WebSocket, request: Request) -> Decision:
        return Reject(503, [("Retry-After", "1")], b"too many connections\n")


_BUSY = _Busy()


class Server:
    """A listening WebSocket server on the running loop."""

    def __init__(self, make_handler: Callable[[], Handler], opts: ServerOptions, read_size: int) -> None:
        self.opts = opts
        self.read_size = read_size
        self._make_handler = make_handler
        self.protocols: Set[WSProtocol] = set()
        self.servers: List[asyncio.AbstractServer] = []
        self._closing = False
        #: The application tasks of the async face (cancelled if still running after close).
        self.tasks: Set[asyncio.Task[None]] = set()
        self._port = 0
        self._url = ""
        self._all_gone: Optional[asyncio.Future[None]] = None
        self.loop = asyncio.get_running_loop()

    # -------------------------------------------------------------- per connection

    def _protocol(self) -> WSProtocol:
        opts = self.opts
        tio = AsyncioTransport(self.loop)
        # The handler is chosen in _made, once the transport is up: with TLS, asyncio makes
        # this protocol at accept time but calls connection_made only after the TLS
        # handshake, and never tells it when that handshake fails.
        ws = WebSocket.with_options(new_server(opts), _BUSY, tio, opts, cross_thread="queue")
        ws.response_headers = tuple(opts.headers)
        return WSProtocol(ws, tio, self._lost, self.read_size, on_made=self._made)

    def _made(self, p: WSProtocol) -> None:
        """A connection is up (TLS done): count it, or answer 503 above the limit."""
        limit = self.opts.max_connections
        if (limit is not None and len(self.protocols) >= limit) or self._closing:
            return  # stays on _BUSY, uncounted
        handler = self._make_handler()
        ws = p.ws
        ws.set_handler(handler)
        self.protocols.add(p)
        if isinstance(handler, Connection):
            handler.ws = ws
            handler.protocol = p
            if isinstance(handler, _ServerConnection):
                handler.server = self

    def _lost(self, p: WSProtocol) -> None:
        self.protocols.discard(p)
        if not self.protocols and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)

    # -------------------------------------------------------------- lifecycle

    async def _start(self, host: Optional[str], port: int) -> None:
        opts = self.opts
        tls: Dict[str, Any] = {}
        if opts.ssl is not None:
            # asyncio runs the TLS handshake before connection_made (where the driver's
            # handshake timer starts): bound it by the same open_timeout.
            tls = {"ssl": opts.ssl, "ssl_handshake_timeout": opts.open_timeout}
        for sock in listen(host, port, backlog=opts.backlog, reuse_port=opts.reuse_port):
            srv = await self.loop.create_server(self._protocol, sock=sock, backlog=opts.backlog, **tls)
            self.servers.append(srv)
        name = self.sockets[0].getsockname()
        host = name[0] if ":" not in name[0] else f"[{name[0]}]"
        self._port = int(name[1])
        self._url = f"{'wss' if opts.ssl else 'ws'}://{host}:{name[1]}/"
        log.info("listening on %s", self._url)

    @property
    def port(self) -> int:
        """The listening port (the real one if 0 was asked; kept after ``close()``)."""
        return self._port

    @property
    def sockets(self) -> List[Any]:
        return [s for srv in self.servers for s in (getattr(srv, "sockets", None) or ())]

    @property
    def url(self) -> str:
        """``ws://host:port/`` (``wss://`` with TLS) of the first listening socket."""
        return self._url

    async def close(self, code: int = 1001, reason: str = "going away", timeout: Optional[float] = None) -> None:
        """Stop listening; close every connection with ``code`` and wait up to ``timeout``
        (default ``close_timeout``) for them to go, then abort the rest; application tasks
        still running after that are cancelled."""
        if not self._closing:
            log.info("closing %s: %d connections, code %d", self._url, len(self.protocols), code)
        self._closing = True
        for srv in self.servers:
            srv.close()
        if timeout is None:
            timeout = self.opts.close_timeout
        for p in list(self.protocols):
            ws = p.ws
            if ws.closed:
                continue
            if ws.is_open:
                ws.close(code, reason)
                # The closing handshake needs the peer's close frame: read again even if the
                # application (or a full receive queue) paused reading.
                if isinstance(ws.handler, Connection):
                    ws.handler.closing()
                else:
                    p.resume_reading()
            else:
                ws.force_quit()
        if self.protocols:
            self._all_gone = self.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._all_gone), timeout)
            except asyncio.TimeoutError:
                log.info("%d connections still open after %s s: aborting", len(self.protocols), timeout)
                for p in list(self.protocols):
                    p.ws.force_quit()
        if self.tasks:
            _done, pending = await asyncio.wait(list(self.tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=timeout)
        for srv in self.servers:
            await srv.wait_closed()

    async def serve_forever(self) -> None:
        """Run until cancelled (then close gracefully)."""
        try:
            await asyncio.Future()
        finally:
            await self.close()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


async def serve_handler(
    handler_factory: Callable[[], Handler],
    host: Optional[str] = "127.0.0.1",
    port: int = 0,
    *,
    read_size: int = READ_SIZE,
    **kwargs: Any,
) -> Server:
    """Callback face: serve ``host:port`` with ``handler_factory()`` per connection (the
    ``Handler`` of every wsfast adapter: ``on_request`` may accept or reject)."""
    server = Server(handler_factory, ServerOptions.from_kwargs(kwargs), read_size)
    await server._start(host, port)
    return server


RequestHook = Callable[[Connection, Request], Decision]


class _ServerConnection(Connection):
    """A ``Connection`` that runs the application's coroutine once open."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app: Callable[[Connection], Awaitable[Any]],
        hook: Optional[RequestHook],
        max_queue: Optional[int],
        write_limit: Optional[int],
    ) -> None:
        super().__init__(loop, max_queue)
        self._app = app
        self._hook = hook
        self._write_limit = write_limit
        self.task: Optional[asyncio.Task[None]] = None
        self.server: Optional[Server] = None

    def on_request(self, ws: WebSocket, request: Request) -> Decision:
        return None if self._hook is None else self._hook(self, request)

    def on_open(self, ws: WebSocket) -> None:
        super().on_open(ws)
        if self._write_limit is not None and self.protocol.transport is not None:
            self.protocol.transport.set_write_buffer_limits(high=self._write_limit)
        task = self.task = self.loop.create_task(self._run())
        server = self.server
        if server is not None:
            server.tasks.add(task)
            task.add_done_callback(server.tasks.discard)

    async def _run(self) -> None:
        try:
            await self._app(self)
        except ConnectionClosed:
            return  # the peer left while the handler was talking to it: nothing to report
        except Exception:
            log.exception("connection handler failed: closing with 1011")
            await self.close(1011, "internal error")
            return
        except asyncio.CancelledError:
            self.abort()
            raise
        await self.close()


async def serve(
    app: Callable[[Connection], Awaitable[Any]],
    host: Optional[str] = "127.0.0.1",
    port: int = 0,
    *,
    process_request: Optional[RequestHook] = None,
    max_queue: Optional[int] = DEFAULT_MAX_QUEUE,
    write_limit: Optional[int] = None,
    read_size: int = READ_SIZE,
    **kwargs: Any,
) -> Server:
    """Async face: ``await app(connection)`` for each connection once open; the connection
    is closed (1000) when it returns, or with 1011 when it raises.

    ``process_request(connection, request)`` may return ``Accept(...)``/``Reject(...)``
    (None accepts). Use as ``async with await serve(app, port=8765) as server:``."""
    opts = ServerOptions.from_kwargs(kwargs)
    loop = asyncio.get_running_loop()
    server = Server(lambda: _ServerConnection(loop, app, process_request, max_queue, write_limit), opts, read_size)
    await server._start(host, port)
    return server
