"""Pick the kernel implementation once, at import.

The kernels are small, with the same signature and behaviour in two builds:

================  ===================  ======================
kernel            compiled (Cython)    pure-Python twin
================  ===================  ======================
masking           ``wsfast._mask``     ``wsfast._mask_py``
UTF-8 validation  ``wsfast._utf8``     ``wsfast._utf8_py``
bounded inflate   ``wsfast._inflate``  ``wsfast._inflate_py``
frame encoding    ``wsfast._frame``    ``wsfast._frame_py``
================  ===================  ======================

Kernel API (identical in both builds)
-------------------------------------
``apply_mask(data, mask, phase=0) -> bytes``
    XOR ``data`` (any C-contiguous buffer) with the 4-byte ``mask``, starting at key byte
    ``phase`` (0–3), so a payload that arrives in pieces unmasks correctly:
    ``apply_mask(p[:k], m) + apply_mask(p[k:], m, k % 4) == apply_mask(p, m)``.
``apply_mask_inplace(buf, mask, phase=0) -> None``
    The same, in place, on a writable buffer (``bytearray``, writable ``memoryview``).
``Utf8Validator()``
    Incremental strict UTF-8 validator (RFC 3629: no overlongs, no surrogates, nothing above
    U+10FFFF). ``feed(data) -> int`` returns -1 while everything fed so far can still be
    valid UTF-8, else the offset *in this chunk* of the first byte that makes it invalid
    (the validator then stays failed). ``complete`` (property) is True when no multi-byte
    sequence is pending, i.e. the text can end here. ``reset()`` starts over.
``Inflater(wbits=15)``
    Raw-deflate decompressor for RFC 7692 (``wbits`` 8–15) with a bounded output.
    ``decompress(data, max_length) -> bytes`` inflates a chunk of compressed input and raises
    ``PayloadTooBig`` if the output would exceed ``max_length`` bytes (without allocating
    beyond ``max_length``). ``finish(max_length) -> bytes`` feeds the ``00 00 ff ff`` tail
    that RFC 7692 §7.2.2 strips at the end of a message and returns the remaining output.
    ``reset()`` drops the window (no context takeover).

``FrameEncoder(masked)``
    ``encode(b0, payload) -> bytes`` builds a whole frame (header, masking key from a pool
    of ``os.urandom`` bytes when ``masked``, payload) in one allocation; ``header(b0, n)``
    gives just the header of an unmasked frame, so large payloads are sent uncopied.

``WSFAST_NO_EXTENSIONS=1`` forces the twins; ``WSFAST_REQUIRE_EXTENSIONS=1`` makes a missing
compiled build an ``ImportError``. ``IMPLEMENTATION`` says which one is active.
"""

from __future__ import annotations

from ._env import NO_EXTENSIONS as _NO_EXT
from ._env import REQUIRE_EXTENSIONS as _REQUIRE

__all__ = ["IMPLEMENTATION", "PARSER_IMPLEMENTATION", "apply_mask", "apply_mask_inplace", "Utf8Validator", "Inflater", "FrameEncoder", "Parser"]

IMPLEMENTATION: str
if _NO_EXT:
    from ._frame_py import FrameEncoder
    from ._inflate_py import Inflater
    from ._mask_py import apply_mask, apply_mask_inplace
    from ._utf8_py import Utf8Validator

    IMPLEMENTATION = "python"
else:
    try:
        from ._frame import FrameEncoder
        from ._inflate import Inflater
        from ._mask import apply_mask, apply_mask_inplace
        from ._utf8 import Utf8Validator

        IMPLEMENTATION = "cython"
    except ImportError:
        if _REQUIRE:
            raise
        from ._frame_py import FrameEncoder
        from ._inflate_py import Inflater
        from ._mask_py import apply_mask, apply_mask_inplace
        from ._utf8_py import Utf8Validator

        IMPLEMENTATION = "python"

# The frame parser is wsfast/_parser.py; the compiled build is the same source compiled as
# wsfast._parser_c. It follows the kernels' choice (imported last: it uses the names above).
if IMPLEMENTATION == "cython":
    try:
        from ._parser_c import Parser
    except ImportError:
        if _REQUIRE:
            raise
        from ._parser import Parser
else:
    from ._parser import Parser

from .events import TextMessage as _TextMessage  # noqa: E402

#: Which build of the parser and of the per-message events is active: "cython" or "python".
PARSER_IMPLEMENTATION = (
    "cython"
    if Parser.__module__ == "wsfast._parser_c" and _TextMessage.__module__ == "wsfast._messages_c"
    else "python"
)
