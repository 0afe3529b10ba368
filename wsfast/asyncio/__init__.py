"""wsfast on asyncio (and uvloop): a ``BufferedProtocol`` adapter with two faces.

* Callback face, lowest overhead: ``open_handler(uri, handler)`` and
  ``serve_handler(factory, host, port)`` run the ``wsfast.Handler`` every adapter uses.
* Async face: ``connect(uri)`` and ``serve(app, host, port)`` give ``Connection`` objects
  with ``await recv()``, ``async for``, ``await send()``, ``await ping()``, ``await close()``.

Both sit on one ``WSProtocol`` and the shared ``WebSocket`` driver. See the README, "asyncio and uvicorn".
"""

from ._connection import DEFAULT_MAX_QUEUE, Connection
from ._protocol import READ_SIZE, AsyncioTransport, WSProtocol
from .client import connect, open_handler
from .server import Server, serve, serve_handler

__all__ = [
    "Connection",
    "DEFAULT_MAX_QUEUE",
    "READ_SIZE",
    "AsyncioTransport",
    "WSProtocol",
    "connect",
    "open_handler",
    "Server",
    "serve",
    "serve_handler",
]
