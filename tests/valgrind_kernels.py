"""Exercise every compiled kernel path once, for memory checking under valgrind.

Run from the repository root after building the extensions in place::

    PYTHONMALLOC=malloc valgrind --error-exitcode=99 --leak-check=full \\
        --show-leak-kinds=definite --errors-for-leak-kinds=definite \\
        python tests/valgrind_kernels.py

CPython itself reports a few errors under valgrind (uninitialised reads in the interpreter
at startup and import). To filter them, record them first with ``--baseline``, which imports
the same modules and does nothing else, and pass the result to the real run::

    PYTHONMALLOC=malloc valgrind --gen-suppressions=all python tests/valgrind_kernels.py \
        --baseline 2>&1 | awk '/^{/,/^}/' > /tmp/cpython.supp
    PYTHONMALLOC=malloc valgrind --suppressions=/tmp/cpython.supp ... (as above)

It covers the boundary sizes, every key phase and unaligned buffers for masking; every
class of invalid UTF-8 around the 8/32-byte ASCII paths and the 4-stream windows; and
bounded inflate with caps below/at/above the output, chunking, bombs, corrupt input, final
blocks and resets. It imports the compiled modules directly and fails if they are missing.
Exit status 0 and "kernels ok" on success (valgrind's own status reports memory errors).
"""

from __future__ import annotations

import os
import random
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wsfast import _inflate, _mask, _utf8  # noqa: E402  (compiled builds only)
from wsfast.exceptions import PayloadTooBig, ProtocolError  # noqa: E402

SIZES = [*range(10), 15, 16, 17, 31, 32, 33, 63, 64, 65, 4095, 4096, 4097, 65536, 65537,
         300000]
TAIL = b"\x00\x00\xff\xff"


def ref_mask(data: bytes, mask: bytes, phase: int) -> bytes:
    return bytes(b ^ mask[(phase + i) % 4] for i, b in enumerate(data))


def check_mask() -> None:
    rnd = random.Random(1)
    mask = b"\x37\xfa\x21\x3d"
    for size in SIZES:
        data = rnd.randbytes(size)
        for phase in range(4):
            expected = ref_mask(data, mask, phase) if size < 70000 else None
            out = _mask.apply_mask(data, mask, phase)
            assert expected is None or out == expected
            for offset in (1, 3, 7):
                backing = bytearray(offset) + bytearray(data) + bytearray(3)
                view = memoryview(backing)[offset : offset + size]
                assert _mask.apply_mask(view, bytearray(mask), phase) == out
                _mask.apply_mask_inplace(view, memoryview(mask), phase)
                assert view == out
                assert backing[:offset] == bytes(offset) and backing[-3:] == bytes(3)
    for bad in [("x", mask), (b"x", "mask"), (b"x", b"abc"), (b"x", mask, 7), (b"x", mask, "1"),
                (memoryview(b"abcd")[::2], mask)]:
        try:
            _mask.apply_mask(*bad)
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError(bad)
    try:
        _mask.apply_mask_inplace(b"readonly", mask)
    except TypeError:
        pass


def check_utf8() -> None:
    bad_sequences = [b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
                     b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
                     b"\xf4\x90\x80\x80", b"\xf5", b"\xff", b"\x80", b"\xbf", b"\xe2\x82A",
                     b"\xf0\x9f\x98A"]
    text = "ab€d𝄞é-x".encode()
    for seq in bad_sequences:
        for run in range(0, 70, 3):
            data = b"x" * run + seq + text
            v = _utf8.Utf8Validator()
            assert v.feed(data) >= run
            assert v.feed(b"more") == 0 and not v.complete
        for pos in range(len(text) + 1):
            _utf8.Utf8Validator().feed(text[:pos] + seq + text[pos:])
    long_text = ("Liberté, égalité. Привет, мир! 你好 😀 " * 400).encode()
    for size in SIZES:
        chunk = (long_text * (size // len(long_text) + 1))[:size]
        v = _utf8.Utf8Validator()
        v.feed(chunk)
        for cut in (0, 1, size // 2, size):
            v = _utf8.Utf8Validator()
            v.feed(memoryview(chunk)[:cut])
            v.feed(bytearray(chunk[cut:]))
    rnd = random.Random(2)
    for _ in range(200):
        pos = rnd.randrange(len(long_text))
        corrupted = long_text[:pos] + bytes([rnd.randrange(256)]) + long_text[pos + 1 :]
        v = _utf8.Utf8Validator()
        v.feed(corrupted)
        v.reset()
    for bad in ("text", None, memoryview(b"abcd")[::2]):
        try:
            _utf8.Utf8Validator().feed(bad)
        except TypeError:
            pass


def deflate(data: bytes, wbits: int = 15, final: bool = False) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    if final:
        return c.compress(data) + c.flush()
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def check_inflate() -> None:
    rnd = random.Random(3)
    words = [bytes(rnd.choices(b"abcdef", k=rnd.randint(1, 8))) for _ in range(50)]
    for size in SIZES:
        data = b" ".join(rnd.choice(words) for _ in range(size // 4 + 1))[:size]
        for wbits in (8, 9, 15):
            z = deflate(data, max(wbits, 9))
            for cap in (max(size - 1, 0), size, size + 1):
                inflater = _inflate.Inflater(wbits)
                try:
                    out = inflater.decompress(z[: len(z) // 2], cap)
                    out += inflater.decompress(memoryview(z)[len(z) // 2 :], cap - len(out))
                    out += inflater.finish(cap)
                    assert out == data
                except PayloadTooBig:
                    assert cap < size
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = b"".join(c.compress(bytes(1 << 20)) for _ in range(10)) + c.flush(zlib.Z_SYNC_FLUSH)
    for cap in (0, 1000, 1 << 20):
        try:
            _inflate.Inflater().decompress(bomb, cap)
        except PayloadTooBig:
            pass
        else:
            raise AssertionError("bomb")
    inflater = _inflate.Inflater()
    corrupt_inputs = (b"\xff\xff\xff\xff", b"\x00\x05\x00\x00\x00",
                      deflate(b"hello", final=True) + b"x")
    for corrupt in corrupt_inputs:
        try:
            inflater.decompress(corrupt, 1000)
        except ProtocolError:
            inflater.reset()
    assert inflater.decompress(deflate(b"hi", final=True), 10) == b"hi"
    assert inflater.finish(10) == b""
    assert inflater.decompress(deflate(b"again"), 10) + inflater.finish(10) == b"again"
    for bad in [("x", 1), (b"", -1), (b"", None)]:
        try:
            inflater.decompress(*bad)
        except (TypeError, ValueError):
            pass
    for wbits in (7, 16, "15"):
        try:
            _inflate.Inflater(wbits)
        except (TypeError, ValueError):
            pass
    # Objects dropped mid-stream are freed (inflateEnd in __dealloc__).
    for _ in range(20):
        _inflate.Inflater().decompress(deflate(b"abc" * 1000)[:100], 10000)


def main() -> None:
    if sys.argv[1:] == ["--baseline"]:
        return
    check_mask()
    check_utf8()
    check_inflate()
    print("kernels ok")


if __name__ == "__main__":
    main()
