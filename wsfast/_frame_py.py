"""Pure-Python twin of ``wsfast._frame`` (same API, same bytes). See _frame.pyx."""

from __future__ import annotations

from os import urandom
from typing import Callable

from ._mask_py import apply_mask

_POOL = 4096


class FrameEncoder:
    """Encodes frames; ``masked=True`` for a client (every frame masked)."""

    __slots__ = ("masked", "_pool", "_pos", "_entropy")

    def __init__(self, masked: bool, entropy: Callable[[int], bytes] = urandom) -> None:
        # ``entropy(n)`` returns n random bytes; tests pass a deterministic one.
        self.masked = bool(masked)
        self._entropy = entropy
        self._pool = b""
        self._pos = _POOL

    def encode(self, b0: int, payload: bytes) -> bytes:
        """One complete frame: first byte ``b0`` (FIN|RSV|opcode), then ``payload``."""
        if not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        if not 0 <= b0 <= 255:
            raise ValueError("b0 must be a byte")
        n = len(payload)
        m = 0x80 if self.masked else 0
        if n < 126:
            header = bytes((b0, m | n))
        elif n < 65536:
            header = bytes((b0, m | 126, n >> 8, n & 0xFF))
        else:
            header = bytes((b0, m | 127)) + n.to_bytes(8, "big")
        if not self.masked:
            return header + payload
        pos = self._pos
        if pos >= _POOL:
            pool = self._entropy(_POOL)
            if type(pool) is not bytes or len(pool) != _POOL:
                raise ValueError("entropy(n) must return n bytes")
            self._pool = pool
            pos = 0
        self._pos = pos + 4
        key = self._pool[pos : pos + 4]
        return header + key + apply_mask(payload, key)

    def header(self, b0: int, n: int) -> bytes:
        """Only the header of an unmasked frame carrying ``n`` bytes."""
        if self.masked:
            raise ValueError("header() is for unmasked frames")
        if n < 0:
            raise ValueError("n must be non-negative")
        if n < 126:
            return bytes((b0, n))
        if n < 65536:
            return bytes((b0, 126, n >> 8, n & 0xFF))
        return bytes((b0, 127)) + n.to_bytes(8, "big")
