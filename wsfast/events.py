"""Events the engine reports from ``Connection.events()``.

Every event owns its data (no borrowed buffers). Treat events as immutable.

The per-message events (``TextMessage``, ``BinaryMessage``, ``Ping``, ``Pong``) live in
``_messages.py`` and are compiled as extension types with read-only fields when the kernels
are (construction is most of the engine's per-message cost). The once-per-connection events
below are slotted dataclasses; they are not ``frozen=True`` because a frozen dataclass's
``__init__`` goes through ``object.__setattr__`` (measured 0.33 µs vs 0.13 µs per
construction on CPython 3.11), and they are compared by value like the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

from ._env import NO_EXTENSIONS, REQUIRE_EXTENSIONS

__all__ = [
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
]

Headers = Sequence[Tuple[str, str]]


if NO_EXTENSIONS:
    from ._messages import BinaryMessage, Event, Ping, Pong, TextMessage
else:  # pragma: no cover  (coverage runs on the pure-Python build: WSFAST_NO_EXTENSIONS=1)
    try:
        from ._messages_c import BinaryMessage, Event, Ping, Pong, TextMessage
    except ImportError:
        if REQUIRE_EXTENSIONS:
            raise
        from ._messages import BinaryMessage, Event, Ping, Pong, TextMessage


@dataclass(slots=True)
class Request(Event):
    """Server side: a valid opening handshake request arrived.

    Answer it with ``ServerConnection.accept(...)`` or ``ServerConnection.reject(...)``.
    ``headers`` keeps the order and case of the wire; names can repeat.
    """

    method: str
    #: The request target: path and query, e.g. ``"/chat?room=1"``.
    target: str
    headers: Tuple[Tuple[str, str], ...]
    #: Subprotocols the client offered, in its order of preference.
    subprotocols: Tuple[str, ...]
    #: Extension offers, parsed: ``((name, ((param, value_or_None), ...)), ...)``.
    extensions: Tuple[Tuple[str, Tuple[Tuple[str, Optional[str]], ...]], ...]

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first header called ``name`` (case-insensitive), or ``default``."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default


@dataclass(slots=True)
class Accepted(Event):
    """Client side: the server accepted the handshake (HTTP 101); the connection is open."""

    status: int
    headers: Tuple[Tuple[str, str], ...]
    subprotocol: Optional[str]
    #: Names of the extensions in use, in order.
    extensions: Tuple[str, ...]


@dataclass(slots=True)
class Rejected(Event):
    """Client side: the server answered the handshake with a status other than 101."""

    status: int
    reason: str
    headers: Tuple[Tuple[str, str], ...]
    body: bytes


@dataclass(slots=True)
class HandshakeFailed(Event):
    """The opening handshake failed (malformed or unacceptable request/response).

    On a server, the engine has queued an HTTP error response with ``status``; on a
    client, ``status`` is 0. The connection is closed: flush ``data_to_send()`` and close TCP.
    """

    reason: str
    status: int


@dataclass(slots=True)
class CloseReceived(Event):
    """The peer sent a close frame. ``code`` is 1005 when it carried no status code."""

    code: int
    reason: str


@dataclass(slots=True)
class ConnectionFailed(Event):
    """The peer broke the protocol; we sent a close frame with ``code`` and closed."""

    code: int
    reason: str


@dataclass(slots=True)
class TransportClosed(Event):
    """The TCP connection ended (``receive_eof``). Always the last event.

    ``code``/``reason`` are the close frame the peer sent (1006 if none arrived).
    ``clean`` is True when the closing handshake completed before the TCP close.
    """

    code: int
    reason: str
    clean: bool


AnyMessage = Union[TextMessage, BinaryMessage]
