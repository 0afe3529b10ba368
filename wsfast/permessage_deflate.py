"""permessage-deflate (RFC 7692): negotiation and per-message compression.

Theory of operation
===================

Negotiation (RFC 7692 §5, §7.1)
-------------------------------
The client offers, the server answers (``wsfast.extensions`` describes the hook):

* ``ClientPerMessageDeflate.offer()`` lists the parameters it was configured with.
  ``client_max_window_bits`` is offered without a value by default: it costs nothing and lets
  a memory-conscious server shrink the window we compress with (§7.1.2.2).
* ``ServerPerMessageDeflate.negotiate(offers)`` walks the offers in the client's order and
  accepts the first one that is valid. An offer with an unknown parameter, a duplicated
  parameter or an invalid value (a value on ``*_no_context_takeover``, window bits that are
  not exactly one of ``8`` … ``15`` – no leading zero, sign or space –,
  ``server_max_window_bits`` without a value) is declined (§7.1) and the next one is tried;
  if none is acceptable the connection goes on uncompressed.
  The server always honours what the client asks for itself (``server_no_context_takeover``,
  ``server_max_window_bits``), may impose ``server_no_context_takeover`` /
  ``client_no_context_takeover`` / a smaller ``server_max_window_bits`` on its own, and can
  only ask for ``client_max_window_bits`` when the client offered that parameter (§7.1.2.2);
  ``require_client_max_window_bits=True`` declines offers that don't.
* ``ClientPerMessageDeflate.accept(params)`` fails the handshake with ``NegotiationError``
  (§5: the client MUST fail the connection) when the response has an unknown, duplicated or
  invalid parameter, lacks ``server_no_context_takeover`` or ``server_max_window_bits`` the
  client asked for, carries a ``server_max_window_bits`` larger than asked for, or carries
  ``client_max_window_bits`` the client did not offer. It accepts what the server may add on
  its own: ``server_no_context_takeover``, ``client_no_context_takeover``,
  ``server_max_window_bits`` (not asked for). A ``client_max_window_bits`` above the value we
  hinted is not an error: §7.1.2.2 says the hint still caps our window, so we use the smaller.

Window bits 8
-------------
zlib (≥ 1.2.9, and zlib-ng) refuses a raw-deflate compressor with an 8-bit window
(``zlib.compressobj(wbits=-8)`` raises ``ValueError``; the zlib-wrapped variant silently uses 9).
We do **not** decline window 8: when we must compress with at most 256 bytes of window we use a
9-bit (512-byte) zlib compressor, which is still a valid 8-bit stream because zlib never emits a
match distance above ``MAX_DIST = w_size - MIN_LOOKAHEAD = 512 - 262 = 250`` (every zlib
strategy keeps that bound: fast, slow, rle – distance 1 –, huffman-only and stored use none;
zlib-ng defines MAX_DIST the same way and its quick strategy checks it too). A peer that
inflates with a 256-byte window therefore never sees a distance it cannot resolve, across
messages too (context takeover). ``test_window_bits_8_stream_is_valid_for_256_byte_window``
checks exactly that with a real 256-byte-window inflater fed byte by byte, so a zlib that broke
the bound would fail CI. Receiving window 8 needs nothing special: inflating with a window at
least as large as the sender's is always correct. So ``8`` is accepted everywhere: in offers,
responses and in our own configuration, both directions, with full compression.

Sending (RFC 7692 §7.2.1)
-------------------------
On the first frame of a message ``encode`` decides whether the message is compressed:
``compress=None`` → ``len(payload) >= threshold``; ``True``/``False`` force it. The decision
holds for every frame of that message, and the frames of one compressed message are one
deflate stream. Each frame is ``compress(payload) + flush(Z_SYNC_FLUSH)``, so everything given
so far is on the wire (streaming); the sync flush ends with an empty stored block
``00 00 ff ff``, kept on non-final frames (it is valid deflate data in the middle of the
stream) and removed from the final frame only (§7.2.1). If the final frame has nothing left to
say, it carries the single byte ``00`` (§7.2.3.6); an empty message compresses to ``00``.
Only RSV1 of the first frame is set.

With ``*_no_context_takeover`` on our side a new compressor is built for each message and
dropped at its end: creating one costs less than ``copy()`` of a pristine one (measured
0.35–1.5 µs against 0.3–6 µs for windows 9–15 and memLevel 4–8; both ~10–17 µs at 15 bits
with memLevel 5, an allocator effect) and nothing stays allocated between messages. Its window
is the smallest that covers a single-frame message (at least 9 bits, at most the negotiated
one): the output is the same (2000 of 2000 random messages byte-identical) for less memory and
time. In that mode a message whose compressed form is not smaller than itself is sent
uncompressed (the policy case only, ``compress=None``).
With context takeover one compressor lives for the connection (created on first use).

Receiving (RFC 7692 §7.2.2)
---------------------------
``decode_start`` answers whether RSV1 is set. Payload chunks go through the ``Inflater``
kernel (``wsfast._speedups``), whose output is bounded by ``max_length``: a deflate bomb raises
``PayloadTooBig`` (1009) having allocated at most the limit. ``decode_end`` feeds the
``00 00 ff ff`` tail (``Inflater.finish``). Corrupt data raises ``ProtocolError`` (1002).
When the *sender* has no context takeover (for a server, the client's
``client_no_context_takeover``) the inflater is released at the end of each message and made
again on the next compressed one: an idle connection then holds no inflate state at all
(``reset()`` would keep the state and window allocated). With context takeover one inflater
lives for the connection, created on the first compressed message.

Uncompressed messages (RSV1 clear) pass through untouched in both directions.

Both directions use the deflate backend ``wsfast._speedups`` chose at import (zlib-ng where
available, else zlib; ``WSFAST_DEFLATE`` forces one): its ``Deflater`` compresses each frame
(sync flush, tail stripped on the final frame, in one call) and its ``Inflater`` inflates.

Defaults and why
----------------
* ``compress_level=6``: zlib's default, also what websockets uses. On repetitive JSON (the
  common WebSocket payload) with context takeover and 15 bits, level 6 gives 22 % of the input
  on ~120-byte messages and 15 % on ~6 KB ones, against 28 % / 20 % for level 1, for 1.5× /
  2.5× its CPU; level 9 gains ~1 % more for 2.5–4× the CPU of level 6. Pick 1 for bulk
  throughput.
* ``mem_level=5`` (zlib's default is 8): memLevel sizes the compressor's hash table
  (``2**(mem_level+7)`` × 2 bytes) and symbol buffer (``2**(mem_level+6)`` × 4 bytes). 5
  instead of 8 saves 112 KiB per compressor, and the measured ratios on the same JSON streams
  differ by < 0.5 %; websockets picks 5 for the same reason.
* window bits: none forced (15, the RFC default, unless the peer or the configuration asks for
  less). For many idle connections configure 12 (websockets' server default) or less; see
  the table.
* ``threshold=32`` bytes: below that deflate has too little to work with to pay for the CPU
  of both ends (with context takeover a 20-byte message still shrinks, but by a handful of
  bytes). Set 0 to compress everything, as websockets does.

Memory per idle connection
--------------------------
Bytes still allocated per connection after one ~300-byte compressed JSON message each way,
same window bits both directions (``benchmarks/bench_pmd_memory.py``: tracemalloc over 1000
extension objects; CPython 3.11, zlib 1.2.13, x86-64; both Inflater builds route zlib's
allocations through ``PyMem_RawCalloc``, so tracemalloc sees all of it).
"nct" = no context takeover both ways; then nothing is held between messages but the Python
object, whatever the window or memLevel.

====  ==================  ==================  ==================  ==================  =======
      wsfast              wsfast              websockets 17.4     websockets 17.4     nct,
bits  mem_level=5         mem_level=8         memLevel=5          memLevel=8          both
====  ==================  ==================  ==================  ==================  =======
8     31.9 KiB            143.9 KiB           (declines 8)        (declines 8)        0.2 KiB
9     31.9 KiB            143.9 KiB           32.0 KiB            144.0 KiB           0.2 KiB
10    34.4 KiB            146.4 KiB           34.5 KiB            146.5 KiB           0.2 KiB
11    39.4 KiB            151.4 KiB           39.5 KiB            151.5 KiB           0.2 KiB
12    49.4 KiB            161.4 KiB           49.5 KiB            161.5 KiB           0.2 KiB
13    69.4 KiB            181.4 KiB           69.5 KiB            181.5 KiB           0.2 KiB
14    109.4 KiB           221.4 KiB           109.5 KiB           221.5 KiB           0.2 KiB
15    189.4 KiB           301.4 KiB           189.5 KiB           301.5 KiB           0.2 KiB
====  ==================  ==================  ==================  ==================  =======

On the zlib-ng backend (``wsfast._speedups.DEFLATE_BACKEND``; zlib-ng 2.3.3, compiled
kernel) an idle connection holds more: the compressor's hash table has a fixed 64 Ki entries
(128 KiB, whatever ``mem_level``) and the inflater always allocates a 32 KiB window
(41.3 KiB, whatever the window bits). Same measurement, mem_level 5, context takeover:

====  ==========  ==========  ==============  ==================================
bits  zlib        zlib-ng     websockets 17.4  zlib-ng compressor / inflater alone
====  ==========  ==========  ==============  ==================================
9     31.8 KiB    187.7 KiB   32.0 KiB         146.3 KiB / 41.3 KiB
12    49.3 KiB    201.7 KiB   49.5 KiB         160.3 KiB / 41.3 KiB
15    189.3 KiB   313.7 KiB   189.5 KiB        272.3 KiB / 41.3 KiB
====  ==========  ==========  ==============  ==================================

To get websockets' figure back: ``WSFAST_DEFLATE=zlib`` (the whole process on zlib; costs
the zlib-ng speed-up, see benchmarks/bench_deflate_backends.py), or ``*_no_context_takeover``
on our sending side, which holds no compressor between messages (idle: the 41.3 KiB
inflater only, below zlib's 189 KiB at 15 bits; costs compression ratio on small messages
and a compressor set-up per message). With no context takeover both ways nothing is held on
either backend.

(websockets with nct: 0.3 KiB.) Where it goes, at 15 bits and mem_level 5: the compressor
~150 KiB (window 2 × 32 KiB, chain table 64 KiB, hash 8 KiB, symbol buffer 8 KiB, state
~6 KiB), the inflater ~39 KiB (state ~7 KiB, window 32 KiB). Each window bit less halves the
window-proportional parts.
"""

from __future__ import annotations

import zlib
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from ._speedups import Deflater, Inflater, deflate_classes
from .exceptions import NegotiationError, ProtocolError
from .extensions import ClientExtensionFactory, Extension, Params, ServerExtensionFactory

__all__ = ["PerMessageDeflate", "ClientPerMessageDeflate", "ServerPerMessageDeflate"]

NAME = "permessage-deflate"
# Exact spellings of the valid window bits values: no leading zero, sign or blank (§7.1.2).
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}
# zlib's largest match distance is w_size - MIN_LOOKAHEAD (258 + 3 + 1).
_MIN_LOOKAHEAD = 262


def _compressor_bits(window_bits: int) -> int:
    """zlib raw deflate has no 8-bit window; a 9-bit one never uses a distance above 250."""
    return 9 if window_bits < 9 else window_bits


class PerMessageDeflate(Extension):
    """A negotiated permessage-deflate extension: one per connection.

    ``local_*`` is about the messages we send (our compressor), ``remote_*`` about the messages
    we receive (the peer's compressor, our inflater). Normally built by the factories.
    """

    name = NAME
    rsv = 0x40

    __slots__ = (
        "local_no_context_takeover",
        "remote_no_context_takeover",
        "local_max_window_bits",
        "remote_max_window_bits",
        "compress_level",
        "mem_level",
        "threshold",
        "backend",
        "_classes",
        "_inflater",
        "_deflater",
        "_tx_compressed",
        "_tx_fallback",
    )

    def __init__(
        self,
        *,
        local_no_context_takeover: bool = False,
        remote_no_context_takeover: bool = False,
        local_max_window_bits: int = 15,
        remote_max_window_bits: int = 15,
        compress_level: int = 6,
        mem_level: int = 5,
        threshold: int = 32,
        backend: Optional[str] = None,
    ) -> None:
        _check_bits("local_max_window_bits", local_max_window_bits)
        _check_bits("remote_max_window_bits", remote_max_window_bits)
        _check_compressor(compress_level, mem_level, threshold)
        _check_backend(backend)
        self.local_no_context_takeover = bool(local_no_context_takeover)
        self.remote_no_context_takeover = bool(remote_no_context_takeover)
        self.local_max_window_bits = local_max_window_bits
        self.remote_max_window_bits = remote_max_window_bits
        self.compress_level = compress_level
        self.mem_level = mem_level
        self.threshold = threshold
        self.backend = backend
        # None: the process's backend (the module's Inflater/Deflater, looked up when used).
        self._classes = None if backend is None else deflate_classes(backend)
        self._inflater: Optional[Inflater] = None
        self._deflater: Optional[Deflater] = None
        self._tx_compressed = False
        self._tx_fallback = False

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_max_window_bits={self.local_max_window_bits}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"compress_level={self.compress_level}, mem_level={self.mem_level}, "
            f"threshold={self.threshold}, backend={self.backend!r})"
        )

    # -- receiving -------------------------------------------------------------------------

    def decode_start(self, rsv: int) -> bool:
        if not rsv & 0x40:
            return False
        if self._inflater is None:
            classes = self._classes
            self._inflater = (Inflater if classes is None else classes[0])(self.remote_max_window_bits)
        return True

    def decode(self, data: bytes, max_length: int) -> bytes:
        try:
            return self._inflater.decompress(data, max_length)  # type: ignore[union-attr]
        except zlib.error as exc:
            raise ProtocolError(f"invalid compressed data: {exc}") from exc

    def decode_end(self, max_length: int) -> bytes:
        inflater = self._inflater
        try:
            return inflater.finish(max_length)  # type: ignore[union-attr]
        except zlib.error as exc:
            raise ProtocolError(f"invalid compressed data: {exc}") from exc
        finally:
            if self.remote_no_context_takeover:
                # The next message starts from an empty window: release the state rather than
                # reset() it, so an idle connection holds no inflate memory.
                self._inflater = None

    # -- sending ---------------------------------------------------------------------------

    def encode(self, payload: bytes, first: bool, fin: bool, compress: Optional[bool]) -> Tuple[int, bytes]:
        if first:
            if compress is None:
                self._tx_compressed = len(payload) >= self.threshold
                # Without context takeover an unhelpful compression can be undone for free.
                self._tx_fallback = fin and self.local_no_context_takeover
            else:
                self._tx_compressed = bool(compress)
                self._tx_fallback = False
        if not self._tx_compressed:
            return 0, payload

        deflater = self._deflater
        if deflater is None:
            bits = self.local_max_window_bits
            if self.local_no_context_takeover and first and fin:
                # The window need not exceed the message: same output, less memory and time.
                size = len(payload) + _MIN_LOOKAHEAD
                small = 9
                while small < bits and (1 << small) < size:
                    small += 1
                bits = small
            classes = self._classes
            deflater = (Deflater if classes is None else classes[1])(
                self.compress_level, _compressor_bits(bits), self.mem_level
            )
            self._deflater = deflater
        # Sync-flushed; on the final frame without the 00 00 ff ff tail, or 00 if empty.
        data = deflater.compress(payload, fin)
        if fin:
            if self.local_no_context_takeover:
                self._deflater = None
            if self._tx_fallback and len(data) >= len(payload):
                return 0, payload
        return (0x40 if first else 0), data


# -- parameters -----------------------------------------------------------------------------


class _InvalidParams(Exception):
    pass


_NO_CONTEXT = ("server_no_context_takeover", "client_no_context_takeover")


def _parse(params: Params, *, offer: bool) -> Dict[str, Any]:
    """Validate permessage-deflate parameters; raise ``_InvalidParams`` (RFC 7692 §7.1).

    Returns a dict of the parameters present: ``*_no_context_takeover`` → True, window bits →
    int, and (offers only) ``client_max_window_bits`` without a value → True.
    """
    parsed: Dict[str, Any] = {}
    for name, value in params:
        if name in parsed:
            raise _InvalidParams(f"duplicate parameter {name}")
        if name in _NO_CONTEXT:
            if value is not None:
                raise _InvalidParams(f"{name} takes no value, got {value!r}")
            parsed[name] = True
        elif name == "server_max_window_bits" or name == "client_max_window_bits":
            if value is None:
                if name == "client_max_window_bits" and offer:
                    parsed[name] = True
                    continue
                raise _InvalidParams(f"{name} needs a value")
            bits = _WINDOW_BITS.get(value)
            if bits is None:
                raise _InvalidParams(f"invalid {name} value {value!r}")
            parsed[name] = bits
        else:
            raise _InvalidParams(f"unknown parameter {name!r}")
    return parsed


def _check_bits(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if type(value) is not int or not 8 <= value <= 15:
        raise ValueError(f"{name} must be an int from 8 to 15, not {value!r}")


def _check_compressor(compress_level: int, mem_level: int, threshold: int) -> None:
    if type(compress_level) is not int or not -1 <= compress_level <= 9:
        raise ValueError(f"compress_level must be an int from -1 to 9, not {compress_level!r}")
    if type(mem_level) is not int or not 1 <= mem_level <= 9:
        raise ValueError(f"mem_level must be an int from 1 to 9, not {mem_level!r}")
    if type(threshold) is not int or threshold < 0:
        raise ValueError(f"threshold must be an int >= 0, not {threshold!r}")


def _check_backend(backend: object) -> None:
    if backend is not None and backend not in ("zlib", "zlib-ng"):
        raise ValueError(f"backend must be None, 'zlib' or 'zlib-ng', not {backend!r}")
    if backend is not None:
        deflate_classes(backend)  # ImportError now, not at the first message


def _check_flag(name: str, value: object) -> None:
    if type(value) is not bool:
        raise ValueError(f"{name} must be a bool, not {value!r}")


class ClientPerMessageDeflate(ClientExtensionFactory):
    """Client side of permessage-deflate negotiation.

    ``server_no_context_takeover`` / ``client_no_context_takeover``: ask the server not to
    take over context / promise not to (our side then compresses each message alone).
    ``server_max_window_bits``: the largest window (8–15) the server may compress with; None
    lets it use 15. ``client_max_window_bits``: ``True`` (default) offers the parameter
    without a value, letting the server choose our window; an int (8–15) is the largest window
    we will use whatever the server says; ``None``/``False`` does not offer it.
    ``compress_level``, ``mem_level``: zlib settings of our compressor (see the module
    docstring for the defaults). ``threshold``: messages shorter than this many bytes are
    sent uncompressed unless the caller forces it. ``backend``: the deflate library of this
    connection, ``"zlib"`` or ``"zlib-ng"``; None (default) = the process's
    (``wsfast._speedups.DEFLATE_BACKEND``). ``"zlib"`` holds less memory per idle connection
    (module docstring); an unavailable ``"zlib-ng"`` raises ImportError here.
    """

    name = NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = None,
        client_max_window_bits: Union[int, bool, None] = True,
        compress_level: int = 6,
        mem_level: int = 5,
        threshold: int = 32,
        backend: Optional[str] = None,
    ) -> None:
        _check_flag("server_no_context_takeover", server_no_context_takeover)
        _check_flag("client_no_context_takeover", client_no_context_takeover)
        _check_bits("server_max_window_bits", server_max_window_bits, allow_none=True)
        if client_max_window_bits is False:
            client_max_window_bits = None
        if client_max_window_bits is not True:
            _check_bits("client_max_window_bits", client_max_window_bits, allow_none=True)
        _check_compressor(compress_level, mem_level, threshold)
        _check_backend(backend)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_level = compress_level
        self.mem_level = mem_level
        self.threshold = threshold
        self.backend = backend

    def __repr__(self) -> str:
        return (
            f"ClientPerMessageDeflate(server_no_context_takeover={self.server_no_context_takeover}, "
            f"client_no_context_takeover={self.client_no_context_takeover}, "
            f"server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits}, "
            f"compress_level={self.compress_level}, mem_level={self.mem_level}, "
            f"threshold={self.threshold}, backend={self.backend!r})"
        )

    def offer(self) -> Params:
        params: Params = []
        if self.server_no_context_takeover:
            params.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            params.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            params.append(("server_max_window_bits", str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            params.append(("client_max_window_bits", None))
        elif self.client_max_window_bits is not None:
            params.append(("client_max_window_bits", str(self.client_max_window_bits)))
        return params

    def accept(self, params: Params) -> PerMessageDeflate:
        try:
            response = _parse(params, offer=False)
        except _InvalidParams as exc:
            raise NegotiationError(f"invalid {NAME} response: {exc}") from None

        # §7.1.1.1: a server accepting server_no_context_takeover MUST include it.
        if self.server_no_context_takeover and "server_no_context_takeover" not in response:
            raise NegotiationError(f"{NAME} response lacks the requested server_no_context_takeover")

        # §7.1.2.1: accepting server_max_window_bits means echoing it with the same or a smaller
        # value; without our request the server may still announce its window.
        server_bits = response.get("server_max_window_bits")
        if self.server_max_window_bits is not None:
            if server_bits is None:
                raise NegotiationError(f"{NAME} response lacks the requested server_max_window_bits")
            if server_bits > self.server_max_window_bits:
                raise NegotiationError(
                    f"{NAME} response has server_max_window_bits={server_bits}, "
                    f"above the requested {self.server_max_window_bits}"
                )

        # §7.1.2.2: the server may send client_max_window_bits only if we offered it; a value
        # we hinted caps our window whatever the server answers.
        client_bits = response.get("client_max_window_bits")
        hint = self.client_max_window_bits
        if client_bits is not None:
            if hint is None:
                raise NegotiationError(f"{NAME} response has client_max_window_bits, which was not offered")
            if hint is not True and hint < client_bits:
                client_bits = hint
        elif hint is not None and hint is not True:
            client_bits = hint

        return PerMessageDeflate(
            local_no_context_takeover=self.client_no_context_takeover
            or "client_no_context_takeover" in response,
            remote_no_context_takeover="server_no_context_takeover" in response,
            local_max_window_bits=client_bits or 15,
            remote_max_window_bits=server_bits or 15,
            compress_level=self.compress_level,
            mem_level=self.mem_level,
            threshold=self.threshold,
            backend=self.backend,
        )


class ServerPerMessageDeflate(ServerExtensionFactory):
    """Server side of permessage-deflate negotiation.

    ``server_no_context_takeover``: never take over context when sending (always announced;
    a client's request for it is honoured regardless). ``client_no_context_takeover``: require
    the client not to (always announced, §7.1.1.2 lets the server impose it).
    ``server_max_window_bits``: the largest window (8–15) we compress with; None = whatever the
    client asks, 15 if it asks nothing. ``client_max_window_bits``: the largest window (8–15) we
    let the client use, sent when the client offered the parameter; None = no limit.
    ``require_client_max_window_bits``: decline offers without ``client_max_window_bits``
    (otherwise such clients may use a 15-bit window, which our inflater then allocates).
    ``compress_level``, ``mem_level``, ``threshold``, ``backend``: as for
    ``ClientPerMessageDeflate``.
    """

    name = NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = None,
        client_max_window_bits: Optional[int] = None,
        require_client_max_window_bits: bool = False,
        compress_level: int = 6,
        mem_level: int = 5,
        threshold: int = 32,
        backend: Optional[str] = None,
    ) -> None:
        _check_flag("server_no_context_takeover", server_no_context_takeover)
        _check_flag("client_no_context_takeover", client_no_context_takeover)
        _check_bits("server_max_window_bits", server_max_window_bits, allow_none=True)
        _check_bits("client_max_window_bits", client_max_window_bits, allow_none=True)
        _check_flag("require_client_max_window_bits", require_client_max_window_bits)
        if require_client_max_window_bits and client_max_window_bits is None:
            raise ValueError("require_client_max_window_bits needs client_max_window_bits")
        _check_compressor(compress_level, mem_level, threshold)
        _check_backend(backend)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.require_client_max_window_bits = require_client_max_window_bits
        self.compress_level = compress_level
        self.mem_level = mem_level
        self.threshold = threshold
        self.backend = backend

    def __repr__(self) -> str:
        return (
            f"ServerPerMessageDeflate(server_no_context_takeover={self.server_no_context_takeover}, "
            f"client_no_context_takeover={self.client_no_context_takeover}, "
            f"server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits}, "
            f"require_client_max_window_bits={self.require_client_max_window_bits}, "
            f"compress_level={self.compress_level}, mem_level={self.mem_level}, "
            f"threshold={self.threshold}, backend={self.backend!r})"
        )

    def negotiate(self, offers: Sequence[Params]) -> Optional[Tuple[Params, PerMessageDeflate]]:
        for params in offers:
            try:
                offer = _parse(params, offer=True)
            except _InvalidParams:
                continue  # §7.1: decline this offer, try the next one
            accepted = self._accept(offer)
            if accepted is not None:
                return accepted
        return None

    def _accept(self, offer: Dict[str, Any]) -> Optional[Tuple[Params, PerMessageDeflate]]:
        client_offers_bits = "client_max_window_bits" in offer
        if self.require_client_max_window_bits and not client_offers_bits:
            return None

        server_nct = self.server_no_context_takeover or "server_no_context_takeover" in offer
        client_nct = self.client_no_context_takeover or "client_no_context_takeover" in offer

        # Our window: what the client asks (must be echoed, §7.1.2.1) capped by our limit; our
        # limit alone may be announced too.
        server_bits = offer.get("server_max_window_bits")
        if server_bits is None:
            server_bits = self.server_max_window_bits
        elif self.server_max_window_bits is not None and self.server_max_window_bits < server_bits:
            server_bits = self.server_max_window_bits

        # The client's window: only negotiable if offered (§7.1.2.2). A hinted value binds the
        # client anyway; echoing the smaller of hint and limit makes it explicit.
        client_bits: Optional[int] = None
        send_client_bits = False
        if client_offers_bits:
            hint = offer["client_max_window_bits"]
            client_bits = 15 if hint is True else hint
            if self.client_max_window_bits is not None:
                client_bits = min(client_bits, self.client_max_window_bits)
                send_client_bits = True
            else:
                send_client_bits = hint is not True

        response: Params = []
        if server_nct:
            response.append(("server_no_context_takeover", None))
        if client_nct:
            response.append(("client_no_context_takeover", None))
        if server_bits is not None:
            response.append(("server_max_window_bits", str(server_bits)))
        if send_client_bits:
            response.append(("client_max_window_bits", str(client_bits)))

        extension = PerMessageDeflate(
            local_no_context_takeover=server_nct,
            remote_no_context_takeover=client_nct,
            local_max_window_bits=server_bits or 15,
            remote_max_window_bits=client_bits or 15,
            compress_level=self.compress_level,
            mem_level=self.mem_level,
            threshold=self.threshold,
            backend=self.backend,
        )
        return response, extension
