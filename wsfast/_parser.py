"""Frame parser and message assembler (RFC 6455 §5, §6.2, §8.1).

Theory of operation
-------------------
One source, two builds: this module is the pure-Python parser, and ``setup.py`` compiles
the same text with Cython as ``wsfast._parser_c`` (``_parser_c.pxd`` adds C types to the
class attributes and hot locals). ``connection.py`` uses the compiled build when the kernels
are compiled, this one otherwise; tests run the whole suite on both.

``Parser.feed(data)`` parses every complete frame in ``data`` in one flat loop over integer
states (no generators: they cannot be compiled to C locals):

* ``FRAME``: read a header (2–14 bytes). Every check that needs only the header happens
  here, before any payload is buffered: opcodes, RSV bits, masking, minimal lengths, the
  63-bit rule, control-frame rules, fragmentation order, and the size limits (1009).
* A whole, unfragmented data frame in the buffer takes the fast path: one slice, one
  unmask, one pass through the extension if it transforms the message (its output bounded
  by the size limit), one ``decode`` (which validates UTF-8), one event.
* Otherwise the payload streams (``PAYLOAD``): each piece is unmasked at the right key
  phase, inflated if an extension transforms the message, UTF-8 validated incrementally
  (so invalid text fails at the first impossible byte, even inside a frame that arrives in
  pieces) and appended to the message buffer. Only headers and control frames (≤ 139
  bytes) are ever kept in ``buf`` between calls, so a large frame is never re-copied.
* ``DISCARD``: after a close frame or a failure, input is ignored: the structural way to
  make "nothing after close" impossible to forget.

Backpressure: every event appended adds its payload size plus ``EVENT_OVERHEAD`` to
``pending``. Once ``pending`` reaches ``budget`` (about one message limit) the parser stops
at the next frame boundary and *holds* the rest of the input (``held``/``held_pos``, no
copy); ``feed`` then only buffers. The connection resets ``pending`` when the application
takes the events and calls ``resume()``. So what one ``feed`` creates is bounded by the
budget plus one message, whatever the read size and however well the input compresses.

Peer faults raise ``ProtocolError`` (or a subclass carrying its close code) out of
``feed``; the connection catches them in one place. Control frames are reported through
two callbacks so the connection decides policy (auto-pong, close handling).
"""

from __future__ import annotations

import codecs

from ._speedups import Utf8Validator, apply_mask
from .events import BinaryMessage, Ping, Pong, TextMessage
from .exceptions import InvalidUTF8, PayloadTooBig, ProtocolError

__all__ = ["Parser", "FRAME", "PAYLOAD", "DISCARD", "EVENT_OVERHEAD", "MIN_BUDGET"]

# Parser states. Module-level ints so that the compiled build can type them.
FRAME = 0
PAYLOAD = 1
DISCARD = 2

OP_CONT = 0
OP_TEXT = 1
OP_BINARY = 2
OP_CLOSE = 8
OP_PING = 9
OP_PONG = 10

#: Bytes counted per event on top of its payload (the event object and its bytes/str
#: header, roughly), so that a flood of empty frames is bounded too.
EVENT_OVERHEAD = 64
#: The smallest event budget, so that a tiny message limit does not make the parser stop
#: and resume every few frames.
MIN_BUDGET = 1 << 16


class Parser:
    """Parses frames and reassembles messages into ``events``.

    Args:
        events: the list events are appended to (owned by the connection).
        mask_expected: 0x80 on a server (client frames must be masked), 0 on a client.
        max_message_size / max_frame_size: limits (1009 above them).
        stream_fragments: deliver every data frame as an event with ``final``.
        on_ping(payload): called after a ``Ping`` event is appended.
        on_close(payload): called with a close frame's payload; parsing stops there.
    """

    def __init__(
        self,
        events,
        mask_expected,
        max_message_size,
        max_frame_size,
        stream_fragments,
        on_ping,
        on_close,
    ):
        self.events = events
        self.mask_expected = mask_expected
        self.max_message_size = max_message_size
        self.max_frame_size = max_frame_size
        # A compressed frame may be bigger than what it inflates to: incompressible data
        # grows by ~0.25 % in zlib's Huffman blocks (measured: 1 MiB of random bytes at level
        # 6 -> +2561 bytes), and deflateBound allows up to n/8 + n/64 for other settings. So
        # that a message at the limit is not refused for its compression overhead, frames of
        # a compressed message get n/8 + 1 KiB more; their inflated size is still held to
        # the limits, and their payload streams (it is never buffered whole).
        self.max_transformed_frame_size = min(
            max_frame_size + (max_frame_size >> 3) + 1024, (1 << 63) - 1
        )
        self.stream_fragments = stream_fragments
        self.on_ping = on_ping
        self.on_close = on_close
        #: Bytes of events appended and not yet taken; parsing holds at ``budget``.
        self.pending = 0
        self.budget = min(max(max_message_size, MIN_BUDGET), (1 << 63) - 1)
        #: Input not parsed yet because of the budget (``held[held_pos:]``), or None.
        self.held = None
        self.held_pos = 0
        self.state = FRAME
        self.rsv_allowed = 0
        self.ext = None
        self.buf = bytearray()
        # The frame whose payload is streaming (PAYLOAD).
        self.remaining = 0
        self.fmask = b""
        self.fphase = 0
        self.ffin = True
        # The message being assembled: opcode (0 = none), bytes so far, transformation.
        self.mopcode = 0
        self.mbuf = bytearray()
        self.msize = 0
        self.mcompressed = False
        self.validator = None
        self.decoder = None

    def set_extension(self, ext):
        """Install the negotiated extension (or None)."""
        self.ext = ext
        self.rsv_allowed = ext.rsv if ext is not None else 0

    def discard(self):
        """Ignore all further input."""
        self.state = DISCARD
        self.buf = bytearray()
        self.held = None

    def feed(self, data):
        """Parse ``data`` (bytes). Raises ProtocolError on a peer fault."""
        if self.state == DISCARD:
            return
        buf = self.buf
        if self.held is not None:
            if self.events:
                # Holding for the budget: keep the bytes (``buf`` is free: a hold happens
                # at a frame boundary) until resume().
                buf += data
                return
            # Everything appended was taken (an iterator dropped half-way): go on.
            self.pending = 0
            self.resume()
            if self.held is not None:
                self.buf += data
                return
            buf = self.buf
        if buf:
            buf += data
            data = bytes(buf)
            self.buf = bytearray()
        self._feed(data, 0)

    def resume(self):
        """Parse held input, up to the budget (the connection has reset ``pending``)."""
        held = self.held
        if held is None:
            return
        pos = self.held_pos
        self.held = None  # (discard() clears it: held input is never in state DISCARD)
        if self.buf:
            data = held[pos:] + bytes(self.buf)
            self.buf = bytearray()
            pos = 0
        else:
            data = held
        self._feed(data, pos)

    def _feed(self, data, pos):
        # ``data_cstr`` is ``data`` here; the compiled build types it as a C pointer, so that
        # its slices copy bytes directly instead of going through a generic slice object.
        data_cstr = data
        n = len(data)
        events = self.events
        while True:
            if self.state == PAYLOAD:
                # Inside a data frame whose payload arrives in pieces.
                take = n - pos
                if take == 0:
                    return
                if take > self.remaining:
                    take = self.remaining
                chunk = data_cstr[pos : pos + take]
                pos += take
                if self.fmask:
                    chunk = apply_mask(chunk, self.fmask, self.fphase)
                    self.fphase = (self.fphase + take) & 3
                self.remaining -= take
                self._chunk(chunk)
                if self.remaining:
                    return
                self.state = FRAME
                self._frame_end()
                if self.pending >= self.budget and pos < n:
                    self.held = data
                    self.held_pos = pos
                    return
                continue
            # State FRAME here: _feed is never entered in DISCARD, and a close frame returns.

            avail = n - pos
            if avail < 2:
                if avail:
                    self.buf += data[pos:]
                return
            b0 = data_cstr[pos]
            b1 = data_cstr[pos + 1]
            length = b1 & 0x7F
            hlen = 2
            if length >= 126:
                if length == 126:
                    hlen = 4
                    if avail < 4:
                        self.buf += data[pos:]
                        return
                    length = (data_cstr[pos + 2] << 8) | data_cstr[pos + 3]
                    if length < 126:
                        raise ProtocolError("frame length not minimally encoded")
                else:
                    hlen = 10
                    if avail < 10:
                        self.buf += data[pos:]
                        return
                    if data_cstr[pos + 2] & 0x80:
                        raise ProtocolError("frame length has the most significant bit set")
                    length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                    if length < 65536:
                        raise ProtocolError("frame length not minimally encoded")
            masked = b1 & 0x80
            if masked != self.mask_expected:
                if masked:
                    raise ProtocolError("server frame is masked")
                raise ProtocolError("client frame is not masked")
            if masked:
                if avail < hlen + 4:
                    self.buf += data[pos:]
                    return
                mask = data_cstr[pos + hlen : pos + hlen + 4]
                hlen += 4
            else:
                mask = b""
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            rsv = b0 & 0x70
            if rsv & ~self.rsv_allowed:
                raise ProtocolError("reserved bits set without a negotiated extension")
            start = pos + hlen

            if opcode >= 8:
                # Control frame (RFC 6455 §5.5): at most 125 bytes, never fragmented.
                if opcode > OP_PONG:
                    raise ProtocolError("reserved opcode %#x" % opcode)
                if length > 125:
                    raise ProtocolError("control frame payload longer than 125 bytes")
                if not fin:
                    raise ProtocolError("fragmented control frame")
                if rsv:
                    raise ProtocolError("reserved bits set on a control frame")
                if avail < hlen + length:
                    self.buf += data[pos:]
                    return
                payload = data_cstr[start : start + length]
                if masked:
                    payload = apply_mask(payload, mask)
                pos = start + length
                if opcode == OP_PING:
                    events.append(Ping(payload))
                    self.on_ping(payload)
                elif opcode == OP_PONG:
                    events.append(Pong(payload))
                else:
                    self.discard()
                    self.on_close(payload)
                    return
                self.pending += length + EVENT_OVERHEAD
                if self.pending >= self.budget and pos < n:
                    self.held = data
                    self.held_pos = pos
                    return
                continue

            # Data frame (RFC 6455 §5.4, §5.6).
            if opcode == OP_CONT:
                if self.mopcode == 0:
                    raise ProtocolError("continuation frame without a message to continue")
                if rsv:
                    raise ProtocolError("reserved bits set on a continuation frame")
            elif opcode <= OP_BINARY:
                if self.mopcode != 0:
                    raise ProtocolError("new data frame inside a fragmented message")
            else:
                raise ProtocolError("reserved opcode %#x" % opcode)
            if length > self.max_frame_size and (
                length > self.max_transformed_frame_size
                or not (rsv or (opcode == OP_CONT and self.mcompressed))
            ):
                raise PayloadTooBig(
                    "frame of %d bytes exceeds the limit of %d" % (length, self.max_frame_size)
                )

            if fin and avail - hlen >= length and opcode != OP_CONT:
                # Fast path: a whole, unfragmented message in the buffer. A transformed
                # (compressed) one is decoded in one go, its output bounded by the extension.
                transformed = rsv != 0 and self.ext.decode_start(rsv)
                if length > self.max_message_size and not transformed:
                    raise PayloadTooBig(
                        "message of %d bytes exceeds the limit of %d" % (length, self.max_message_size)
                    )
                payload = data_cstr[start : start + length]
                pos = start + length
                if masked:
                    payload = apply_mask(payload, mask)
                if transformed:
                    self.msize = 0
                    payload = self._decode(payload, True)
                if opcode == OP_TEXT:
                    try:
                        text = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        raise InvalidUTF8("invalid UTF-8 in a text message") from None
                    events.append(TextMessage(text))
                else:
                    events.append(BinaryMessage(payload))
                self.pending += len(payload) + EVENT_OVERHEAD
                if self.pending >= self.budget and pos < n:
                    self.held = data
                    self.held_pos = pos
                    return
                continue

            # General path: the start or continuation of a message, possibly partial.
            if opcode != OP_CONT:
                self._message_start(opcode, rsv)
            # Uncompressed: refuse before buffering. Compressed: the output is checked as
            # it is inflated (_append), which is all a bomb can be caught by.
            if not self.mcompressed and length + self.msize > self.max_message_size:
                raise PayloadTooBig(
                    "message of %d bytes exceeds the limit of %d"
                    % (length + self.msize, self.max_message_size)
                )
            self.ffin = fin != 0
            self.fmask = mask
            self.fphase = 0
            self.remaining = length
            pos = start
            if length == 0:
                self._frame_end()
                if self.pending >= self.budget and pos < n:
                    self.held = data
                    self.held_pos = pos
                    return
            else:
                self.state = PAYLOAD

    def _message_start(self, opcode, rsv):
        self.mopcode = opcode
        self.msize = 0
        ext = self.ext
        self.mcompressed = ext is not None and ext.decode_start(rsv)
        if opcode == OP_TEXT:
            if self.validator is None:
                self.validator = Utf8Validator()
            else:
                self.validator.reset()
            if self.stream_fragments:
                self.decoder = codecs.getincrementaldecoder("utf-8")()

    def _chunk(self, chunk):
        """Take a piece of unmasked payload of the current data frame."""
        if self.mcompressed:
            chunk = self._decode(chunk, False)
        self._append(chunk)

    def _decode(self, chunk, end):
        """Pass ``chunk`` (None: nothing) of a transformed message through the extension,
        then with ``end`` the end of the message; the output is bounded by the room left
        under the message limit, and going over it is reported against the limit itself."""
        ext = self.ext
        room = self.max_message_size - self.msize
        try:
            if chunk is not None:
                chunk = ext.decode(chunk, room)
                if not end:
                    return chunk
                room -= len(chunk)
            tail = ext.decode_end(room)
        except PayloadTooBig:
            raise PayloadTooBig(
                "message exceeds the limit of %d bytes" % self.max_message_size
            ) from None
        if chunk is None:
            return tail
        return chunk + tail if tail else chunk

    def _append(self, chunk):
        size = len(chunk)
        if size == 0:
            return
        self.msize += size
        if self.msize > self.max_message_size:  # pragma: no cover  (defensive: callers bound it first)
            raise PayloadTooBig("message exceeds the limit of %d bytes" % self.max_message_size)
        if self.mopcode == OP_TEXT:
            # Fail fast: RFC 6455 §8.1 lets us fail as soon as the text cannot be UTF-8.
            if self.validator.feed(chunk) >= 0:
                raise InvalidUTF8("invalid UTF-8 in a text message")
        self.mbuf += chunk

    def _frame_end(self):
        """The current data frame's payload is complete."""
        fin = self.ffin
        if fin and self.mcompressed:
            self._append(self._decode(None, True))
        text = self.mopcode == OP_TEXT
        if fin and text and not self.validator.complete:
            raise InvalidUTF8("text message ends inside a UTF-8 sequence")
        if self.stream_fragments:
            data = bytes(self.mbuf)
            self.mbuf = bytearray()
            self.pending += len(data) + EVENT_OVERHEAD
            if text:
                self.events.append(TextMessage(self.decoder.decode(data, fin), fin))
            else:
                self.events.append(BinaryMessage(data, fin))
        elif fin:
            self.pending += len(self.mbuf) + EVENT_OVERHEAD
            if text:
                self.events.append(TextMessage(self.mbuf.decode("utf-8")))
            else:
                self.events.append(BinaryMessage(bytes(self.mbuf)))
            self.mbuf = bytearray()
        if fin:
            self.mopcode = 0
            self.mcompressed = False
