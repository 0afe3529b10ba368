"""asyncio clients: ``connect`` (the async face) and ``open_handler`` (the callback face).

Both take the keyword arguments of ``wsfast._options.ClientOptions`` (subprotocols, headers,
compression, ssl, open_timeout, close_timeout, ping_interval, ping_timeout, max_size, ...).
``wss://`` is verified by default (``ssl=`` takes an ``SSLContext``). Failures raise the
same exceptions as every wsfast client: ``ResolveError``, ``ConnectRefused``, ``TLSError``,
``OpenTimeout``, ``InvalidStatus``, ``InvalidHandshake``, ``NetworkError``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Dict, Generator, Optional, Tuple

from .._net import network_error, tune_socket
from .._options import ClientOptions, new_client
from .._uri import WebSocketURI
from ..exceptions import OpenTimeout, ResolveError
from ..handler import Handler, WebSocket
from ._connection import DEFAULT_MAX_QUEUE, Connection
from ._protocol import READ_SIZE, AsyncioTransport, WSProtocol

__all__ = ["connect", "open_handler", "ClientOptions"]


def _new_ws(
    uri: Any, handler: Handler, opts: ClientOptions, loop: asyncio.AbstractEventLoop
) -> Tuple[WebSocketURI, WebSocket, AsyncioTransport]:
    parsed, conn = new_client(uri, opts)
    tio = AsyncioTransport(loop)
    # open_timeout=None: the whole open is bounded below, TCP + TLS + handshake.
    ws = WebSocket.with_options(conn, handler, tio, opts, open_timeout=None, cross_thread="queue")
    return parsed, ws, tio


async def _tcp_socket(uri: WebSocketURI, opts: ClientOptions, loop: asyncio.AbstractEventLoop) -> socket.socket:
    """A connected non-blocking TCP socket, tuned (TCP_NODELAY, ``socket_options``) *before*
    connecting, so that options such as SO_RCVBUF or SO_BINDTODEVICE take effect; each
    resolved address is tried in turn."""
    try:
        infos = await loop.getaddrinfo(uri.host, uri.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ResolveError(f"cannot resolve {uri.host!r}: {exc.strerror}") from exc
    if not infos:
        raise ResolveError(f"cannot resolve {uri.host!r}: no addresses")
    last: Optional[OSError] = None
    for family, kind, proto, _name, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            tune_socket(sock, opts.nodelay, opts.socket_options)
            if opts.source_address is not None:
                sock.bind(opts.source_address)
            await loop.sock_connect(sock, addr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
        except BaseException:
            sock.close()
            raise
    assert last is not None
    raise last


async def _transport(
    uri: WebSocketURI, ws: WebSocket, tio: AsyncioTransport, opts: ClientOptions, read_size: int
) -> WSProtocol:
    """Connect TCP (+ TLS) and start the handshake; wsfast exceptions for every failure."""
    loop = tio.loop
    ctx = opts.ssl_context(uri)
    protocol = WSProtocol(ws, tio, read_size=read_size)
    where = uri.host_header if opts.unix_path is None else opts.unix_path
    tls: Dict[str, Any] = {}
    if ctx is not None:
        tls = {"ssl": ctx, "server_hostname": uri.server_hostname or uri.host}
    try:
        if opts.unix_path is not None:
            await loop.create_unix_connection(lambda: protocol, opts.unix_path, **tls)
        else:
            sock = await _tcp_socket(uri, opts, loop)
            try:
                await loop.create_connection(lambda: protocol, sock=sock, **tls)
            except BaseException:
                sock.close()
                raise
    except OSError as exc:  # includes ssl.SSLError; ResolveError is not an OSError
        raise network_error(exc, where) from None
    assert protocol.transport is not None
    if not opts.nodelay:  # asyncio turns TCP_NODELAY on for every TCP transport: undo it
        sock = protocol.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    return protocol


async def _bounded(coro: Any, timeout: Optional[float], what: str) -> Any:
    if timeout is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise OpenTimeout(f"{what} did not finish within {timeout} s") from None


async def open_handler(
    uri: str, handler: Handler, *, read_size: int = READ_SIZE, **kwargs: Any
) -> WebSocket:
    """Callback face: connect and run ``handler`` on the running loop; returns its
    ``WebSocket`` once TCP (and TLS) is up. The handshake result arrives as
    ``on_open``/``on_error`` like in every other adapter; ``open_timeout`` covers
    connect + TLS, and the handshake (as the driver's handshake timer)."""
    opts = ClientOptions.from_kwargs(kwargs)
    loop = asyncio.get_running_loop()
    parsed, ws, tio = _new_ws(uri, handler, opts, loop)
    ws.open_timeout = opts.open_timeout
    where = f"connecting to {parsed.host_header}"
    await _bounded(_transport(parsed, ws, tio, opts, read_size), opts.open_timeout, where)
    return ws


async def _connect(
    uri: str, max_queue: Optional[int], read_size: int, write_limit: Optional[int], kwargs: Any
) -> Connection:
    opts = ClientOptions.from_kwargs(kwargs)
    loop = asyncio.get_running_loop()
    c = Connection(loop, max_queue)
    parsed, ws, tio = _new_ws(uri, c, opts, loop)
    c.ws = ws

    async def go() -> None:
        c.protocol = await _transport(parsed, ws, tio, opts, read_size)
        if write_limit is not None:
            assert c.protocol.transport is not None
            c.protocol.transport.set_write_buffer_limits(high=write_limit)
        await asyncio.shield(c.opened)

    try:
        await _bounded(go(), opts.open_timeout, f"the opening handshake with {parsed.host_header}")
    except BaseException:
        if c.protocol is not None and c.protocol.transport is not None:
            c.protocol.transport.abort()
        raise
    return c


class connect:
    """``await connect(uri, **options)`` or ``async with connect(uri) as ws:``: a
    ``Connection`` once the handshake succeeded.

    Args (beyond ``ClientOptions``):
        max_queue: messages buffered for ``recv()`` before reading pauses (None: unbounded).
        write_limit: the transport's high write watermark in bytes (``send()`` waits above).
        read_size: bytes of one socket read (the protocol's buffer).
    """

    def __init__(
        self,
        uri: str,
        *,
        max_queue: Optional[int] = DEFAULT_MAX_QUEUE,
        write_limit: Optional[int] = None,
        read_size: int = READ_SIZE,
        **kwargs: Any,
    ) -> None:
        ClientOptions.from_kwargs(kwargs)  # reject unknown arguments here, not at await
        self._args = (uri, max_queue, read_size, write_limit, kwargs)
        self._conn: Optional[Connection] = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return _connect(*self._args).__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await self
        return self._conn

    async def __aexit__(self, *exc: Any) -> None:
        if self._conn is not None:
            await self._conn.close()


