"""Wire constants of RFC 6455: opcodes, close codes, close-frame bodies; frames encoded once.

Data and small wire-format helpers live here; the parser is in ``_parser.py`` and the policy
in ``connection.py``.

Prepared frames
---------------
``prepare(message)`` encodes a data message once as the frame a server connection without
an extension transform sends: FIN, no RSV bit, unmasked (RFC 6455 §5.1). A broadcast hands
the same ``PreparedFrame`` to every connection's ``Connection.send_prepared``, which queues
that very bytes object (no copy, one object shared by every slow peer's buffer) where the
connection's frame would be exactly those bytes, and encodes the payload as ``send_text``/
``send_binary`` would where it would not (a client masks, permessage-deflate compresses, a
fragmented message being sent takes the frame as its last fragment).
"""

from __future__ import annotations

import enum
import struct
from typing import Union

from ._speedups import FrameEncoder
from .exceptions import InvalidUTF8, ProtocolError

__all__ = [
    "Opcode",
    "CloseCode",
    "is_valid_close_code",
    "parse_close",
    "serialize_close",
    "PreparedFrame",
    "prepare",
    "frame_size",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 §5.2, §11.8). 0x3–0x7 and 0xB–0xF are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 §7.4.1 and the IANA registry)."""

    #: Normal closure: the purpose of the connection has been fulfilled.
    NORMAL_CLOSURE = 1000
    #: An endpoint is going away (server shutdown, browser navigating away).
    GOING_AWAY = 1001
    #: The peer violated the protocol.
    PROTOCOL_ERROR = 1002
    #: A data type the endpoint cannot accept (e.g. binary to a text-only endpoint).
    UNSUPPORTED_DATA = 1003
    #: Reserved, never on the wire: the close frame had no status code.
    NO_STATUS_RCVD = 1005
    #: Reserved, never on the wire: the connection closed without a close frame.
    ABNORMAL_CLOSURE = 1006
    #: Data inconsistent with the message type (non-UTF-8 text).
    INVALID_FRAME_PAYLOAD_DATA = 1007
    #: A message violates the endpoint's policy.
    POLICY_VIOLATION = 1008
    #: A message too big to process.
    MESSAGE_TOO_BIG = 1009
    #: The client expected the server to negotiate an extension it did not (client only).
    MANDATORY_EXTENSION = 1010
    #: The server met an unexpected condition.
    INTERNAL_ERROR = 1011
    #: IANA: service restart.
    SERVICE_RESTART = 1012
    #: IANA: try again later.
    TRY_AGAIN_LATER = 1013
    #: IANA: bad gateway.
    BAD_GATEWAY = 1014
    #: Reserved, never on the wire: TLS handshake failure.
    TLS_HANDSHAKE = 1015


#: Codes below 3000 that an endpoint may put on the wire (RFC 6455 §7.4.1 + IANA registry).
WIRE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
#: Codes that only ever describe a closure locally.
LOCAL_ONLY_CODES = frozenset({1005, 1006, 1015})
#: Codes that mean a clean, intended closure.
OK_CLOSE_CODES = frozenset({1000, 1001})


def is_valid_close_code(code: int) -> bool:
    """True if ``code`` may appear in a close frame on the wire.

    RFC 6455 §7.4.2: 0–999 are not used; 1000–2999 belong to the protocol (only the
    registered ones are valid); 3000–3999 are for libraries and frameworks (IANA registered);
    4000–4999 are private use.
    """
    return code in WIRE_CODES or 3000 <= code <= 4999


_U16 = struct.Struct("!H")


def parse_close(payload: bytes) -> tuple[int, str]:
    """Parse a close frame body (RFC 6455 §5.5.1) into ``(code, reason)``.

    An empty body means "no status" and gives ``(1005, "")``. A 1-byte body, a code that may
    not be on the wire, or a reason that is not UTF-8 raises ``ProtocolError``/``InvalidUTF8``.
    """
    n = len(payload)
    if n == 0:
        return 1005, ""
    if n == 1:
        raise ProtocolError("close frame with a 1-byte payload")
    (code,) = _U16.unpack_from(payload)
    if not is_valid_close_code(code):
        raise ProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidUTF8("close reason is not valid UTF-8") from None
    return code, reason


def serialize_close(code: int, reason: str = "") -> bytes:
    """Build a close frame body. ``code`` 1005 with no reason gives an empty body."""
    if code == 1005 and not reason:
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent on the wire")
    body = _U16.pack(code) + reason.encode("utf-8")
    if len(body) > 125:
        raise ValueError("close reason is longer than 123 bytes once UTF-8 encoded")
    return body


_UNMASKED = FrameEncoder(False)


class PreparedFrame:
    """A text or binary message encoded once as an unfragmented, unmasked frame without RSV
    bits (see the module docstring). Build it with ``prepare``.

    Attributes:
        opcode: ``Opcode.TEXT`` or ``Opcode.BINARY``.
        payload: the message (UTF-8 for text), for connections that encode their own frame.
        data: the whole frame (header and payload), the bytes queued where they fit.
    """

    __slots__ = ("opcode", "payload", "data")

    def __init__(self, opcode: int, payload: bytes) -> None:
        if opcode != Opcode.TEXT and opcode != Opcode.BINARY:
            raise ValueError("a prepared frame is a text or binary message")
        if type(payload) is not bytes:
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        self.opcode = int(opcode)
        self.payload = payload
        self.data = _UNMASKED.encode(0x80 | opcode, payload)

    def __repr__(self) -> str:
        kind = "text" if self.opcode == Opcode.TEXT else "binary"
        return f"<PreparedFrame {kind} {len(self.payload)} bytes>"


def prepare(message: Union[str, bytes, bytearray, memoryview]) -> PreparedFrame:
    """Encode ``message`` once: ``str`` as a text frame, a bytes-like object as binary."""
    if isinstance(message, str):
        return PreparedFrame(Opcode.TEXT, message.encode("utf-8"))
    return PreparedFrame(Opcode.BINARY, bytes(message))


def frame_size(data: Union[bytes, bytearray, memoryview], start: int = 0) -> int:
    """The length of the whole frame (header, masking key, payload) whose header begins at
    ``data[start]``, or -1 if ``data`` ends before that header does. The header is not
    validated: this measures frames this side wrote (e.g. to cut its own output buffer on a
    frame boundary), it does not parse a peer's."""
    if start + 2 > len(data):
        return -1
    b1 = data[start + 1]
    n = b1 & 0x7F
    size = 2
    if n == 126:
        size = 4
    elif n == 127:
        size = 10
    if b1 & 0x80:
        size += 4  # the masking key
    if start + size > len(data):
        return -1
    if n == 126:
        n = (data[start + 2] << 8) | data[start + 3]
    elif n == 127:
        n = int.from_bytes(data[start + 2 : start + 10], "big")
    return size + n
