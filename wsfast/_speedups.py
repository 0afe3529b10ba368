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
``Deflater(level=6, wbits=15, mem_level=8)``
    Raw-deflate compressor for RFC 7692. ``compress(data, final) -> bytes`` compresses one
    frame's payload and sync-flushes it; for a message's final frame it drops the
    ``00 00 ff ff`` tail (§7.2.1) and returns ``00`` rather than nothing (§7.2.3.6).

``FrameEncoder(masked)``
    ``encode(b0, payload) -> bytes`` builds a whole frame (header, masking key from a pool
    of ``os.urandom`` bytes when ``masked``, payload) in one allocation; ``header(b0, n)``
    gives just the header of an unmasked frame, so large payloads are sent uncopied.

``WSFAST_NO_EXTENSIONS=1`` forces the twins; ``WSFAST_REQUIRE_EXTENSIONS=1`` makes a missing
compiled build an ``ImportError``. ``IMPLEMENTATION`` says which one is active.

Deflate backend
---------------
``Inflater`` and ``Deflater`` run on one of two libraries of the same format, chosen once here:
zlib-ng where available (measured 1.5x the compress+inflate round trips of zlib on 1 KiB JSON
at the same level and ratio), else the standard library's zlib. In order of preference:

==========  ==========================  =================================================
backend     build                       from
==========  ==========================  =================================================
zlib-ng     compiled                    ``wsfast._inflate_ng``: the kernel built against a
                                        static zlib-ng (``ZLIBNG_ROOT``, setup.py); no
                                        run-time dependency
zlib-ng     twin over ``zlib_ng``       the optional `zlib-ng` package (python-zlib-ng),
                                        when the above is not built or extensions are off
zlib        the kernel build            ``wsfast._inflate`` / ``wsfast._inflate_py``
==========  ==========================  =================================================

``WSFAST_DEFLATE=zlib`` or ``WSFAST_DEFLATE=zlib-ng`` forces one (``zlib-ng`` unavailable is
an ``ImportError``); unset or ``auto`` picks as above. ``DEFLATE_BACKEND`` ("zlib" or
"zlib-ng"), ``DEFLATE_IMPLEMENTATION`` ("cython" or "python": the build of the classes) and
``DEFLATE_LIBRARY_VERSION`` say what is active.
"""

from __future__ import annotations

import os as _os
from typing import TYPE_CHECKING, Any, Tuple

from ._env import NO_EXTENSIONS as _NO_EXT
from ._env import REQUIRE_EXTENSIONS as _REQUIRE

__all__ = [
    "IMPLEMENTATION",
    "PARSER_IMPLEMENTATION",
    "core_implementation",
    "DEFLATE_BACKEND",
    "DEFLATE_IMPLEMENTATION",
    "DEFLATE_LIBRARY_VERSION",
    "deflate_classes",
    "apply_mask",
    "apply_mask_inplace",
    "Utf8Validator",
    "Inflater",
    "Deflater",
    "FrameEncoder",
    "Parser",
]

IMPLEMENTATION: str
DEFLATE_BACKEND: str
DEFLATE_IMPLEMENTATION: str
DEFLATE_LIBRARY_VERSION: str

if TYPE_CHECKING:
    # The twins define the API (the compiled modules' .pyi stubs say the same).
    from ._frame_py import FrameEncoder
    from ._inflate_py import Deflater, Inflater
    from ._mask_py import apply_mask, apply_mask_inplace
    from ._parser import Parser
    from ._utf8_py import Utf8Validator
else:
    if _NO_EXT:
        from ._frame_py import FrameEncoder
        from ._inflate_py import Deflater, Inflater
        from ._mask_py import apply_mask, apply_mask_inplace
        from ._utf8_py import Utf8Validator

        IMPLEMENTATION = "python"
    else:
        try:
            from ._frame import FrameEncoder
            from ._inflate import Deflater, Inflater
            from ._mask import apply_mask, apply_mask_inplace
            from ._utf8 import Utf8Validator

            IMPLEMENTATION = "cython"
        except ImportError:
            if _REQUIRE:
                raise
            from ._frame_py import FrameEncoder
            from ._inflate_py import Deflater, Inflater
            from ._mask_py import apply_mask, apply_mask_inplace
            from ._utf8_py import Utf8Validator

            IMPLEMENTATION = "python"

    # -- the deflate backend (see "Deflate backend" above) -------------------------------------
    _DEFLATE_WANTED = _os.environ.get("WSFAST_DEFLATE", "").strip().lower() or "auto"
    if _DEFLATE_WANTED not in ("auto", "zlib", "zlib-ng"):
        raise ImportError(f"WSFAST_DEFLATE must be auto, zlib or zlib-ng, not {_DEFLATE_WANTED!r}")
    DEFLATE_BACKEND = "zlib"
    DEFLATE_IMPLEMENTATION = IMPLEMENTATION
    if _DEFLATE_WANTED != "zlib":
        try:
            if IMPLEMENTATION != "cython":
                raise ImportError("the compiled kernels are off")
            from ._inflate_ng import LIBRARY_VERSION as DEFLATE_LIBRARY_VERSION
            from ._inflate_ng import Deflater, Inflater

            DEFLATE_BACKEND, DEFLATE_IMPLEMENTATION = "zlib-ng", "cython"
        except ImportError:
            try:
                from ._inflate_py import zlib_ng_classes

                Inflater, Deflater, DEFLATE_LIBRARY_VERSION = zlib_ng_classes()
                DEFLATE_BACKEND, DEFLATE_IMPLEMENTATION = "zlib-ng", "python"
            except ImportError as exc:
                if _DEFLATE_WANTED == "zlib-ng":
                    raise ImportError(
                        "WSFAST_DEFLATE=zlib-ng, but wsfast._inflate_ng is not built and the "
                        f"zlib-ng package is not installed ({exc})"
                    ) from exc
    if DEFLATE_BACKEND == "zlib":
        if IMPLEMENTATION == "cython":
            from ._inflate import LIBRARY_VERSION as DEFLATE_LIBRARY_VERSION
        else:
            from ._inflate_py import LIBRARY_VERSION as DEFLATE_LIBRARY_VERSION

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


def deflate_classes(backend: str) -> Tuple[Any, Any]:
    """``(Inflater, Deflater)`` on ``backend`` ("zlib" or "zlib-ng"), in the active kernel build
    (the compiled kernel on that library, else the twin; for zlib-ng the twin needs the
    `zlib-ng` package). For a per-connection choice (``permessage_deflate``'s ``backend``).

    Raises:
        ValueError: unknown backend.
        ImportError: that backend is not available here.
    """
    if backend == DEFLATE_BACKEND:
        return Inflater, Deflater
    if backend == "zlib":
        if IMPLEMENTATION == "cython":
            from . import _inflate

            return _inflate.Inflater, _inflate.Deflater
        from . import _inflate_py

        return _inflate_py.Inflater, _inflate_py.Deflater
    if backend == "zlib-ng":
        if IMPLEMENTATION == "cython":
            try:
                from . import _inflate_ng

                return _inflate_ng.Inflater, _inflate_ng.Deflater
            except ImportError:
                pass
        from ._inflate_py import zlib_ng_classes

        inflater, deflater, _ = zlib_ng_classes()
        return inflater, deflater
    raise ValueError(f"backend must be 'zlib' or 'zlib-ng', not {backend!r}")


from .events import TextMessage as _TextMessage  # noqa: E402

#: Which build of the parser and of the per-message events is active: "cython" or "python".
PARSER_IMPLEMENTATION = (
    "cython"
    if Parser.__module__ == "wsfast._parser_c" and _TextMessage.__module__ == "wsfast._messages_c"
    else "python"
)


def core_implementation() -> str:
    """Which build of the engine and the adapters' driver (``wsfast._env.COMPILED_IN_PLACE``:
    ``wsfast.connection``, ``wsfast.handler``, ...) is active: "cython" when every one of them
    was loaded compiled, "python" when none was, "mixed" otherwise (a partial build). A
    function, not a constant: those modules import this one."""
    import importlib

    from ._env import COMPILED_IN_PLACE, is_compiled

    flags = {is_compiled(importlib.import_module(name)) for name in COMPILED_IN_PLACE}
    return "mixed" if len(flags) > 1 else ("cython" if flags == {True} else "python")
