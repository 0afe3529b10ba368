"""The blocking client: ``connect(uri, ...)`` and ``unix_connect(path, ...)``.

::

    from wsfast.sync import connect

    with connect("wss://example.com/chat", subprotocols=["chat"]) as ws:
        ws.send("hello")
        print(ws.recv(timeout=5))

Everything runs on the calling thread (see ``wsfast.sync._connection``); ``connect``
returns once the handshake is done, or raises the exception that names what went wrong.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Optional, Tuple

from .. import handshake as hs
from .._options import ClientOptions
from .._sockio import DEFAULT_WRITE_TIMEOUT, blocking_step, open_client
from ..events import Accepted
from ..exceptions import InvalidHandshake
from ..handler import WebSocket
from ._connection import Connection, _Collector

__all__ = ["ClientConnection", "connect", "unix_connect"]

log = logging.getLogger("wsfast.sync.client")

Headers = Tuple[Tuple[str, str], ...]


class ClientConnection(Connection):
    """A client connection (see ``Connection`` for ``send``/``recv``/``ping``/``close``)."""

    def __init__(self, ws: WebSocket, sock: socket.socket, collector: _Collector, request: bytes) -> None:
        super().__init__(ws, sock, collector)
        self._request = request

    @property
    def request_headers(self) -> Headers:
        """The headers of the handshake request this client sent."""
        try:
            _method, _target, headers = hs.parse_request(self._request)
        except InvalidHandshake:  # pragma: no cover - we built it
            return ()
        return tuple(headers)

    @property
    def response(self) -> Optional[Accepted]:
        """The server's 101 response (``status``, ``headers``, ``subprotocol``, ``extensions``)."""
        return self._ws.response

    @property
    def response_headers(self) -> Headers:
        r = self._ws.response
        return () if r is None else tuple(r.headers)


def connect(uri: str, *, write_timeout: Optional[float] = DEFAULT_WRITE_TIMEOUT, **options: Any) -> ClientConnection:
    """Open a WebSocket connection to ``uri`` (``ws://`` or ``wss://``) and finish the handshake.

    Keyword arguments are those of ``wsfast._options.ClientOptions`` (``subprotocols``,
    ``headers``, ``origin``, ``compression`` (``"deflate"`` by default, None for off), ``ssl``,
    ``open_timeout``, ``close_timeout``, ``ping_interval``, ``ping_timeout`` (None turns them
    off), ``max_size``, ``max_frame_size``, ``nodelay``, ``socket_options``, ``source_address``,
    ``unix_path``), plus ``write_timeout``: seconds a send may wait with the peer taking
    nothing before the connection is dropped (None: forever; see ``wsfast._sockio``).

    Raises: ``InvalidURI``; ``ResolveError`` (DNS), ``ConnectRefused``, ``TLSError``,
    ``NetworkError``; ``OpenTimeout`` (connect + TLS + handshake took over ``open_timeout``);
    ``InvalidStatus`` (an HTTP answer other than 101: ``.status``, ``.headers``, ``.body``);
    ``InvalidHandshake`` (a wrong accept hash, garbage, a connection closed mid-handshake).
    """
    opts = ClientOptions.from_kwargs(options)
    collector = _Collector()
    ws, sock = open_client(uri, collector, opts, cross_thread="lock", write_timeout=write_timeout, logger=log)
    return _finish_open(ws, sock, collector, uri)


def unix_connect(
    path: str, uri: str = "ws://localhost/", *, write_timeout: Optional[float] = DEFAULT_WRITE_TIMEOUT, **options: Any
) -> ClientConnection:
    """``connect`` over the Unix socket at ``path``; ``uri`` gives the Host header and path."""
    options["unix_path"] = path
    return connect(uri, write_timeout=write_timeout, **options)


def _finish_open(ws: WebSocket, sock: socket.socket, collector: _Collector, uri: str) -> ClientConnection:
    conn = ClientConnection(ws, sock, collector, ws.data.get("request", b""))
    try:
        while not collector.opened and blocking_step(ws, sock):
            pass
    except BaseException:
        conn._abort()
        conn._release()
        raise
    if not collector.opened:
        conn._release()
        err = ws.error
        if err is None:
            err = InvalidHandshake(f"the connection to {uri} closed during the opening handshake")
        log.info("connecting to %s failed: %s", uri, err)
        raise err
    log.info("connected to %s (subprotocol %r, extensions %r)", uri, ws.subprotocol, ws.extensions)
    return conn
