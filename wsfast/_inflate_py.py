"""Bounded raw-deflate decompression for permessage-deflate (RFC 7692), pure Python.

Twin of the compiled ``wsfast._inflate`` (same API, messages and results; parity test:
``tests/test_speedups.py``). See ``wsfast._speedups`` for the API contract and
``wsfast/_inflate.pyx`` for the semantics in detail.

The bound comes from ``zlib.decompressobj().decompress(data, max_length + 1)``: zlib stops
after ``max_length + 1`` bytes of output (and allocates no more than that), so getting that
many means the output is too big.
"""

from __future__ import annotations

import sys
import zlib

from .exceptions import PayloadTooBig, ProtocolError

__all__ = ["Inflater"]

# RFC 7692 §7.2.2: the sender removes these 4 octets from the end of every message.
_TAIL = b"\x00\x00\xff\xff"


def _check_wbits(wbits: object) -> int:
    if not isinstance(wbits, int):
        raise TypeError(f"wbits must be an int, not {type(wbits).__name__!r}")
    if not 8 <= wbits <= 15:
        raise ValueError(f"wbits must be between 8 and 15, not {wbits!r}")
    return wbits


def _check_max_length(max_length: object) -> int:
    if not isinstance(max_length, int):
        raise TypeError(f"max_length must be an int, not {type(max_length).__name__!r}")
    if max_length < 0:
        raise ValueError(f"max_length must be >= 0, not {max_length!r}")
    return min(max_length, sys.maxsize - 1)


def _check_data(data: object) -> object:
    if type(data) is bytes:
        return data
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        view = None
    if view is None or not view.c_contiguous:
        raise TypeError(
            f"data must be a C-contiguous bytes-like object, not {type(data).__name__!r}"
        )
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class Inflater:
    """Raw-deflate decompressor for one direction of a permessage-deflate connection.

    Args:
        wbits: the LZ77 window size, as negotiated (``*_max_window_bits``, 8-15).

    Raises:
        TypeError: ``wbits`` is not an int.
        ValueError: ``wbits`` is not 8-15.
    """

    __slots__ = ("_wbits", "_zobj", "_window")

    def __init__(self, wbits: int = 15) -> None:
        # zlib refuses a raw window of 8 bits; 9 bits inflate anything a smaller window made.
        self._wbits = max(_check_wbits(wbits), 9)
        self._zobj = zlib.decompressobj(-self._wbits)
        # The last 2**wbits bytes of output: zlib's decompressobj does not expose its window,
        # and a stream that restarts after a BFINAL block must keep it (see _restart).
        self._window = b""

    def decompress(self, data: object, max_length: int) -> bytes:
        """Inflate the next chunk of a message's compressed payload.

        Args:
            data: compressed bytes, any C-contiguous buffer.
            max_length: the most output bytes this call may return.

        Returns:
            The output that this chunk completes.

        Raises:
            PayloadTooBig: the output of this call would exceed ``max_length``.
            ProtocolError: the data is not valid deflate data.
            TypeError, ValueError: bad arguments.
        """
        data = _check_data(data)
        max_length = _check_max_length(max_length)
        zobj = self._zobj
        if zobj.eof:  # the previous message ended its stream with a BFINAL block
            zobj = self._restart()
        out = fresh = self._inflate(zobj, data, max_length)  # fresh: not yet in the window
        while zobj.eof and zobj.unused_data:
            # More input after a BFINAL block: a new deflate stream that keeps the window
            # (RFC 7692 §7.2.3.4's "f3 48 cd c9 c9 07 00 00").
            rest = zobj.unused_data
            self._remember(fresh)
            zobj = self._restart()
            fresh = self._inflate(zobj, rest, max_length - len(out))
            out += fresh
        self._remember(fresh)
        return out

    def _remember(self, out: bytes) -> None:
        if out:
            self._window = (self._window + out)[-(1 << self._wbits) :]

    def _restart(self) -> "zlib._Decompress":
        if self._window:
            self._zobj = zlib.decompressobj(-self._wbits, zdict=self._window)
        else:
            self._zobj = zlib.decompressobj(-self._wbits)
        return self._zobj

    def finish(self, max_length: int) -> bytes:
        """End a message: feed the stripped ``00 00 ff ff`` tail (RFC 7692 §7.2.2).

        Args:
            max_length: the most output bytes this call may return.

        Returns:
            The remaining output of the message (usually empty).

        Raises:
            PayloadTooBig, ProtocolError, TypeError, ValueError: as ``decompress``.
        """
        max_length = _check_max_length(max_length)
        if self._zobj.eof:
            return b""
        out = self._inflate(self._zobj, _TAIL, max_length)
        self._remember(out)
        return out

    def reset(self) -> None:
        """Drop the window and start a new stream (no context takeover, RFC 7692 §7.1.1)."""
        self._zobj = zlib.decompressobj(-self._wbits)
        self._window = b""

    @staticmethod
    def _inflate(zobj: zlib._Decompress, data: object, max_length: int) -> bytes:
        try:
            out = zobj.decompress(data, max_length + 1)  # type: ignore[arg-type]
        except zlib.error as exc:
            _, _, detail = str(exc).partition(": ")
            raise ProtocolError(f"invalid compressed data: {detail or exc}") from None
        if len(out) > max_length:
            raise PayloadTooBig(f"decompressed data exceeds the limit of {max_length} bytes")
        return out
