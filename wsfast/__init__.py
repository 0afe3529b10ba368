"""wsfast: a correct, fast, embeddable WebSocket library.

The core is a sans-IO RFC 6455 engine (``ClientConnection``, ``ServerConnection``): bytes
in, events out; calls in, bytes out. See ``wsfast.connection`` for the integration loop.
"""

from . import _env  # noqa: F401  (first: it decides which build of the modules below loads)
from ._state import Role, State
from ._version import __version__
from .connection import ClientConnection, Connection, ServerConnection
from .events import (
    Accepted,
    BinaryMessage,
    CloseReceived,
    ConnectionFailed,
    Event,
    HandshakeFailed,
    Ping,
    Pong,
    Rejected,
    Request,
    TextMessage,
    TransportClosed,
)
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectRefused,
    HandshakeError,
    InvalidHandshake,
    InvalidState,
    InvalidStatus,
    InvalidURI,
    InvalidUTF8,
    NegotiationError,
    NetworkError,
    OpenTimeout,
    PayloadTooBig,
    ProtocolError,
    QueueFull,
    ResolveError,
    TLSError,
    WebSocketError,
)
from .frames import CloseCode, Opcode

__all__ = [
    "__version__",
    "Role",
    "State",
    "Connection",
    "ClientConnection",
    "ServerConnection",
    "Event",
    "Request",
    "Accepted",
    "Rejected",
    "HandshakeFailed",
    "TextMessage",
    "BinaryMessage",
    "Ping",
    "Pong",
    "CloseReceived",
    "ConnectionFailed",
    "TransportClosed",
    "WebSocketError",
    "ProtocolError",
    "InvalidUTF8",
    "PayloadTooBig",
    "InvalidState",
    "HandshakeError",
    "InvalidHandshake",
    "NegotiationError",
    "InvalidStatus",
    "OpenTimeout",
    "InvalidURI",
    "NetworkError",
    "ResolveError",
    "ConnectRefused",
    "TLSError",
    "QueueFull",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "CloseCode",
    "Opcode",
]
