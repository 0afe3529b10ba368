"""The events created once per message: ``TextMessage``, ``BinaryMessage``, ``Ping``, ``Pong``
(and their base ``Event``).

Theory of operation: these are on the hot path (one per message), so they are plain classes
with hand-written ``__init__``/``__eq__``/``__repr__`` that ``setup.py`` also compiles, from
this same source, as ``wsfast._messages_c`` (``_messages_c.pxd`` makes them extension types
with read-only fields and a free list). A compiled ``TextMessage("x")`` costs about a third
of a slotted dataclass. ``wsfast.events`` picks the build that matches the kernels and adds
the once-per-connection events as ordinary dataclasses.
"""

from __future__ import annotations

__all__ = ["Event", "TextMessage", "BinaryMessage", "Ping", "Pong"]


class Event:
    """Base class of all events."""

    __slots__ = ()


class TextMessage(Event):
    """A text message (or, when streaming fragments, one fragment of it).

    Attributes:
        data: the text (``str``).
        final: False for a non-final fragment (only when the connection streams fragments).
    """

    __slots__ = ("data", "final")

    def __init__(self, data: str, final: bool = True) -> None:
        self.data = data
        self.final = final

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.data == other.data and self.final == other.final

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.data, self.final))

    def __repr__(self) -> str:
        return "%s(data=%r, final=%r)" % (type(self).__name__, self.data, bool(self.final))


class BinaryMessage(Event):
    """A binary message (or, when streaming fragments, one fragment of it).

    Attributes:
        data: the payload (``bytes``).
        final: False for a non-final fragment (only when the connection streams fragments).
    """

    __slots__ = ("data", "final")

    def __init__(self, data: bytes, final: bool = True) -> None:
        self.data = data
        self.final = final

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.data == other.data and self.final == other.final

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.data, self.final))

    def __repr__(self) -> str:
        return "%s(data=%r, final=%r)" % (type(self).__name__, self.data, bool(self.final))


class Ping(Event):
    """A ping frame arrived (answered automatically unless ``auto_pong=False``)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.data == other.data

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.data))

    def __repr__(self) -> str:
        return "%s(data=%r)" % (type(self).__name__, self.data)


class Pong(Event):
    """A pong frame arrived."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.data == other.data

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.data))

    def __repr__(self) -> str:
        return "%s(data=%r)" % (type(self).__name__, self.data)
