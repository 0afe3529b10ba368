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
* Otherwise the payload streams (``PAYLOAD``). An uncompressed message is built in its
  final object (``target``): an unfragmented frame's header announces the message's size,
  so the object is allocated once at that size and every piece is unmasked (or copied)
  straight into it at the right key phase: one pass over each byte, no growing buffer, no
  final copy. Fragments grow the object geometrically (the last frame's length caps the
  last growth, so the final object is usually exact; else one final copy). Each piece is
  UTF-8 validated in place as it lands (invalid text fails at the first impossible byte,
  even inside a frame that arrives in pieces). A compressed message goes through the
  extension piece by piece into ``mbuf``. Only headers and control frames (≤ 139 bytes)
  are ever kept in ``buf`` between calls, so a large frame is never re-copied.
* The zero-copy receive path (``get_buffer``/``buffer_updated``, see ``connection.py``):
  inside an uncompressed payload the buffer handed out is the rest of ``target`` itself,
  so the socket writes the payload where it ends up and only the unmask touches it again,
  in place; elsewhere it is a read buffer that becomes the input (no copy when it is full).
* ``DISCARD``: after a close frame or a failure, input is ignored: the structural way to
  make "nothing after close" impossible to forget.

Backpressure: every event appended adds its payload size plus ``EVENT_OVERHEAD`` to
``pending``. Once ``pending`` reaches ``budget`` (about one message limit) the parser stops
at the next frame boundary and *holds* the rest of the input (``held``/``held_pos``, no
copy); ``feed`` then only buffers. The connection resets ``pending`` when the application
takes the events and calls ``resume()``. So what one ``feed`` creates is bounded by the
budget plus one message, whatever the read size and however well the input compresses.

Build twins: the compiled build allocates ``target`` as an uninitialized ``bytes`` and
fills it through the kernels in ``wsfast._mask`` (``_alloc``, ``_mask_into``...) before
anyone else can see it, so a binary message's payload *is* that object. The pure build
does the same in a ``bytearray`` (then one ``bytes()`` copy at the end for binary; text is
decoded from it directly). Large announced sizes are allocated up to ``PREALLOC_MAX`` ahead
(the C allocator maps big blocks lazily, so memory is committed as bytes arrive; the pure
build's ``bytearray`` is zero-filled, hence its lower bound), beyond that as bytes arrive.

Peer faults raise ``ProtocolError`` (or a subclass carrying its close code) out of
``feed``; the connection catches them in one place. Control frames are reported through
two callbacks so the connection decides policy (auto-pong, close handling).
"""

from __future__ import annotations

import codecs

from ._speedups import IMPLEMENTATION, Utf8Validator, apply_mask, apply_mask_inplace
from .events import BinaryMessage, Ping, Pong, TextMessage
from .exceptions import InvalidUTF8, PayloadTooBig, ProtocolError

__all__ = ["Parser", "FRAME", "PAYLOAD", "DISCARD", "EVENT_OVERHEAD", "MIN_BUDGET", "READ_SIZE"]

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
#: Size of the read buffer ``get_buffer`` hands out outside a payload (when no sizehint).
READ_SIZE = 1 << 16
#: ``get_buffer`` hands out the message object itself when at least this much of the current
#: frame is still to come (below, one read into the read buffer brings more at once).
REGION_MIN = 1 << 13

if IMPLEMENTATION == "cython":  # pragma: no cover  (coverage runs on the pure build)
    from ._mask import _alloc as alloc_payload
    from ._mask import _mask_into as mask_into
    from ._mask import _unmask_region as unmask_region
    from ._mask import _unmask_slice as unmask_slice
    from ._mask import _writable_region as writable_region

    #: Largest size allocated ahead of the bytes (uninitialized: mapped lazily).
    PREALLOC_MAX = 1 << 26
else:

    def alloc_payload(n):
        return bytearray(n)

    def mask_into(dst, dpos, src, spos, n, mask, phase):
        if mask:
            dst[dpos : dpos + n] = apply_mask(src[spos : spos + n], mask, phase)
        else:
            dst[dpos : dpos + n] = memoryview(src)[spos : spos + n]

    def unmask_region(dst, start, n, mask, phase):
        apply_mask_inplace(memoryview(dst)[start : start + n], mask, phase)

    def unmask_slice(src, spos, n, mask, phase):
        return apply_mask(src[spos : spos + n], mask, phase)

    def writable_region(obj, start, n):
        return memoryview(obj)[start : start + n]

    #: Largest size allocated ahead of the bytes (a zero-filled bytearray: committed at once).
    PREALLOC_MAX = 1 << 20


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
        self.mbuf = bytearray()  # a compressed message's output so far
        self.msize = 0
        self.mcompressed = False
        self.validator = None
        self.decoder = None
        # An uncompressed message (or, when streaming fragments, frame) under construction:
        # its object (bytes in the compiled build, bytearray in the pure one; None: nothing
        # allocated yet) and the bytes of it filled so far.
        self.target = None
        self.mfill = 0
        #: End of ``held``'s valid bytes (a read buffer may be longer than what was read).
        self.held_end = 0
        # The buffer handed out by get_buffer(): the view, its kind (1: the rest of
        # ``target``, 2: the read buffer ``rbuf``), and where in which target it starts.
        self.rview = None
        self.rkind = 0
        self.rtarget = None
        self.rfill = 0
        self.rbuf = None

    def set_extension(self, ext):
        """Install the negotiated extension (or None)."""
        self.ext = ext
        self.rsv_allowed = ext.rsv if ext is not None else 0

    def discard(self):
        """Ignore all further input."""
        self.state = DISCARD
        self.buf = bytearray()
        self.held = None
        self.target = None
        self.mbuf = bytearray()

    def feed(self, data):
        """Parse ``data`` (bytes). Raises ProtocolError on a peer fault."""
        self._input(data, len(data))

    def _input(self, data, n):
        # Parse data[:n] (the rest of ``data``, if any, is not input).
        if self.state == DISCARD:
            return
        buf = self.buf
        if self.held is not None or buf:
            if n != len(data):  # pragma: no cover  (compiled build: a read buffer longer than the read)
                data = data[:n]
            if self.held is not None:
                if self.events:
                    # Holding for the budget: keep the bytes (``buf`` is free: a hold
                    # happens at a frame boundary) until resume().
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
                n = len(data)
                self.buf = bytearray()
        self._feed(data, 0, n)

    def get_region(self):
        """The rest of the current frame's region of the message object when the next bytes
        are the payload of an uncompressed frame with at least ``REGION_MIN`` to come, else
        None (see ``Connection.get_payload_buffer``)."""
        view = self.rview
        if view is not None:
            return view if self.rkind == 1 else None
        remaining = self.remaining
        if self.state != PAYLOAD or self.mcompressed or remaining < REGION_MIN:
            return None
        target = self.target
        fill = self.mfill
        if target is None or len(target) == fill:
            self._reserve(min(remaining, PREALLOC_MAX))
            target = self.target
        room = len(target) - fill
        if room > remaining:
            room = remaining
        view = writable_region(target, fill, room)
        self.rkind = 1
        self.rtarget = target
        self.rfill = fill
        self.rview = view
        return view

    def get_buffer(self, sizehint):
        """A writable buffer for the next input (see ``Connection.get_buffer``): inside an
        uncompressed payload, the rest of the frame's region of the message object; else
        the read buffer (at least ``sizehint`` bytes if that is positive)."""
        view = self.rview
        if view is not None:
            return view  # asked again before buffer_updated(): the same buffer
        view = self.get_region()
        if view is not None:
            return view
        size = sizehint if sizehint > 0 else READ_SIZE
        rbuf = self.rbuf
        if rbuf is None or len(rbuf) < size:
            rbuf = alloc_payload(size)
            self.rbuf = rbuf
        view = writable_region(rbuf, 0, len(rbuf))
        self.rkind = 2
        self.rview = view
        return view

    def buffer_updated(self, nbytes):
        """``nbytes`` bytes were written at the start of the buffer get_buffer() returned:
        parse them. Raises ProtocolError on a peer fault, ValueError on misuse."""
        view = self.rview
        if view is None:
            raise ValueError("buffer_updated() without get_buffer()")
        if nbytes < 0 or nbytes > len(view):
            raise ValueError("nbytes must be between 0 and the buffer's length")
        kind = self.rkind
        target = self.rtarget
        self.rview = None
        self.rkind = 0
        self.rtarget = None
        try:
            view.release()
        except BufferError:  # pragma: no cover  (the adapter still exports it: it is freed later)
            pass
        if nbytes == 0 or self.state == DISCARD:
            return
        if kind == 1:
            if self.state != PAYLOAD or target is not self.target or self.rfill != self.mfill:
                raise ValueError("the buffer from get_buffer() is stale (input came in between)")
            start = self.mfill
            if self.fmask:
                unmask_region(target, start, nbytes, self.fmask, self.fphase)
                self.fphase = (self.fphase + nbytes) & 3
            self.mfill = start + nbytes
            self.remaining -= nbytes
            self._filled(start, nbytes)
            if not self.remaining:
                self.state = FRAME
                self._frame_end()
            return
        rbuf = self.rbuf
        if type(rbuf) is bytes:  # pragma: no cover  (coverage runs on the pure build)
            # Compiled build: a fresh, uninitialized bytes per read becomes the input as it
            # is (it may be held; the next read gets a new one).
            self.rbuf = None
            self._input(rbuf, nbytes)
        else:
            self._input(bytes(memoryview(rbuf)[:nbytes]), nbytes)

    def resume(self):
        """Parse held input, up to the budget (the connection has reset ``pending``)."""
        held = self.held
        if held is None:
            return
        pos = self.held_pos
        end = self.held_end
        self.held = None  # (discard() clears it: held input is never in state DISCARD)
        if self.buf:
            data = held[pos:end] + bytes(self.buf)
            self.buf = bytearray()
            pos = 0
            end = len(data)
        else:
            data = held
        self._feed(data, pos, end)

    def _feed(self, data, pos, n):
        # ``data_cstr`` is ``data`` here; the compiled build types it as a C pointer, so that
        # its slices copy bytes directly instead of going through a generic slice object.
        data_cstr = data
        events = self.events
        while True:
            if self.state == PAYLOAD:
                # Inside a data frame whose payload arrives in pieces.
                take = n - pos
                if take == 0:
                    return
                if take > self.remaining:
                    take = self.remaining
                if self.mcompressed:
                    if self.fmask:
                        chunk = unmask_slice(data, pos, take, self.fmask, self.fphase)
                    else:
                        chunk = data_cstr[pos : pos + take]
                    self._append(self._decode(chunk, False))
                else:
                    # One pass: unmask (or copy) straight into the message object.
                    start = self.mfill
                    if self.target is None or len(self.target) - start < take:
                        self._reserve(take)
                    mask_into(self.target, start, data, pos, take, self.fmask, self.fphase)
                    self.mfill = start + take
                    self._filled(start, take)
                pos += take
                self.fphase = (self.fphase + take) & 3
                self.remaining -= take
                if self.remaining:
                    return
                self.state = FRAME
                self._frame_end()
                if self.pending >= self.budget and pos < n:
                    self.held = data
                    self.held_pos = pos
                    self.held_end = n
                    return
                continue
            # State FRAME here: _feed is never entered in DISCARD, and a close frame returns.

            avail = n - pos
            if avail < 2:
                if avail:
                    self.buf += data[pos:n]
                return
            b0 = data_cstr[pos]
            b1 = data_cstr[pos + 1]
            length = b1 & 0x7F
            hlen = 2
            if length >= 126:
                if length == 126:
                    hlen = 4
                    if avail < 4:
                        self.buf += data[pos:n]
                        return
                    length = (data_cstr[pos + 2] << 8) | data_cstr[pos + 3]
                    if length < 126:
                        raise ProtocolError("frame length not minimally encoded")
                else:
                    hlen = 10
                    if avail < 10:
                        self.buf += data[pos:n]
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
                    self.buf += data[pos:n]
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
                    self.buf += data[pos:n]
                    return
                if masked:
                    payload = unmask_slice(data, start, length, mask, 0)
                else:
                    payload = data_cstr[start : start + length]
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
                    self.held_end = n
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
                if masked:
                    payload = unmask_slice(data, start, length, mask, 0)
                else:
                    payload = data_cstr[start : start + length]
                pos = start + length
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
                    self.held_end = n
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
            if not self.mcompressed:
                if self.stream_fragments or opcode != OP_CONT:
                    # A new object per message (per frame when streaming fragments).
                    self.target = None
                    self.mfill = 0
                if length:
                    # Allocate for the whole frame now (up to PREALLOC_MAX): one allocation
                    # for an unfragmented message, at its final size.
                    self._reserve(length if length < PREALLOC_MAX else PREALLOC_MAX)
            if length == 0:
                self._frame_end()
                if self.pending >= self.budget and pos < n:
                    self.held = data
                    self.held_pos = pos
                    self.held_end = n
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

    def _reserve(self, take):
        """Make room in ``target`` for ``take`` more bytes of the current frame: geometric
        growth, capped at the frame's end when it ends the message (or is delivered alone),
        so the last growth makes the object exactly the message's size."""
        target = self.target
        fill = self.mfill
        need = fill + take
        cap = 0 if target is None else len(target)
        if cap >= need:
            return
        new = cap * 2
        if new < need:
            new = need
        if self.ffin or self.stream_fragments:
            end = fill + self.remaining
            if new > end:
                new = end
        grown = alloc_payload(new)
        if fill:
            mask_into(grown, 0, target, 0, fill, b"", 0)
        self.target = grown

    def _filled(self, start, size):
        """``target[start:start+size]`` now holds unmasked payload."""
        self.msize += size
        if self.mopcode == OP_TEXT:
            # Fail fast: RFC 6455 §8.1 lets us fail as soon as the text cannot be UTF-8.
            if self.validator.feed(memoryview(self.target)[start : start + size]) >= 0:
                raise InvalidUTF8("invalid UTF-8 in a text message")

    def _take(self):
        """The message (or, streaming fragments, the frame) built so far, as a bytes-like
        object, and start the next one."""
        if self.mcompressed:
            out = self.mbuf
            self.mbuf = bytearray()
            return out
        target = self.target
        fill = self.mfill
        self.target = None
        self.mfill = 0
        if target is None:
            return b""
        if fill == len(target):
            return target
        return memoryview(target)[:fill]

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
        if self.stream_fragments or fin:
            raw = self._take()
            self.pending += len(raw) + EVENT_OVERHEAD
            if self.stream_fragments:
                if text:
                    self.events.append(TextMessage(self.decoder.decode(raw, fin), fin))
                else:
                    self.events.append(BinaryMessage(raw if type(raw) is bytes else bytes(raw), fin))
            elif text:
                self.events.append(TextMessage(str(raw, "utf-8")))
            else:
                self.events.append(BinaryMessage(raw if type(raw) is bytes else bytes(raw)))
        if fin:
            self.mopcode = 0
            self.mcompressed = False
