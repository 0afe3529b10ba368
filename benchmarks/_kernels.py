"""Group ``kernels``: masking, UTF-8 validation and bounded inflate, call by call.

Every implementation is checked once against an independent reference (big-integer XOR,
``bytes.decode``, ``zlib``) before it is timed. Arguments are bound as default arguments
of the timing loop so each call costs the same loop overhead for everybody.
"""

from __future__ import annotations

import json
import random
import zlib
from itertools import repeat

from _bench import Case, Registry, Skip, Target

SIZES = [(16, "16 B"), (1024, "1 KiB"), (64 * 1024, "64 KiB"), (1 << 20, "1 MiB")]
MASK = b"\x37\xfa\x21\x3d"
TAIL = b"\x00\x00\xff\xff"


def ref_mask(data: bytes, mask: bytes) -> bytes:
    """Reference XOR masking (independent of every implementation under test)."""
    n = len(data)
    if not n:
        return b""
    keys = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")).to_bytes(n, "little")


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(f"wrong result: {what}")


def _loop2(f, a, b):
    def run(n, f=f, a=a, b=b, repeat=repeat):
        for _ in repeat(None, n):
            f(a, b)

    return run


def _loop1(f, a):
    def run(n, f=f, a=a, repeat=repeat):
        for _ in repeat(None, n):
            f(a)

    return run


# ----------------------------------------------------------------------------- masking


def _mask_copy_case(size: int, label: str) -> Case:
    data = random.Random(size).randbytes(size)
    expected = ref_mask(data, MASK)

    def wsfast():
        from wsfast._speedups import apply_mask

        _check(apply_mask(data, MASK) == expected, "wsfast apply_mask")
        return _loop2(apply_mask, data, MASK)

    def wsfast_py():
        from wsfast._mask_py import apply_mask

        _check(apply_mask(data, MASK) == expected, "wsfast._mask_py.apply_mask")
        return _loop2(apply_mask, data, MASK)

    def websockets():
        try:
            from websockets.speedups import apply_mask
        except ImportError as exc:
            raise Skip(f"websockets C speedups not built ({exc})")
        _check(apply_mask(data, MASK) == expected, "websockets.speedups.apply_mask")
        return _loop2(apply_mask, data, MASK)

    def aiohttp():
        try:
            from aiohttp._websocket.mask import _websocket_mask_cython as f
        except ImportError as exc:
            raise Skip(f"aiohttp compiled mask not available ({exc})")
        ba = bytearray(data)
        f(MASK, ba)
        _check(bytes(ba) == expected, "aiohttp _websocket_mask_cython")

        # aiohttp masks in place; a masked copy is bytearray(data) + mask, as its writer does.
        def run(n, f=f, d=data, m=MASK, bytearray=bytearray, repeat=repeat):
            for _ in repeat(None, n):
                f(m, bytearray(d))

        return run

    def wsaccel():
        try:
            from wsaccel.xormask import XorMaskerSimple
        except ImportError as exc:
            raise Skip(f"wsaccel not installed ({exc})")
        _check(bytes(XorMaskerSimple(MASK).process(data)) == expected, "wsaccel XorMaskerSimple")

        def run(n, M=XorMaskerSimple, d=data, m=MASK, repeat=repeat):
            for _ in repeat(None, n):
                M(m).process(d)

        return run

    def wsproto():
        try:
            from wsproto.frame_protocol import XorMaskerSimple
        except ImportError as exc:
            raise Skip(f"wsproto not installed ({exc})")
        _check(bytes(XorMaskerSimple(MASK).process(data)) == expected, "wsproto XorMaskerSimple")

        def run(n, M=XorMaskerSimple, d=data, m=MASK, repeat=repeat):
            for _ in repeat(None, n):
                M(m).process(d)

        return run

    def memcpy():
        src = bytearray(data)
        _check(bytes(src) == data, "bytes(bytearray)")
        return _loop1(bytes, src)  # one allocation + one memcpy of `size` bytes

    unit, work = ("Mcall/s", 1e-6) if size < 1024 else ("MB/s", size / 1e6)
    return Case(
        "kernels",
        f"mask copy {label}",
        unit,
        work,
        {"wsfast": wsfast, "wsfast-py": wsfast_py, "websockets": websockets, "aiohttp": aiohttp,
         "wsaccel": wsaccel, "wsproto": wsproto, "memcpy": memcpy},
        note="new bytes out; aiohttp = bytearray(data) + in-place mask; memcpy = bytes(bytearray)",
    )


def _mask_inplace_case(size: int, label: str) -> Case:
    data = random.Random(size + 1).randbytes(size)
    expected = ref_mask(data, MASK)

    def wsfast():
        from wsfast._speedups import apply_mask_inplace

        ba = bytearray(data)
        apply_mask_inplace(ba, MASK)
        _check(ba == expected, "wsfast apply_mask_inplace")
        return _loop2(apply_mask_inplace, ba, MASK)

    def wsfast_py():
        from wsfast._mask_py import apply_mask_inplace

        ba = bytearray(data)
        apply_mask_inplace(ba, MASK)
        _check(ba == expected, "wsfast._mask_py.apply_mask_inplace")
        return _loop2(apply_mask_inplace, ba, MASK)

    def aiohttp():
        try:
            from aiohttp._websocket.mask import _websocket_mask_cython as f
        except ImportError as exc:
            raise Skip(f"aiohttp compiled mask not available ({exc})")
        ba = bytearray(data)
        f(MASK, ba)
        _check(ba == expected, "aiohttp _websocket_mask_cython")
        return _loop2(f, MASK, ba)

    def memcpy():
        ba = bytearray(size)
        src = bytearray(data)  # a bytes source would be copied to a temporary bytearray first
        ba[:] = src
        _check(ba == data, "ba[:] = src")

        def run(n, ba=ba, src=src, repeat=repeat):
            for _ in repeat(None, n):
                ba[:] = src  # same-size slice assignment from a bytearray: one memcpy, no allocation

        return run

    unit, work = ("Mcall/s", 1e-6) if size < 1024 else ("MB/s", size / 1e6)
    return Case(
        "kernels",
        f"mask in-place {label}",
        unit,
        work,
        {"wsfast": wsfast, "wsfast-py": wsfast_py, "aiohttp": aiohttp, "memcpy": memcpy},
        note="XOR a bytearray in place; memcpy = ba[:] = src (both bytearrays, same size)",
    )


# ----------------------------------------------------------------------------- UTF-8


def ascii_text(size: int) -> bytes:
    rng = random.Random(1)
    words = ["alpha", "beta", "gamma", "delta", "price", "qty", "id", "true", "null", "42.5"]
    out = []
    n = 0
    while n < size:
        w = rng.choice(words) + rng.choice([" ", ", ", '": "', "\n"])
        out.append(w)
        n += len(w)
    return "".join(out).encode()[:size]


def mixed_text(size: int) -> bytes:
    """Random characters, a quarter each 1-, 2-, 3- and 4-byte sequences, cut at a boundary."""
    rng = random.Random(2)
    ranges = [(0x20, 0x7E), (0xA0, 0x7FF), (0x800, 0xD7FF), (0x10000, 0x10FFFF)]
    chars = []
    n = 0
    while n <= size:
        lo, hi = ranges[rng.randrange(4)]
        c = chr(rng.randint(lo, hi))
        chars.append(c)
        n += len(c.encode())
    raw = "".join(chars).encode()
    cut = size
    while cut > 0 and (raw[cut] & 0xC0) == 0x80:
        cut -= 1
    return raw[:cut]


def _utf8_case(name: str, data: bytes) -> Case:
    text = data.decode("utf-8")

    def wsfast():
        from wsfast._speedups import Utf8Validator

        v = Utf8Validator()
        _check(v.feed(data) == -1 and v.complete, "wsfast Utf8Validator")

        def run(n, V=Utf8Validator, d=data, repeat=repeat):
            for _ in repeat(None, n):
                V().feed(d)

        return run

    def wsfast_py():
        from wsfast._utf8_py import Utf8Validator

        v = Utf8Validator()
        _check(v.feed(data) == -1 and v.complete, "wsfast._utf8_py.Utf8Validator")

        def run(n, V=Utf8Validator, d=data, repeat=repeat):
            for _ in repeat(None, n):
                V().feed(d)

        return run

    def decode():
        _check(data.decode("utf-8") == text, "bytes.decode")

        def run(n, d=data, repeat=repeat):
            for _ in repeat(None, n):
                d.decode("utf-8")

        return run

    def wsaccel():
        try:
            from wsaccel.utf8validator import Utf8Validator
        except ImportError as exc:
            raise Skip(f"wsaccel not installed ({exc})")
        _check(Utf8Validator().validate(data)[0] is True, "wsaccel Utf8Validator")

        def run(n, V=Utf8Validator, d=data, repeat=repeat):
            for _ in repeat(None, n):
                V().validate(d)

        return run

    return Case(
        "kernels",
        name,
        "MB/s",
        len(data) / 1e6,
        {"wsfast": wsfast, "wsfast-py": wsfast_py, "decode": decode, "wsaccel": wsaccel},
        note="fresh validator per call; decode = bytes.decode('utf-8') (validates and builds a str)",
    )


# ----------------------------------------------------------------------------- inflate


def json_messages(count: int, approx: int, seed: int) -> list:
    """``count`` JSON-like strings of about ``approx`` characters each (same structure, new values)."""
    rng = random.Random(seed)
    msgs = []
    for i in range(count):
        items = []
        s = 2
        while s < approx - 20:
            item = {"type": rng.choice(["trade", "quote", "book"]), "symbol": rng.choice(["BTCUSD", "ETHUSD", "SOLUSD"]),
                    "price": round(rng.uniform(1, 5e4), 2), "qty": round(rng.random(), 6), "id": rng.randrange(10 ** 9),
                    "side": rng.choice(["buy", "sell"]), "ts": 1700000000000 + rng.randrange(10 ** 7)}
            enc = json.dumps(item)
            if s + len(enc) + 2 > approx and items:
                break
            items.append(enc)
            s += len(enc) + 2
        msg = "[" + ", ".join(items) + "]"
        msgs.append(msg + " " * max(0, approx - len(msg)))
    return msgs


def _deflate_stream(messages: list) -> list:
    """Compress messages as a permessage-deflate sender with context takeover does (RFC 7692 §7.2.1)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
    out = []
    for m in messages:
        data = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TAIL)
        out.append(data[:-4])
    return out


def _inflate_case(name: str, plain: list, unit: str, work: float) -> Case:
    comp = _deflate_stream(plain)
    limit = 4 * max(len(p) for p in plain)

    def _ours(module: str):
        def factory():
            import importlib

            Inflater = importlib.import_module(module).Inflater
            inf = Inflater()
            got = [inf.decompress(c, limit) + inf.finish(limit) for c in comp]
            _check(got == plain, f"{module}.Inflater")

            def run(n, Inflater=Inflater, comp=comp, limit=limit, repeat=repeat):
                for _ in repeat(None, n):
                    inf = Inflater()
                    d, f = inf.decompress, inf.finish
                    for c in comp:
                        d(c, limit)
                        f(limit)

            return run

        return factory

    def zlib_():
        z = zlib.decompressobj(-15)
        got = [z.decompress(c) + z.decompress(TAIL) for c in comp]
        _check(got == plain, "zlib.decompressobj")

        def run(n, D=zlib.decompressobj, comp=comp, tail=TAIL, repeat=repeat):
            for _ in repeat(None, n):
                d = D(-15).decompress
                for c in comp:
                    d(c)
                    d(tail)

        return run

    return Case(
        "kernels",
        name,
        unit,
        work,
        {"wsfast": _ours("wsfast._speedups"), "wsfast-py": _ours("wsfast._inflate_py"), "zlib": zlib_},
        note="one decompressor per stream (context takeover); wsfast: decompress(c, max_length) + "
             "finish(max_length); zlib: decompress(c) + decompress(00 00 ff ff), unbounded",
    )


def register(reg: Registry, quick: bool) -> None:
    for size, label in SIZES:
        reg.cases.append(_mask_copy_case(size, label))
    for size, label in SIZES:
        reg.cases.append(_mask_inplace_case(size, label))
    mib = 1 << 20
    reg.cases.append(_utf8_case("utf8 ASCII 1 MiB", ascii_text(mib)))
    reg.cases.append(_utf8_case("utf8 mixed 1–4 B 1 MiB", mixed_text(mib)))
    big = "".join(json_messages(1, mib, seed=3)).encode()
    reg.cases.append(_inflate_case("inflate 1 MiB JSON", [big], "MB/s", len(big) / 1e6))
    small = [m.encode() for m in json_messages(64, 1024, seed=4)]
    reg.cases.append(_inflate_case("inflate 64 × 1 KiB JSON", small, "kmsg/s", len(small) / 1e3))

    reg.targets += [
        Target("in-place unmask 1 MiB ≥ memcpy", "mask in-place 1 MiB", "memcpy", 1.0),
        Target("copying mask 1 KiB ≥ websockets", "mask copy 1 KiB", "websockets", 1.0),
        Target("copying mask 64 KiB ≥ websockets", "mask copy 64 KiB", "websockets", 1.0),
        Target("copying mask 1 MiB ≥ websockets", "mask copy 1 MiB", "websockets", 1.0),
        Target("16 B call overhead ≤ websockets'", "mask copy 16 B", "websockets", 1.0),
        Target("UTF-8 ASCII ≥ 0.8× decode", "utf8 ASCII 1 MiB", "decode", 0.8),
        Target("UTF-8 mixed ≥ 2× decode", "utf8 mixed 1–4 B 1 MiB", "decode", 2.0),
        Target("inflate 1 MiB within 10 % of zlib", "inflate 1 MiB JSON", "zlib", 0.9),
        Target("inflate 1 KiB msgs within 10 % of zlib", "inflate 64 × 1 KiB JSON", "zlib", 0.9),
    ]
    reg.notes.setdefault("kernels", []).extend([
        "mask copy: every implementation returns a new masked buffer of the input size. aiohttp only "
        "masks in place, so its copy is `bytearray(data)` + `_websocket_mask_cython` (what its writer does); "
        "wsaccel/wsproto build a `XorMaskerSimple(mask)` per call (their maskers are stateful).",
        "memcpy = `bytes(bytearray_of_same_size)` (copy) or `ba[:] = src` with two bytearrays (in place; a `bytes` source would make CPython copy it to a temporary bytearray first): the physical limit at 64 KiB and up (at 16 B it is dominated by the call).",
        "wsproto's masker is pure Python (no wsaccel hook in wsproto 1.3).",
    ])
