"""The one exception hierarchy of wsfast.

::

    WebSocketError
    ├── ProtocolError            a peer broke RFC 6455/7692 (carries the close code, default 1002)
    │   ├── InvalidUTF8          1007: text or close reason that is not UTF-8
    │   └── PayloadTooBig        1009: a frame or message above the configured limit
    ├── InvalidState             local misuse: e.g. sending after close
    ├── HandshakeError           the opening handshake failed (carries an HTTP status hint)
    │   ├── InvalidHandshake     the peer's request/response is malformed or unacceptable
    │   └── NegotiationError     extension/subprotocol negotiation failed
    └── ConnectionClosed         raised by the IO adapters when the connection is gone
        ├── ConnectionClosedOK
        └── ConnectionClosedError

Peer faults never escape ``Connection.receive_data``: the engine catches ``ProtocolError``
in one place, fails the connection with ``exc.code`` and reports a ``ConnectionFailed`` event.
"""

from __future__ import annotations

__all__ = [
    "WebSocketError",
    "ProtocolError",
    "InvalidUTF8",
    "PayloadTooBig",
    "InvalidState",
    "HandshakeError",
    "InvalidHandshake",
    "NegotiationError",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
]


class WebSocketError(Exception):
    """Root of every exception wsfast raises on purpose."""


class ProtocolError(WebSocketError):
    """The peer violated the protocol; ``code`` is the close code to fail with."""

    code = 1002

    def __init__(self, reason: str = "", code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code


class InvalidUTF8(ProtocolError):
    """Text payload or close reason is not valid UTF-8 (RFC 6455 §8.1)."""

    code = 1007


class PayloadTooBig(ProtocolError):
    """A frame or message exceeds the configured limit (RFC 6455 §7.4.1, code 1009)."""

    code = 1009


class InvalidState(WebSocketError):
    """The local application called something the connection's state does not allow."""


class HandshakeError(WebSocketError):
    """The opening handshake failed. ``status`` is the HTTP status a server should answer."""

    status = 400

    def __init__(self, reason: str = "", status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status


class InvalidHandshake(HandshakeError):
    """The peer's HTTP request or response is malformed or not a WebSocket handshake."""


class NegotiationError(HandshakeError):
    """Subprotocol or extension parameters cannot be agreed."""


class ConnectionClosed(WebSocketError):
    """Raised by IO adapters when an operation needs a connection that is closed.

    ``code``/``reason`` are those of the close frame received (1006 if none).
    """

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed cleanly (1000 or 1001)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error code or without a closing handshake."""
