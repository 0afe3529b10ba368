"""Blocking WebSocket client and server on the sans-IO engine, with no helper thread per
connection: ``recv()`` drives the engine, the keepalive and the timers on the caller's thread.

* ``connect(uri, ...)`` / ``unix_connect(path, ...)`` → ``ClientConnection``
* ``serve(handler, host, port, ...)`` / ``unix_serve(handler, path, ...)`` → ``Server``
  (one thread per connection running ``handler(connection)``)
"""

from __future__ import annotations

from ._connection import Connection, PingWaiter
from .client import ClientConnection, connect, unix_connect
from .server import Server, ServerConnection, serve, unix_serve

__all__ = [
    "Connection",
    "PingWaiter",
    "ClientConnection",
    "connect",
    "unix_connect",
    "ServerConnection",
    "Server",
    "serve",
    "unix_serve",
]
