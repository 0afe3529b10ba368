"""The extension hook (RFC 6455 §9): how an extension negotiates, claims RSV bits and
transforms message payloads. permessage-deflate (``wsfast.permessage_deflate``) is the
first user.

Negotiation happens in the opening handshake. The client offers, the server picks:

* ``ClientExtensionFactory.offer()`` gives the parameters of the client's offer;
  ``ClientExtensionFactory.accept(params)`` checks the server's response parameters and
  returns the negotiated ``Extension`` (or raises ``NegotiationError``, which fails the
  handshake as RFC 6455 §9.1 requires).
* ``ServerExtensionFactory.negotiate(offers)`` receives every offer of its name, in the
  client's order of preference, and returns ``(response_params, extension)`` for the first
  one it accepts, or ``None`` to decline them all (the connection goes on without it).

Parameters are lists of ``(name, value)`` pairs, ``value`` being ``None`` for a parameter
without a value; quoted-string values arrive unquoted.

Once open, the engine calls the ``Extension`` for every data message:

* receiving: ``decode_start(rsv)`` on the first frame of each data message (``rsv`` is the
  frame's RSV bits as ``0x40 | 0x20 | 0x10``); if it returns True the message's payload is
  transformed: every payload chunk goes through ``decode(chunk, max_length)`` and the end of
  the message through ``decode_end(max_length)``; both return plain payload bytes and raise
  ``PayloadTooBig`` if the output would exceed ``max_length`` (the room left under the
  message size limit) and ``ProtocolError`` on corrupt input.
* sending: ``encode(payload, first, fin, compress)`` for every data frame returns
  ``(rsv_bits, payload_to_send)``; ``first`` marks the first frame of a message (the only
  one that may carry RSV bits), ``fin`` the last, ``compress`` is the caller's per-message
  choice (``None`` = extension's policy).

Control frames never pass through extensions. An extension claims RSV bits with ``rsv``;
a frame with any RSV bit that no negotiated extension claims fails the connection (1002).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

__all__ = ["Params", "Extension", "ClientExtensionFactory", "ServerExtensionFactory"]

Params = List[Tuple[str, Optional[str]]]


class Extension:
    """A negotiated extension, one per connection."""

    #: Registered extension name, e.g. ``"permessage-deflate"``.
    name: str = ""
    #: RSV bits this extension may set on the first frame of a data message.
    rsv: int = 0

    def decode_start(self, rsv: int) -> bool:
        raise NotImplementedError

    def decode(self, data: bytes, max_length: int) -> bytes:
        raise NotImplementedError

    def decode_end(self, max_length: int) -> bytes:
        raise NotImplementedError

    def encode(self, payload: bytes, first: bool, fin: bool, compress: Optional[bool]) -> Tuple[int, bytes]:
        raise NotImplementedError


class ClientExtensionFactory:
    """Client side of negotiation."""

    name: str = ""

    def offer(self) -> Params:
        raise NotImplementedError

    def accept(self, params: Params) -> Extension:
        raise NotImplementedError


class ServerExtensionFactory:
    """Server side of negotiation."""

    name: str = ""

    def negotiate(self, offers: Sequence[Params]) -> Optional[Tuple[Params, Extension]]:
        raise NotImplementedError
