"""The three low-latency client modes (after Rust's s9_websocket), on the one ``Handler``.

* ``NonBlockingClient``: a non-blocking socket polled on the caller's thread; ``spin_wait``
  None busy-polls (lowest latency), a duration sleeps, but only after an idle iteration.
* ``BlockingClient``: blocking reads on the caller's thread, their timeout taken from the
  connection's next timer (keepalive, close timeout); ``write_timeout``.
* ``BackgroundClient``: an IO thread; typed events in a bounded queue, commands from any
  thread through a bounded queue that wakes it.

All take the ``ClientOptions`` keyword arguments (headers, subprotocols, compression, ssl,
timeouts, keepalive, socket options) and ``reconnect=Reconnect(...)``. A handler written once
runs unchanged under each (and under the selector loop and asyncio's callback face).
"""

from __future__ import annotations

from ._common import ClientWebSocket, Reconnect
from .background import (
    BackgroundClient,
    Binary,
    Closed,
    Error,
    Event,
    EventQueue,
    Opened,
    PingReceived,
    PongReceived,
    Quit,
    Reconnecting,
    Text,
)
from .blocking import BlockingClient
from .nonblocking import NonBlockingClient

__all__ = [
    "NonBlockingClient",
    "BlockingClient",
    "BackgroundClient",
    "Reconnect",
    "ClientWebSocket",
    "EventQueue",
    "Event",
    "Opened",
    "Text",
    "Binary",
    "PingReceived",
    "PongReceived",
    "Closed",
    "Error",
    "Reconnecting",
    "Quit",
]
