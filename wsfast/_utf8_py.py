"""Incremental strict UTF-8 validation (RFC 3629, RFC 6455 §8.1), pure Python.

Twin of the compiled ``wsfast._utf8`` (same API, messages and results; parity test:
``tests/test_speedups.py``). See ``wsfast._speedups`` for the API contract.

CPython's incremental UTF-8 decoder does the bulk of the work in C; this module only adds
what the contract needs on top of it:

* the exact failing byte. ``UnicodeDecodeError.start`` is the start of the bad sequence, not
  the byte that made it bad (``E1 41`` fails at ``41``, offset 1, not 0), so the sequence
  is re-examined from ``start`` with ``_first_bad``;
* an immediate failure for a bad *partial* sequence at the end of a chunk. The decoder keeps
  up to 3 trailing bytes pending without checking all of them (it accepts ``ED A0`` although
  no valid text starts like that: it is a surrogate), so those bytes are examined too.
"""

from __future__ import annotations

import codecs

__all__ = ["Utf8Validator"]

_Decoder = codecs.getincrementaldecoder("utf-8")

# RFC 3629 §4: allowed range of the second byte of a sequence, by lead byte; None for bytes
# that cannot start a sequence. The third and fourth bytes are always 80-BF.
_SECOND: list[tuple[int, int] | None] = [None] * 256
for _b in range(0xC2, 0xF5):
    _SECOND[_b] = (0x80, 0xBF)
_SECOND[0xE0] = (0xA0, 0xBF)  # no overlong 3-byte forms
_SECOND[0xED] = (0x80, 0x9F)  # no surrogates U+D800-U+DFFF
_SECOND[0xF0] = (0x90, 0xBF)  # no overlong 4-byte forms
_SECOND[0xF4] = (0x80, 0x8F)  # nothing above U+10FFFF
del _b


def _first_bad(data: bytes, start: int) -> int:
    """Index of the byte that invalidates the non-ASCII sequence at ``data[start]``, or -1.

    -1 means that ``data[start:]`` is a valid but incomplete sequence.
    """
    lead = data[start]
    second = _SECOND[lead]
    if second is None:
        return start
    size = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    lo, hi = second
    for i in range(start + 1, min(start + size, len(data))):
        if not lo <= data[i] <= hi:
            return i
        lo, hi = 0x80, 0xBF
    return -1


class Utf8Validator:
    """Incremental strict UTF-8 validator (RFC 3629; RFC 6455 §8.1).

    ``feed`` the text in pieces; ``complete`` says whether it may end here.
    """

    __slots__ = ("_decoder", "_failed")

    def __init__(self) -> None:
        self._decoder = _Decoder()
        self._failed = False

    def feed(self, data: object) -> int:
        """Validate the next chunk of text.

        Args:
            data: the chunk, any C-contiguous buffer.

        Returns:
            -1 while everything fed so far can still be valid UTF-8, else the offset in
            ``data`` of the first byte that makes it invalid. Once invalid, the validator
            stays failed and every later ``feed`` returns 0 (until ``reset``).

        Raises:
            TypeError: ``data`` is not a C-contiguous bytes-like object.
        """
        if type(data) is not bytes:
            try:
                view = memoryview(data)  # type: ignore[arg-type]
            except TypeError:
                view = None
            if view is None or not view.c_contiguous:
                raise TypeError(
                    "data must be a C-contiguous bytes-like object, "
                    f"not {type(data).__name__!r}"
                )
            data = view if view.format == "B" and view.ndim == 1 else view.cast("B")
        if self._failed:
            return 0
        decoder = self._decoder
        before = len(decoder.getstate()[0])  # pending bytes, already known to be a valid prefix
        try:
            decoder.decode(data, False)
        except UnicodeDecodeError as exc:
            bad = _first_bad(exc.object, exc.start)
            return self._fail((bad if bad >= 0 else exc.start) - before)
        pending = decoder.getstate()[0]
        if pending:
            bad = _first_bad(pending, 0)
            if bad >= 0:
                # pending is the tail of (old pending + data)
                return self._fail(len(data) - len(pending) + bad)
        return -1

    def _fail(self, offset: int) -> int:
        self._failed = True
        self._decoder.reset()
        return offset

    @property
    def complete(self) -> bool:
        """True if no multi-byte sequence is pending and nothing was invalid.

        The text fed so far is valid UTF-8 and may end here.
        """
        return not self._failed and not self._decoder.getstate()[0]

    def reset(self) -> None:
        """Forget everything fed so far (start a new text)."""
        self._decoder.reset()
        self._failed = False
