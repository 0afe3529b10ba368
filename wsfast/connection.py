"""The sans-IO WebSocket connection: bytes in, events out; calls in, bytes out.

Integration loop
----------------
The engine never touches a socket, a thread, a clock or ``ssl``. An adapter runs::

    conn = ServerConnection()                      # or ClientConnection("example.com", "/chat")
    while True:
        for chunk in conn.data_to_send():          # bytes the engine wants written, in order
            sock.sendall(chunk)
        if conn.close_tcp:                         # the engine is done with TCP: close it
            sock.close(); break
        data = sock.recv(65536)                    # (with a timeout if conn.close_expected())
        if not data:
            conn.receive_eof()                     # the peer closed TCP
        else:
            conn.receive_data(data)
        for event in conn.events():                # take events one at a time (see below)
            ...                                    # react: conn.send_text(...), conn.accept(...)

``events()`` returns an iterator. Take events from it one at a time and answer each before
taking the next: when a close frame or a protocol violation arrives in the same packet as
earlier messages, the engine queues its close frame only when that last event is taken, so
replies to the earlier messages go out first (what Autobahn calls "strict" behaviour, cases
3.x, 4.x, 5.15). Until then the connection stays ``OPEN``; the parser itself has already
stopped and discards anything after the close or the fault. ``receive_eof()`` and
``close()`` apply such a pending transition too, and so does ``data_to_send()`` when the
event was never handed out by ``events()`` (so nothing is lost if the application ignores
events, and flushing between two events of one iteration does not jump the queue). An
iterator dropped half-way applies it when it is closed; one dropped before its first
``next()`` takes nothing (its events stay queued for the next ``events()`` call).

One iteration of the loop above delivers everything the bytes received so far hold, in
order, including what only becomes parseable during the iteration:

* frames a client sends right behind its handshake request (without waiting for the 101)
  follow the ``Request`` in the same iteration, as soon as ``accept()`` is called on it
  (if the ``Request`` is answered after the iteration, they come with the next call);
* backpressure: the engine stops parsing (and inflating) once the events not yet taken
  hold about one message limit (at least 64 KiB; ``Parser.budget``) and keeps the rest of
  the input buffered, so one ``receive_data`` never creates more than about one limit of
  events, however well the input compresses. The iterator resumes parsing as its events
  are taken. A ``receive_eof()`` that arrives while input is held waits for it: its
  ``TransportClosed`` is the last event of the iteration.

Zero-copy receiving
-------------------
Instead of ``sock.recv()`` + ``receive_data(data)``, an adapter may let the engine choose
where the bytes land, like ``asyncio.BufferedProtocol``::

    buf = conn.get_buffer(65536)                   # a writable memoryview, len(buf) >= 1
    n = sock.recv_into(buf)                        # (or any write of n bytes at buf[0:n])
    conn.buffer_updated(n)                         # parse them; n == 0 parses nothing
    if n == 0:
        conn.receive_eof()                         # recv_into returned 0: the peer closed TCP

Inside the payload of a large uncompressed frame the buffer *is* the rest of the frame's
place in the message object under construction, so the socket writes the payload where
the application will read it and the engine only unmasks it in place (server side; a
client's frames are not masked and are not touched again). Elsewhere (headers, small
frames, compressed messages, the handshake, after close) it is a read buffer of at least
``sizehint`` bytes (64 KiB when ``sizehint <= 0``), handed to the parser as its input.
The contract:

* write only into ``buf[0:n]`` and report exactly that ``n`` (``0 <= n <= len(buf)``,
  else ``ValueError``); the buffer may be shorter than ``sizehint`` (the rest of a frame),
  so read at most ``len(buf)``;
* call ``buffer_updated`` once per ``get_buffer``, before any other receiving call
  (``receive_data``, ``receive_eof``); calling ``get_buffer`` again before it returns the
  same buffer (a read that would block may simply retry); ``buffer_updated`` without a
  ``get_buffer`` is ``InvalidState``;
* never keep the buffer (or a slice of it) after ``buffer_updated``: it is released there
  and its memory becomes part of a message handed to the application;
* ``buffer_updated(0)`` only gives the buffer back; end of file is ``receive_eof()``;
* valid in every state: during the handshake the bytes go to the handshake parser, after
  a close or failure they are discarded, exactly as ``receive_data`` would treat them.
  Peer faults are reported as events, never raised, as with ``receive_data``.

``receive_data(bytes)`` stays the simple way; both produce exactly the same events.

``close_tcp`` becomes True when this side must close TCP (the server after the closing
handshake or after failing, anyone after a handshake failure); ``close_expected()`` is True
when the peer should close TCP soon (a client after the closing handshake, or anyone after
sending a close): arm a timer and close TCP yourself when it expires.

Errors
------
A peer fault never raises out of ``receive_data``: the engine sends a close frame with the
right code (1002 protocol, 1007 invalid UTF-8, 1009 too big), reports ``ConnectionFailed``
and discards further input. Local misuse (sending before the handshake or after close)
raises ``InvalidState``.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union, cast

from . import handshake as hs
from ._speedups import FrameEncoder, Parser
from ._state import CLOSED, CLOSING, CONNECTING, OPEN, Role, State, transition
from .events import (
    Accepted,
    CloseReceived,
    ConnectionFailed,
    Event,
    HandshakeFailed,
    Rejected,
    Request,
    TransportClosed,
)
from .exceptions import (
    InvalidHandshake,
    InvalidState,
    NegotiationError,
    ProtocolError,
)
from .extensions import ClientExtensionFactory, Extension, ServerExtensionFactory
from .frames import PreparedFrame, is_valid_close_code, parse_close, serialize_close

__all__ = ["Connection", "ClientConnection", "ServerConnection", "State", "Role"]

#: Default limit on a reassembled message (after decompression). 1 MiB bounds the memory
#: one peer can make us hold, like websockets' default ``max_size``; raise it for bulk
#: transfer (the Autobahn 9.x cases need 16 MiB).
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
#: Default limit on the opening handshake head (request or response). Browsers send
#: 0.5–2 KiB; 64 KiB leaves room for large cookies and stays bounded.
DEFAULT_MAX_HANDSHAKE_SIZE = hs.MAX_HANDSHAKE
#: Unmasked payloads at least this big are sent without copying them into the frame.
_COPY_LIMIT = 4096
#: get_buffer()'s read buffer when the sizehint is not positive (as _parser.READ_SIZE).
_READ_SIZE = 1 << 16
#: Frame lengths are below 2**63 (RFC 6455 §5.2); "no limit" is this.
_MAX_LENGTH = (1 << 63) - 1
#: Bytes a client may send after its request, before the server answers it (frames it
#: pipelines optimistically); beyond this the handshake fails rather than buffer forever.
_MAX_EARLY_DATA = 1 << 20

_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10

BytesLike = Union[bytes, bytearray, memoryview]

#: A Content-Length we accept: ASCII digits, short enough to be any realistic length.
_DIGITS = re.compile(r"[0-9]{1,18}")


def _content_length(value: str) -> int:
    """A rejection's Content-Length (RFC 9110 §8.6: ``1*DIGIT``, ASCII digits only; str.isdigit
    also takes '²' or '١'), at most 18 digits so int() never meets its 4300-digit limit; a
    larger body is cut at the handshake limit anyway. Anything else is ``InvalidHandshake``."""
    v = value.strip(" \t")
    if not _DIGITS.fullmatch(v):
        raise InvalidHandshake(f"invalid Content-Length {value[:40]!r} in the response")
    return int(v)


def _truncate_reason(reason: str) -> str:
    """At most 123 bytes of UTF-8, cut on a character boundary (RFC 6455 §5.5: 125 - 2)."""
    raw = reason.encode("utf-8")
    if len(raw) <= 123:
        return reason
    return raw[:123].decode("utf-8", "ignore")


class _Pending:
    """A state transition waiting for its event to be handed to the application."""

    __slots__ = ("event", "kind", "code", "reason", "handed_out")

    def __init__(self, event: Event, kind: str, code: int, reason: str) -> None:
        self.event = event
        self.handed_out = False  # its event is in an iterator returned by events()
        self.kind = kind  # "close" (close frame received) or "fail" (we fail the connection)
        self.code = code
        self.reason = reason


class Connection:
    """Common machinery of ``ClientConnection`` and ``ServerConnection``.

    Args:
        max_message_size: largest message accepted, after reassembly and decompression
            (``None``: no limit). Larger ones fail the connection with 1009.
        max_frame_size: largest single frame accepted (default: ``max_message_size``).
            Checked on the header, before any payload is buffered.
        max_handshake_size: largest opening handshake head accepted.
        auto_pong: answer pings automatically (RFC 6455 §5.5.2 says "MUST"); turn off only
            to answer them yourself with ``send_pong``.
        stream_fragments: deliver each frame of a fragmented message as its own
            ``TextMessage``/``BinaryMessage`` with ``final`` set on the last one, instead
            of reassembling the message. The message size limit still applies.
    """

    role = cast(Role, None)  # each subclass sets its own (no class-body annotation: see connection.pxd)

    def __init__(
        self,
        *,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        max_frame_size: Optional[int] = None,
        max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE,
        auto_pong: bool = True,
        stream_fragments: bool = False,
    ) -> None:
        if max_message_size is None:
            max_message_size = _MAX_LENGTH
        if max_frame_size is None:
            max_frame_size = max_message_size
        if max_message_size < 0 or max_frame_size < 0:
            raise ValueError("size limits must be non-negative")
        self.max_message_size = max_message_size
        self.max_frame_size = max_frame_size
        self.max_handshake_size = max_handshake_size
        self.auto_pong = auto_pong
        self.stream_fragments = stream_fragments

        self.state: State = CONNECTING
        #: The close frame received: code (1005 = none, 1006 = no close frame) and reason.
        self.close_code_received: Optional[int] = None
        self.close_reason_received = ""
        #: The close code we sent (None until we send one).
        self.close_code_sent: Optional[int] = None
        #: Set when this connection failed: the ``ConnectionFailed`` event.
        self.failure: Optional[ConnectionFailed] = None
        #: True once the engine wants the adapter to close TCP (after writing data_to_send()).
        self.close_tcp = False
        #: Negotiated in the opening handshake.
        self.subprotocol: Optional[str] = None
        self.extensions: List[Extension] = []

        self._events: List[Event] = []
        self._out: List[bytes] = []
        self._pending: Optional[_Pending] = None
        self._ext: Optional[Extension] = None  # the negotiated extension, for sending
        self._scan = 0  # handshake bytes already searched for the end of the head
        self._eof = False
        self._eof_deferred = False  # receive_eof() came while the parser held input
        self._draining = False  # an events() generator is running
        # Receiving: the handshake buffer, then the frame parser.
        self._handshaking = True
        self._buf = bytearray()
        # get_buffer() outside the parser (handshake, end of file): a reused read buffer.
        self._rbuf: Optional[bytearray] = None
        self._rview: Optional[memoryview] = None
        self._parser = Parser(
            self._events,
            0x80 if self.role is Role.SERVER else 0,
            min(max_message_size, _MAX_LENGTH),
            min(max_frame_size, _MAX_LENGTH),
            stream_fragments,
            self._on_ping,
            self._on_close,
        )
        # Sending.
        self._send_opcode = 0  # opcode of a fragmented message being sent (0 = none)
        self._masked = self.role is Role.CLIENT  # RFC 6455 §5.3: clients mask every frame
        self._encoder = FrameEncoder(self._masked)

    # ------------------------------------------------------------------ output side

    def data_to_send(self) -> List[bytes]:
        """Bytes to write to the transport, in order, and forget them.

        Applies a pending close or failure first (see the module docstring).
        """
        pending = self._pending
        if pending is not None and not pending.handed_out:
            # The application is not taking events: act on the close/failure now.
            self._apply_pending()
        if self._eof_deferred and not self._draining:
            # The peer closed TCP and the application is not taking events: what the
            # parser still holds will never be read.
            self._parser.discard()
            self._finish_eof()
        out = self._out
        if out:
            self._out = []
        return out

    def events(self) -> Iterator[Event]:
        """The events received so far, as an iterator (take them in order, one at a time).

        Iterating also delivers what becomes parseable meanwhile: the frames behind a
        handshake request once it is accepted, and input held back by the event budget.
        """
        evs = self._events
        parser = self._parser
        if self._pending is None and parser.held is None and self.state is not CONNECTING:
            # The per-batch fast path: nothing can follow these events in this iteration.
            if not evs:
                return iter(())
            self._events = parser.events = []
            parser.pending = 0
            return iter(evs)
        if not evs and parser.held is None:
            return iter(())
        return self._drain()

    def _drain(self) -> Iterator[Event]:
        # Lazy on purpose: nothing is taken before the first next(), so an iterator dropped
        # unstarted loses no event. The pending close/failure takes effect when its event is
        # taken, so replies to the events before it go out first; or when the iterator is
        # closed half-way.
        parser = self._parser
        self._draining = True
        try:
            while True:
                evs = self._events
                if not evs:
                    if parser.held is not None:
                        parser.pending = 0
                        self._resume()
                        continue
                    if self._eof_deferred:
                        self._finish_eof()
                        continue
                    return
                self._events = parser.events = []
                parser.pending = 0
                if self._pending is not None:
                    self._pending.handed_out = True
                for ev in evs:
                    pending = self._pending
                    if pending is not None and ev is pending.event:
                        self._apply_pending()
                    yield ev
        finally:
            self._draining = False
            if self._pending is not None:
                self._apply_pending()

    def _resume(self) -> None:
        try:
            self._parser.resume()
        except ProtocolError as exc:
            self._fail_peer(exc)

    def close_expected(self) -> bool:
        """True when the peer should close TCP soon: arm a timeout, then close it yourself."""
        if self._eof or self.close_tcp:
            return False
        return self.state is CLOSED or (self.state is CLOSING and self.close_code_sent is not None)

    # ------------------------------------------------------------------ sending

    def _check_open(self) -> None:
        if self.state is not OPEN:
            raise InvalidState(f"cannot send in state {self.state.name}")

    def send_text(self, text: str, fin: bool = True, *, compress: Optional[bool] = None) -> None:
        """Send a text message (or one fragment of it, with ``fin=False`` on all but the last)."""
        if self.state is not OPEN:
            raise InvalidState(f"cannot send in state {self.state.name}")
        if fin and self._send_opcode == 0 and self._ext is None:
            # The common case in one step: a whole message, no extension.
            self._write_frame(0x81, text.encode("utf-8"))
            return
        self._send_data(_OP_TEXT, text.encode("utf-8"), fin, compress)

    def send_binary(self, data: BytesLike, fin: bool = True, *, compress: Optional[bool] = None) -> None:
        """Send a binary message (or one fragment of it, with ``fin=False`` on all but the last)."""
        if self.state is not OPEN:
            raise InvalidState(f"cannot send in state {self.state.name}")
        if type(data) is not bytes:
            data = bytes(data)  # own the bytes: the caller may mutate its buffer later
        if fin and self._send_opcode == 0 and self._ext is None:
            self._write_frame(0x82, data)  # the common case, as in send_text
            return
        self._send_data(_OP_BINARY, data, fin, compress)

    def send_prepared(self, frame: PreparedFrame, *, compress: Optional[bool] = None) -> bool:
        """Send the message of ``frame`` (``wsfast.frames.prepare``), encoded once for many
        connections; ``InvalidState`` unless OPEN, as ``send_text``/``send_binary``.

        Queues ``frame.data`` itself (the same bytes object) when this connection's frame
        would be exactly those bytes: server side (unmasked), not inside a fragmented send,
        and no extension transform for this message (no extension, or one that leaves it
        as it is, e.g. permessage-deflate below its threshold or with ``compress=False``).
        Otherwise the payload is sent as ``send_text``/``send_binary`` would send it.
        Returns True when the shared bytes were queued.
        """
        self._check_open()
        if self._send_opcode == 0 and not self._masked:
            ext = self._ext
            if ext is None:
                self._out.append(frame.data)
                return True
            payload = frame.payload
            rsv, encoded = ext.encode(payload, True, True, compress)
            if rsv == 0 and encoded is payload:
                self._out.append(frame.data)
                return True
            self._write_frame(0x80 | rsv | frame.opcode, encoded)
            return False
        self._send_data(frame.opcode, frame.payload, True, compress)
        return False

    def _send_data(self, opcode: int, payload: bytes, fin: bool, compress: Optional[bool]) -> None:
        first = self._send_opcode == 0
        if first:
            if not fin:
                self._send_opcode = opcode
        else:
            if opcode != self._send_opcode:
                raise InvalidState("a fragmented message of the other type is being sent")
            opcode = _OP_CONT
            if fin:
                self._send_opcode = 0
        rsv = 0
        if self._ext is not None:
            rsv, payload = self._ext.encode(payload, first, fin, compress)
        self._write_frame((0x80 if fin else 0) | rsv | opcode, payload)

    def send_ping(self, data: BytesLike = b"") -> None:
        """Send a ping (at most 125 bytes of application data)."""
        self._check_open()
        self._send_control(_OP_PING, bytes(data))

    def send_pong(self, data: BytesLike = b"") -> None:
        """Send a pong (unsolicited pongs serve as heartbeats, RFC 6455 §5.5.3)."""
        self._check_open()
        self._send_control(_OP_PONG, bytes(data))

    def _send_control(self, opcode: int, payload: bytes) -> None:
        if len(payload) > 125:
            raise ValueError("control frame payloads are limited to 125 bytes")
        self._write_frame(0x80 | opcode, payload)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start (or answer) the closing handshake (RFC 6455 §5.5.1, §7.1.2).

        ``code`` 1005 sends a close frame without a status code. Does nothing if a close
        frame was already sent; raises ``InvalidState`` before the handshake completes.
        """
        if self._pending is not None:
            self._apply_pending()
        if self.state is CONNECTING:
            raise InvalidState("cannot close before the opening handshake completes")
        if self.close_code_sent is not None or self.state is CLOSED:
            return
        if code != 1005 and not is_valid_close_code(code):
            raise ValueError(f"close code {code} may not be sent")
        body = serialize_close(code, reason)
        self._send_close_frame(code, body)

    def _send_close_frame(self, code: int, body: bytes) -> None:
        self._write_frame(0x88, body)
        self.close_code_sent = code
        self.state = transition(self.state, "close_sent")
        if self.state is CLOSED:
            self._closing_done()

    def fail(self, code: int = 1002, reason: str = "") -> None:
        """Fail the connection (RFC 6455 §7.1.7): send a close frame with ``code`` if none
        was sent, discard all further input, and close."""
        if self.state is CONNECTING or self.state is CLOSED:
            self.state = CLOSED if self.state is CLOSED else transition(self.state, "handshake_failed")
            self._handshaking = False
            self._parser.discard()
            self.close_tcp = True
            return
        # A peer close or fault still waiting behind undelivered events is superseded: this
        # failure's close frame is the one sent, and nothing is applied when they are taken.
        self._pending = None
        if self.close_code_sent is None:
            body = serialize_close(code, _truncate_reason(reason))
            self._write_frame(0x88, body)
            self.close_code_sent = code
        self.state = transition(self.state, "fail")
        self._parser.discard()
        self._closing_done()

    def _closing_done(self) -> None:
        # RFC 6455 §7.1.1: the server closes TCP first; the client waits for it.
        if self.role is Role.SERVER:
            self.close_tcp = True

    def _write_frame(self, b0: int, payload: bytes) -> None:
        if len(payload) < _COPY_LIMIT or self._masked:
            self._out.append(self._encoder.encode(b0, payload))
        else:
            # Large unmasked payloads go out as they are: no copy (RFC 6455 §5.1 lets the
            # server send them unmasked).
            self._out.append(self._encoder.header(b0, len(payload)))
            self._out.append(payload)

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: BytesLike) -> None:
        """Feed bytes received from the transport. Never raises on peer faults."""
        if self._handshaking:
            if data and not self._eof:
                self._buf += data
                self._receive_handshake()
            return
        if self._eof_deferred:
            return  # nothing can follow the end of file
        if type(data) is not bytes:
            data = bytes(data)
        try:
            self._parser.feed(data)
        except ProtocolError as exc:
            self._fail_peer(exc)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable buffer for the next bytes from the transport (the zero-copy receive
        path; see "Zero-copy receiving" in the module docstring). Write ``n`` bytes at its
        start, then call ``buffer_updated(n)``; do not keep it afterwards."""
        view = self._rview
        if view is not None:
            return view
        if self._handshaking or self._eof or self._eof_deferred:
            size = sizehint if sizehint > 0 else _READ_SIZE
            rbuf = self._rbuf
            if rbuf is None or len(rbuf) < size:
                rbuf = self._rbuf = bytearray(size)
            view = self._rview = memoryview(rbuf)
            return view
        return self._parser.get_buffer(sizehint)

    def get_payload_buffer(self) -> Optional[memoryview]:
        """``get_buffer()``'s zero-copy case only: the rest of the current frame's place in
        the message object when the next bytes are the payload of a large uncompressed
        frame, else None. For an adapter that reads into a buffer of its own (shared by its
        connections, so an idle one holds none) and ``receive_data``s it, except where this
        returns a buffer: then it reads into that and calls ``buffer_updated``."""
        if self._rview is not None or self._handshaking or self._eof or self._eof_deferred:
            return None
        view: Optional[memoryview] = self._parser.get_region()
        return view

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` bytes were written at the start of the buffer from ``get_buffer()``
        (or ``get_payload_buffer()``):
        take them as ``receive_data`` would. Never raises on peer faults.

        Raises:
            InvalidState: no buffer was handed out.
            ValueError: ``nbytes`` is negative or larger than the buffer.
        """
        view = self._rview
        if view is not None:
            if not 0 <= nbytes <= len(view):
                raise ValueError(f"nbytes must be between 0 and {len(view)}, not {nbytes}")
            self._rview = None
            data = bytes(view[:nbytes])
            view.release()
            if data:
                self.receive_data(data)
            return
        parser = self._parser
        if parser.rview is None:
            raise InvalidState("buffer_updated() without get_buffer()")
        if self._eof_deferred:
            if not 0 <= nbytes <= len(parser.rview):
                raise ValueError(f"nbytes must be between 0 and {len(parser.rview)}, not {nbytes}")
            parser.buffer_updated(0)
            return  # nothing can follow the end of file
        try:
            parser.buffer_updated(nbytes)
        except ProtocolError as exc:
            self._fail_peer(exc)

    def receive_eof(self) -> None:
        """The transport reached end of file (the peer closed TCP). Idempotent.

        If the parser holds input back (the event budget), the end of file takes effect
        once that input has been delivered by ``events()``.
        """
        if self._eof or self._eof_deferred:
            return
        if self._parser.held is not None:
            self._eof_deferred = True
            return
        self._finish_eof()

    def _finish_eof(self) -> None:
        self._eof_deferred = False
        if self._pending is not None:
            self._apply_pending()
        self._eof = True
        self._parser.discard()
        clean = self.close_code_sent is not None and self.close_code_received is not None
        if self.state is CONNECTING:
            self._handshake_eof()
        self._handshaking = False
        if self.close_code_received is None:
            self.close_code_received = 1006
        self.state = transition(self.state, "eof")
        self.close_tcp = True
        self._events.append(
            TransportClosed(self.close_code_received, self.close_reason_received, clean and self.failure is None)
        )

    def _handshake_eof(self) -> None:
        pass

    def _fail_peer(self, exc: ProtocolError) -> None:
        """The single funnel for peer faults: report them now, act when they are taken."""
        ev = ConnectionFailed(exc.code, exc.reason)
        self.failure = ev
        self._parser.discard()
        self._events.append(ev)
        self._pending = _Pending(ev, "fail", exc.code, exc.reason)

    def _apply_pending(self) -> None:
        p = self._pending
        self._pending = None
        assert p is not None  # every caller checks
        if p.kind == "fail":
            self.fail(p.code, p.reason)
            return
        # A close frame was received (RFC 6455 §5.5.1): echo it if we have not sent one.
        self.state = transition(self.state, "close_received")
        if self.close_code_sent is None:
            code = p.code
            self._send_close_frame(code, serialize_close(code) if code != 1005 else b"")
        else:  # we had sent ours: the closing handshake is over (CLOSING -> CLOSED)
            self._closing_done()

    def _on_ping(self, payload: bytes) -> None:
        # RFC 6455 §5.5.2: answer with a pong carrying the same data, unless we already
        # sent a close frame (then nothing more may be sent).
        if self.auto_pong and self.close_code_sent is None:
            self._write_frame(0x80 | _OP_PONG, payload)

    def _on_close(self, payload: bytes) -> None:
        code, reason = parse_close(payload)  # ProtocolError/InvalidUTF8 fail the connection
        self.close_code_received = code
        self.close_reason_received = reason
        ev = CloseReceived(code, reason)
        self._events.append(ev)
        self._pending = _Pending(ev, "close", code, reason)

    # ------------------------------------------------------------------ handshake

    def _receive_handshake(self) -> None:
        raise NotImplementedError

    def _open(self, rest: bytes) -> None:
        """The opening handshake succeeded; parse any frames that followed it."""
        self.state = transition(self.state, "open")
        self._handshaking = False
        self._buf = bytearray()
        if self.extensions:
            self._ext = self.extensions[0]
            self._parser.set_extension(self._ext)
        if rest:
            self.receive_data(rest)


class ClientConnection(Connection):
    """The client side. The opening handshake request is queued at construction.

    Args:
        host: the ``Host`` header, e.g. ``"example.com"`` or ``"example.com:8080"``.
        target: the request target: path and query, e.g. ``"/chat?room=1"``.
        subprotocols: subprotocols to offer, in order of preference.
        extensions: extension factories to offer, e.g. ``[ClientPerMessageDeflate()]``.
        origin: an ``Origin`` header, as browsers send.
        extra_headers: more request headers, e.g. ``[("Authorization", "Bearer …")]``.
        key: the Sec-WebSocket-Key (tests only; fresh random by default).
        See ``Connection`` for the limits.
    """

    role = Role.CLIENT

    def __init__(
        self,
        host: str,
        target: str = "/",
        *,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[ClientExtensionFactory] = (),
        origin: Optional[str] = None,
        extra_headers: Sequence[Tuple[str, str]] = (),
        key: Optional[str] = None,
        **limits: Any,
    ) -> None:
        super().__init__(**limits)
        self.key = key if key is not None else hs.generate_key()
        self.offered_subprotocols = tuple(subprotocols)
        self.extension_factories = list(extensions)
        offer = None
        if self.extension_factories:
            offer = hs.serialize_extensions([(f.name, f.offer()) for f in self.extension_factories])
        self._out.append(
            hs.build_request(
                host,
                target,
                self.key,
                origin=origin,
                subprotocols=self.offered_subprotocols,
                extensions=offer,
                extra_headers=extra_headers,
            )
        )
        self._reject_head: Optional[Tuple[int, str, Tuple[Tuple[str, str], ...], int]] = None

    def _receive_handshake(self) -> None:
        buf = self._buf
        try:
            if self._reject_head is not None:
                self._receive_reject_body()
                return
            end = hs.find_head_end(buf, self.max_handshake_size, request=False, start=self._scan)
            if end < 0:
                self._scan = len(buf)
                return
            status, reason, headers = hs.parse_response(bytes(buf[:end]))
            rest = bytes(buf[end:])
            if status != 101:
                length = -1
                for k, v in headers:
                    if k.lower() == "content-length":
                        n = _content_length(v)
                        if length >= 0 and n != length:
                            raise InvalidHandshake(
                                f"conflicting Content-Length headers: {length} and {n}"
                            )
                        length = n
                self._reject_head = (status, reason, headers, length)
                self._buf = bytearray(rest)
                self._receive_reject_body()
                return
            subprotocol, ext_items = hs.validate_response(headers, self.key, self.offered_subprotocols)
            self.extensions = self._accept_extensions(ext_items)
        except (InvalidHandshake, NegotiationError) as exc:
            self._handshake_failed(exc)
            return
        self.subprotocol = subprotocol
        self._events.append(
            Accepted(101, headers, subprotocol, tuple(e.name for e in self.extensions))
        )
        self._open(rest)

    def _accept_extensions(self, items: List[Tuple[str, List[Tuple[str, Optional[str]]]]]) -> List[Extension]:
        factories = {f.name: f for f in self.extension_factories}
        accepted: List[Extension] = []
        seen = set()
        rsv = 0
        for name, params in items:
            factory = factories.get(name)
            if factory is None:
                raise NegotiationError(f"server accepted extension {name!r} that was not offered")
            if name in seen:
                raise NegotiationError(f"server accepted extension {name!r} twice")
            seen.add(name)
            ext = factory.accept(list(params))
            if ext.rsv & rsv:
                raise NegotiationError(f"extension {name!r} claims RSV bits already in use")
            rsv |= ext.rsv
            accepted.append(ext)
        if len(accepted) > 1:
            raise NegotiationError("wsfast runs at most one extension per connection")
        return accepted

    def _receive_reject_body(self) -> None:
        assert self._reject_head is not None
        status, reason, headers, length = self._reject_head
        if len(self._buf) > self.max_handshake_size:
            del self._buf[self.max_handshake_size :]
            length = len(self._buf)
        if length >= 0 and len(self._buf) >= length:
            self._rejected(bytes(self._buf[:length]))

    def _rejected(self, body: bytes) -> None:
        assert self._reject_head is not None
        status, reason, headers, _ = self._reject_head
        self._reject_head = None
        self._events.append(Rejected(status, reason, headers, body))
        self.state = transition(self.state, "reject")
        self._handshaking = False
        self._parser.discard()
        self.close_tcp = True

    def _handshake_eof(self) -> None:
        if self._reject_head is not None:
            self._rejected(bytes(self._buf))
            return
        self._events.append(HandshakeFailed("connection closed during the opening handshake", 0))

    def _handshake_failed(self, exc: Exception) -> None:
        self._events.append(HandshakeFailed(str(exc), 0))
        self.state = transition(self.state, "handshake_failed")
        self._handshaking = False
        self._parser.discard()
        self.close_tcp = True


class ServerConnection(Connection):
    """The server side. A valid request surfaces as a ``Request`` event; answer it with
    ``accept()`` or ``reject()``. Frames the client sends before the answer are kept.

    Args:
        subprotocols: subprotocols this server speaks, in order of preference; ``accept()``
            picks the first of the client's offers that is in this list, unless told.
        extensions: extension factories, e.g. ``[ServerPerMessageDeflate()]``.
        See ``Connection`` for the limits.
    """

    role = Role.SERVER

    def __init__(
        self,
        *,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[ServerExtensionFactory] = (),
        **limits: Any,
    ) -> None:
        super().__init__(**limits)
        self.subprotocols = tuple(subprotocols)
        self.extension_factories = list(extensions)
        self.request: Optional[Request] = None
        self._key = ""

    def _receive_handshake(self) -> None:
        if self.request is not None:
            if len(self._buf) > _MAX_EARLY_DATA:
                # Frames are piling up before accept(): bounded like any input.
                self._buf.clear()
                self._handshake_error(InvalidHandshake("too much data before the handshake completed", 400))
            return  # waiting for accept()/reject(); keep the bytes that follow
        buf = self._buf
        try:
            end = hs.find_head_end(buf, self.max_handshake_size, request=True, start=self._scan)
            if end < 0:
                self._scan = len(buf)
                return
            method, target, headers = hs.parse_request(bytes(buf[:end]))
            key, subprotocols, ext_offers = hs.validate_request(method, headers)
        except InvalidHandshake as exc:
            self._handshake_error(exc)
            return
        del buf[:end]
        self._key = key
        self.request = Request(
            method,
            target,
            headers,
            tuple(subprotocols),
            tuple((name, tuple(params)) for name, params in ext_offers),
        )
        self._events.append(self.request)

    def _handshake_error(self, exc: InvalidHandshake) -> None:
        status = exc.status or 400
        headers = []
        if status == 426:
            # RFC 6455 §4.2.2 step 4 / §4.4: the versions we speak; build_response adds the
            # Upgrade header every 426 needs (RFC 9110 §15.5.22).
            headers.append(("Sec-WebSocket-Version", "13"))
        self._out.append(
            hs.build_response(status, headers=headers, body=(exc.reason + "\n").encode("utf-8", "replace"))
        )
        self._events.append(HandshakeFailed(exc.reason, status))
        self.state = transition(self.state, "handshake_failed")
        self._handshaking = False
        self._parser.discard()
        self.close_tcp = True

    def accept(
        self,
        subprotocol: Optional[str] = None,
        *,
        extra_headers: Sequence[Tuple[str, str]] = (),
    ) -> None:
        """Accept the request: queue the 101 response and open the connection.

        ``subprotocol`` must be one the client offered; by default the first of the
        client's offers that this server lists in ``subprotocols`` is chosen (or none).
        Extensions are negotiated with the configured factories.
        """
        request = self._answerable()
        offered = request.subprotocols
        if subprotocol is None:
            for p in offered:
                if p in self.subprotocols:
                    subprotocol = p
                    break
        elif subprotocol not in offered:
            raise ValueError(f"the client did not offer subprotocol {subprotocol!r}")
        ext_header = None
        response_items = []
        extensions: List[Extension] = []
        for factory in self.extension_factories:
            offers = [list(params) for name, params in request.extensions if name == factory.name]
            if not offers:
                continue
            result = factory.negotiate(offers)
            if result is None:
                continue
            params, ext = result
            response_items.append((factory.name, params))
            extensions.append(ext)
            break  # one extension per connection (all RSV-using extensions compete for RSV1)
        if response_items:
            ext_header = hs.serialize_extensions(response_items)
        self._out.append(
            hs.build_accept_response(
                self._key, subprotocol=subprotocol, extensions=ext_header, extra_headers=extra_headers
            )
        )
        self.subprotocol = subprotocol
        self.extensions = extensions
        self._open(bytes(self._buf))

    def reject(
        self,
        status: int = 403,
        *,
        headers: Sequence[Tuple[str, str]] = (),
        body: bytes = b"",
        reason: Optional[str] = None,
    ) -> None:
        """Refuse the request with an HTTP response; the engine then wants TCP closed."""
        self._answerable()
        if status == 101:
            raise ValueError("reject() cannot answer 101; use accept()")
        self._out.append(hs.build_response(status, reason=reason, headers=headers, body=body))
        self.state = transition(self.state, "reject")
        self._handshaking = False
        self._parser.discard()
        self._buf.clear()
        self.close_tcp = True

    def _answerable(self) -> Request:
        if self.state is not CONNECTING or self.request is None:
            raise InvalidState("there is no handshake request to answer")
        return self.request
