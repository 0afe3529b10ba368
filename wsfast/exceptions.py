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
    │   ├── InvalidStatus        a client got an HTTP status other than 101 (status, headers, body)
    │   └── OpenTimeout          the opening handshake did not finish in time (also TimeoutError)
    ├── InvalidURI               not a ws:// or wss:// URI (also ValueError)
    ├── NetworkError             the TCP/TLS connection could not be opened (cause chained)
    │   ├── ResolveError         the host name does not resolve
    │   ├── ConnectRefused       nothing listens there
    │   └── TLSError             the TLS handshake failed (certificate, hostname, protocol)
    ├── QueueFull                a bounded command/event queue is full (cross-thread sends)
    └── ConnectionClosed         raised by the IO adapters when the connection is gone
        ├── ConnectionClosedOK      both close frames exchanged with 1000/1001 (or 1005)
        └── ConnectionClosedError   anything else: an error code, no close frame, a timeout

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


class InvalidStatus(HandshakeError):
    """A client's handshake got an HTTP response other than 101 (e.g. 403, 404, 503)."""

    def __init__(
        self, status: int, reason: str = "", headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
    ) -> None:
        text = f"server rejected the WebSocket handshake: HTTP {status} {reason}".rstrip()
        super().__init__(text, status)
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return str(v)
        return default


class OpenTimeout(HandshakeError, TimeoutError):
    """The TCP connect, TLS handshake or WebSocket handshake did not finish in time."""

    status = 408

    def __str__(self) -> str:
        return self.reason


class InvalidURI(WebSocketError, ValueError):
    """The URI is not a valid ``ws://`` or ``wss://`` URI."""


class NetworkError(WebSocketError):
    """The connection could not be opened; ``__cause__`` is the ``OSError`` behind it."""


class ResolveError(NetworkError):
    """The host name did not resolve (DNS)."""


class ConnectRefused(NetworkError):
    """The TCP connection was refused: nothing listens at that address and port."""


class TLSError(NetworkError):
    """The TLS handshake failed: an unverifiable certificate, a wrong host name, a protocol error."""


class QueueFull(WebSocketError):
    """A bounded queue between threads is full; the command was not queued (retry or drop)."""


class ConnectionClosed(WebSocketError):
    """Raised by IO adapters when an operation needs a connection that is closed.

    ``code``/``reason`` are those of the close frame received (1006 if none arrived);
    ``sent_code`` is the close code this side sent (None if it sent none). (The engine's
    event for the end of TCP is ``wsfast.TransportClosed``.)
    """

    def __init__(self, code: int = 1006, reason: str = "", sent_code: int | None = None) -> None:
        text = f"connection closed: received {code}"
        if reason:
            text += f" ({reason})"
        if sent_code is not None:
            text += f", sent {sent_code}"
        super().__init__(text)
        self.code = code
        self.reason = reason
        self.sent_code = sent_code


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed cleanly (1000 or 1001)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error code or without a closing handshake."""
