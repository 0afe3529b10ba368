"""Bounded raw-deflate decompression and per-frame compression for permessage-deflate
(RFC 7692), pure Python.

Twin of the compiled ``wsfast._inflate`` (same API, messages and results; parity tests:
``tests/test_speedups.py``, ``tests/test_deflate_backends.py``). See ``wsfast._speedups`` for
the API contract and ``wsfast/_inflate.pyx`` for the semantics in detail.

The bound comes from ``zlib.decompressobj().decompress(data, max_length + 1)``: zlib stops
after ``max_length + 1`` bytes of output (and allocates no more than that), so getting that
many means the output is too big.

``Inflater`` and ``Deflater`` use the standard library's ``zlib``; ``zlib_ng_classes()``
returns the same two classes on the ``zlib_ng`` module of the optional `zlib-ng` package
(python-zlib-ng, the same API over zlib-ng), for the zlib-ng backend where the compiled
``wsfast._inflate_ng`` is not built.
"""

from __future__ import annotations

import functools
import sys
import zlib
from types import ModuleType
from typing import Any, ClassVar, Tuple, Type

from .exceptions import PayloadTooBig, ProtocolError

__all__ = ["Inflater", "Deflater", "BACKEND", "LIBRARY_VERSION", "zlib_ng_classes"]

#: The deflate library these classes use: "zlib" (``zlib_ng_classes()``: "zlib-ng").
BACKEND = "zlib"
#: Its version, as the library reports it at run time.
LIBRARY_VERSION: str = zlib.ZLIB_RUNTIME_VERSION

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
    #: The zlib API module: ``zlib`` or ``zlib_ng.zlib_ng`` (see ``zlib_ng_classes``).
    _z: ClassVar[Any] = zlib

    def __init__(self, wbits: int = 15) -> None:
        # zlib refuses a raw window of 8 bits; 9 bits inflate anything a smaller window made.
        self._wbits = max(_check_wbits(wbits), 9)
        self._zobj = self._z.decompressobj(-self._wbits)
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
        if zobj.eof:
            # The stream ended with a BFINAL block: new input starts a new one. An empty
            # chunk (e.g. an empty last frame) does not: finish() must still see the end,
            # and unused_data (a dropped tail, see finish) is never input.
            if not len(data):  # type: ignore[arg-type]
                return b""
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

    def _restart(self) -> Any:
        if self._window:
            self._zobj = self._z.decompressobj(-self._wbits, zdict=self._window)
        else:
            self._zobj = self._z.decompressobj(-self._wbits)
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
        # If the stream ends inside the tail, the rest of the tail stays in unused_data: it is
        # not the sender's data (RFC 7692 §7.2.2 appends it), so it is dropped, and the next
        # message starts a new stream (decompress sees eof).
        out = self._inflate(self._zobj, _TAIL, max_length)
        self._remember(out)
        return out

    def reset(self) -> None:
        """Drop the window and start a new stream (no context takeover, RFC 7692 §7.1.1)."""
        self._zobj = self._z.decompressobj(-self._wbits)
        self._window = b""

    def _inflate(self, zobj: Any, data: object, max_length: int) -> bytes:
        try:
            out: bytes = zobj.decompress(data, max_length + 1)
        except self._z.error as exc:
            _, _, detail = str(exc).partition(": ")
            raise ProtocolError(f"invalid compressed data: {detail or exc}") from None
        if len(out) > max_length:
            raise PayloadTooBig(f"decompressed data exceeds the limit of {max_length} bytes")
        return out


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value!r}")
    return value


class Deflater:
    """Raw-deflate compressor for the messages one side sends (RFC 7692 §7.2.1).

    Args:
        level: the compression level, -1 (the library's default) or 0-9.
        wbits: the LZ77 window size, 8-15 (8 compresses with 9 bits: see
            ``wsfast.permessage_deflate``, "Window bits 8").
        mem_level: the memory level, 1-9 (hash table and symbol buffer sizes).

    Raises:
        TypeError: an argument is not an int.
        ValueError: an argument is out of range.
    """

    __slots__ = ("_zobj",)
    _z: ClassVar[Any] = zlib

    def __init__(self, level: int = 6, wbits: int = 15, mem_level: int = 8) -> None:
        _check_int("level", level, -1, 9)
        _check_int("wbits", wbits, 8, 15)
        _check_int("mem_level", mem_level, 1, 9)
        z = self._z
        self._zobj = z.compressobj(level, z.DEFLATED, -max(wbits, 9), mem_level)

    def compress(self, data: object, final: bool) -> bytes:
        """Compress one frame's payload and flush it (Z_SYNC_FLUSH).

        Args:
            data: the payload, any C-contiguous buffer.
            final: this is the message's last frame: drop the ``00 00 ff ff`` the flush ends
                with (§7.2.1); an empty result is then ``00`` (§7.2.3.6).

        Returns:
            The frame's compressed payload.

        Raises:
            TypeError: ``data`` is not a C-contiguous buffer.
        """
        zobj = self._zobj
        out: bytes = zobj.compress(_check_data(data)) + zobj.flush(_Z_SYNC_FLUSH)
        if final:
            if out.endswith(_TAIL):
                out = out[:-4]
            if not out:
                out = b"\x00"
        return out


_Z_SYNC_FLUSH = zlib.Z_SYNC_FLUSH


@functools.cache
def zlib_ng_classes() -> Tuple[Type[Inflater], Type[Deflater], str]:
    """The twin's ``Inflater`` and ``Deflater`` on python-zlib-ng, and zlib-ng's version.

    Raises:
        ImportError: the optional `zlib-ng` package is not installed.
    """
    from zlib_ng import zlib_ng as zng

    module: ModuleType = zng

    class NgInflater(Inflater):
        __slots__ = ()
        _z = module

    class NgDeflater(Deflater):
        __slots__ = ()
        _z = module

    NgInflater.__name__ = NgInflater.__qualname__ = "Inflater"
    NgDeflater.__name__ = NgDeflater.__qualname__ = "Deflater"
    return NgInflater, NgDeflater, str(zng.ZLIBNG_RUNTIME_VERSION)
