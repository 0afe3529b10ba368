"""Connection states and the one table of transitions between them.

Theory of operation
-------------------
A connection moves through four states (RFC 6455 §4, §7)::

    CONNECTING --accept/101--> OPEN --close sent or received--> CLOSING --both--> CLOSED
         \\--reject/handshake failure--> CLOSED        OPEN/CLOSING --fail/eof--> CLOSED

Two rules, after h11:

1. Only :func:`transition` assigns a state, and only along an edge of ``TRANSITIONS``; any
   other request is a bug in the engine (an ``InvalidState`` with both names in it), so a
   missing edge fails loudly in tests instead of silently corrupting a connection.
2. What a state *allows* (which sends are legal, whether input is parsed or discarded) is
   decided by the connection from the state, never from ad-hoc flags.

``CLOSING`` means one close frame has crossed (sent or received) but not the other;
``CLOSED`` means the closing handshake is over, the connection failed, or TCP ended. In
``CLOSED`` nothing more is sent and input is discarded; the adapter only has to deal with
TCP (see ``Connection.close_tcp`` and ``Connection.close_expected``).
"""

from __future__ import annotations

import enum

from .exceptions import InvalidState

__all__ = ["State", "Role", "TRANSITIONS", "transition"]


class State(enum.IntEnum):
    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


CONNECTING, OPEN, CLOSING, CLOSED = State

#: (state, event) -> next state. Events: ``open`` (server accepted / client got 101),
#: ``reject`` (server refused, or client got a non-101), ``handshake_failed``,
#: ``close_sent``, ``close_received``, ``fail`` (we failed the connection),
#: ``eof`` (TCP ended).
TRANSITIONS: dict[tuple[State, str], State] = {
    (CONNECTING, "open"): OPEN,
    (CONNECTING, "reject"): CLOSED,
    (CONNECTING, "handshake_failed"): CLOSED,
    (CONNECTING, "eof"): CLOSED,
    (OPEN, "close_sent"): CLOSING,
    (OPEN, "close_received"): CLOSING,
    (OPEN, "fail"): CLOSED,
    (OPEN, "eof"): CLOSED,
    (CLOSING, "close_sent"): CLOSED,
    (CLOSING, "close_received"): CLOSED,
    (CLOSING, "fail"): CLOSED,
    (CLOSING, "eof"): CLOSED,
    (CLOSED, "eof"): CLOSED,
}


def transition(state: State, event: str) -> State:
    """The state after ``event`` in ``state``; ``InvalidState`` if there is no such edge."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidState(f"no transition for {event!r} in state {state.name}") from None
