"""The kernels: masking (RFC 6455 §5.3), UTF-8 validation (RFC 3629), bounded inflate (RFC 7692).

Every test body runs on both builds through the ``impl`` fixture: the pure-Python twins
(``wsfast._mask_py``, ``wsfast._utf8_py``, ``wsfast._inflate_py``) and the compiled modules
(``wsfast._mask``, ``wsfast._utf8``, ``wsfast._inflate``), imported directly rather than
through ``wsfast._speedups``. The compiled run is skipped when the extensions are not built,
unless ``WSFAST_REQUIRE_EXTENSIONS`` is set, in which case their absence is an error.
``TestParity`` then compares the two builds with each other on random inputs.
"""

from __future__ import annotations

import array
import functools
import importlib
import itertools
import operator
import os
import random
import sys
import time
import tracemalloc
import types
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsfast.exceptions import PayloadTooBig, ProtocolError

REQUIRE_EXTENSIONS = os.environ.get("WSFAST_REQUIRE_EXTENSIONS", "") not in ("", "0")

KERNEL_SETTINGS = settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

MIB = 1 << 20
TAIL = b"\x00\x00\xff\xff"
# RFC 6455 §11.8 boundary lengths around the 8-byte word and 32-byte block loops, pages and
# the GIL-release threshold of the compiled kernels.
SIZES = [*range(10), 15, 16, 17, 31, 32, 33, 63, 64, 65, 4095, 4096, 4097, 65536]
KEYS = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x37\xfa\x21\x3d", b"\x01\x02\x03\x04"]


def _load(name: str) -> tuple[types.ModuleType, types.ModuleType | None]:
    twin = importlib.import_module(f"wsfast.{name}_py")
    try:
        compiled: types.ModuleType | None = importlib.import_module(f"wsfast.{name}")
    except ImportError:
        if REQUIRE_EXTENSIONS:
            raise
        compiled = None
    return twin, compiled


def _builds() -> dict[str, types.SimpleNamespace | None]:
    mask_py, mask_c = _load("_mask")
    utf8_py, utf8_c = _load("_utf8")
    inflate_py, inflate_c = _load("_inflate")
    builds: dict[str, types.SimpleNamespace | None] = {
        "python": types.SimpleNamespace(
            name="python",
            apply_mask=mask_py.apply_mask,
            apply_mask_inplace=mask_py.apply_mask_inplace,
            Utf8Validator=utf8_py.Utf8Validator,
            Inflater=inflate_py.Inflater,
        )
    }
    if mask_c is None or utf8_c is None or inflate_c is None:
        builds["cython"] = None
    else:
        builds["cython"] = types.SimpleNamespace(
            name="cython",
            apply_mask=mask_c.apply_mask,
            apply_mask_inplace=mask_c.apply_mask_inplace,
            Utf8Validator=utf8_c.Utf8Validator,
            Inflater=inflate_c.Inflater,
        )
    return builds


BUILDS = _builds()


@pytest.fixture(params=["python", "cython"])
def impl(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    build = BUILDS[request.param]
    if build is None:
        pytest.skip("compiled kernels not built (set WSFAST_REQUIRE_EXTENSIONS to fail instead)")
    return build


def both_builds() -> tuple[types.SimpleNamespace, types.SimpleNamespace]:
    if BUILDS["cython"] is None:
        pytest.skip("compiled kernels not built")
    return BUILDS["python"], BUILDS["cython"]  # type: ignore[return-value]


def pseudo_random(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# --------------------------------------------------------------------------------------------
# Masking


def ref_mask(data: bytes, mask: bytes, phase: int = 0) -> bytes:
    """RFC 6455 §5.3, byte by byte: ``j = i MOD 4``, ``transformed-octet-i = original-octet-i
    XOR masking-key-octet-j`` (``i`` counted from the start of the payload)."""
    # map(operator.xor, ...): the same byte-by-byte rule, without a Python frame per byte
    # (coverage would trace one; the 1 MiB cases took seconds each on CI's pure run).
    return bytes(map(operator.xor, data, itertools.cycle(mask[phase:] + mask[:phase])))


class TestMask:
    """5.3. Client-to-Server Masking."""

    @pytest.mark.parametrize("size", SIZES)
    def test_sizes_and_phases(self, impl, size):
        data = pseudo_random(size, size)
        for mask in KEYS:
            for phase in range(4):
                expected = ref_mask(data, mask, phase)
                out = impl.apply_mask(data, mask, phase)
                assert type(out) is bytes
                assert out == expected
                buf = bytearray(data)
                assert impl.apply_mask_inplace(buf, mask, phase) is None
                assert buf == expected

    def test_default_phase_and_keywords(self, impl):
        data = pseudo_random(37)
        assert impl.apply_mask(data, KEYS[2]) == ref_mask(data, KEYS[2])
        assert impl.apply_mask(data=data, mask=KEYS[2], phase=3) == ref_mask(data, KEYS[2], 3)
        buf = bytearray(data)
        impl.apply_mask_inplace(buf=buf, mask=KEYS[2], phase=1)
        assert buf == ref_mask(data, KEYS[2], 1)

    def test_rfc_example(self, impl):
        # RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
        assert impl.apply_mask(b"Hello", b"\x37\xfa\x21\x3d") == b"\x7f\x9f\x4d\x51\x58"

    def test_six_mib(self, impl):
        data = pseudo_random(6 * MIB, 6)
        mask = KEYS[2]
        out = impl.apply_mask(data, mask, 1)
        assert len(out) == len(data)
        # Spot-check against the reference at offsets straddling words and the middle.
        for start in (0, 5, 4093, 3 * MIB + 7, 6 * MIB - 1000):
            piece = data[start : start + 1000]
            assert out[start : start + 1000] == ref_mask(piece, mask, (1 + start) % 4)
        assert impl.apply_mask(out, mask, 1) == data
        buf = bytearray(out)
        impl.apply_mask_inplace(buf, mask, 1)
        assert buf == data

    @pytest.mark.parametrize("offset", range(1, 8))
    @pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 33, 4097])
    def test_unaligned_slices(self, impl, offset, size):
        backing = bytearray(pseudo_random(size + 16, offset))
        original = bytes(backing)
        view = memoryview(backing)[offset : offset + size]
        for phase in range(4):
            expected = ref_mask(original[offset : offset + size], KEYS[2], phase)
            assert impl.apply_mask(view, KEYS[2], phase) == expected
        impl.apply_mask_inplace(view, KEYS[2], 2)
        expected = ref_mask(original[offset : offset + size], KEYS[2], 2)
        assert backing == original[:offset] + expected + original[offset + size :]

    @pytest.mark.parametrize(
        "wrap",
        [
            bytes,
            bytearray,
            memoryview,
            lambda b: array.array("B", b),
            lambda b: memoryview(bytearray(b)),
            lambda b: memoryview(b).cast("B", (len(b) // 4, 4)) if len(b) % 4 == 0 else b,
        ],
    )
    def test_buffer_types(self, impl, wrap):
        data = pseudo_random(64)
        assert impl.apply_mask(wrap(data), wrap(KEYS[2]), 2) == ref_mask(data, KEYS[2], 2)

    def test_multibyte_items(self, impl):
        # A buffer is its bytes, whatever its item size.
        data = array.array("I", range(100))
        assert impl.apply_mask(data, KEYS[3]) == ref_mask(data.tobytes(), KEYS[3])
        impl.apply_mask_inplace(data, KEYS[3])
        assert data.tobytes() == ref_mask(array.array("I", range(100)).tobytes(), KEYS[3])

    @settings(KERNEL_SETTINGS)
    @given(
        data=st.binary(max_size=300),
        mask=st.binary(min_size=4, max_size=4),
        cuts=st.lists(st.integers(0, 300), max_size=6),
    )
    def test_chunked_equals_whole(self, impl, data, mask, cuts):
        whole = impl.apply_mask(data, mask)
        bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
        pieces = [
            impl.apply_mask(data[a:b], mask, a % 4) for a, b in zip(bounds, bounds[1:])
        ]
        assert b"".join(pieces) == whole == ref_mask(data, mask)
        buf = bytearray(data)
        view = memoryview(buf)
        for a, b in zip(bounds, bounds[1:]):
            impl.apply_mask_inplace(view[a:b], mask, a % 4)
        assert buf == whole

    @pytest.mark.parametrize(
        "args",
        [
            ("text", KEYS[0]),
            (None, KEYS[0]),
            (1234, KEYS[0]),
            (memoryview(b"abcdefgh")[::2], KEYS[0]),  # not contiguous
            (b"data", "mask"),
            (b"data", None),
            (b"data", 1234),
            (b"data", KEYS[0], "1"),
            (b"data", KEYS[0], 1.0),
            (b"data", KEYS[0], None),
        ],
    )
    def test_type_errors(self, impl, args):
        with pytest.raises(TypeError):
            impl.apply_mask(*args)
        with pytest.raises(TypeError):
            impl.apply_mask_inplace(bytearray(b"data") if isinstance(args[0], bytes) else args[0],
                                    *args[1:])

    @pytest.mark.parametrize("buf", [b"data", memoryview(b"data"), memoryview(bytearray(8))[::2]])
    def test_inplace_needs_writable_contiguous(self, impl, buf):
        with pytest.raises(TypeError, match="buf must be a writable"):
            impl.apply_mask_inplace(buf, KEYS[0])

    @pytest.mark.parametrize(
        "mask, phase",
        [(b"", 0), (b"abc", 0), (b"abcde", 0), (KEYS[0], -1), (KEYS[0], 4), (KEYS[0], 2**100),
         (KEYS[0], -(2**100))],
    )
    def test_value_errors(self, impl, mask, phase):
        with pytest.raises(ValueError):
            impl.apply_mask(b"data", mask, phase)
        with pytest.raises(ValueError):
            impl.apply_mask_inplace(bytearray(b"data"), mask, phase)

    def test_error_messages_name_the_argument(self, impl):
        with pytest.raises(TypeError, match="^data must be"):
            impl.apply_mask("x", KEYS[0])
        with pytest.raises(TypeError, match="^mask must be"):
            impl.apply_mask(b"x", "abcd")
        with pytest.raises(TypeError, match="^phase must be"):
            impl.apply_mask(b"x", KEYS[0], "0")
        with pytest.raises(ValueError, match="^mask must be 4 bytes long, not 3$"):
            impl.apply_mask(b"x", b"abc")
        with pytest.raises(ValueError, match="^phase must be 0, 1, 2 or 3, not 4$"):
            impl.apply_mask(b"x", KEYS[0], 4)


def _cpu_flags() -> set[str] | None:
    """The CPU flags Linux reports, or None where there is no /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


class TestMaskSimdPaths:
    """The compiled kernel has a baseline word loop and, on x86 CPUs with AVX2, an AVX2 one
    from 256 bytes of whole words on. Both paths must give the RFC's bytes; on an AVX2
    machine the other tests only exercise the AVX2 path for large payloads, so this runs
    the sizes around the switch-over on each path explicitly."""

    @pytest.fixture(params=["baseline", "avx2"])
    def path(self, request):
        compiled = _load("_mask")[1]
        if compiled is None:
            pytest.skip("compiled kernels not built")
        active = compiled._set_simd(request.param == "avx2")
        if active != request.param:
            compiled._set_simd(True)
            pytest.skip("this CPU has no AVX2")
        yield compiled
        compiled._set_simd(True)

    def test_active_path_follows_the_cpu(self):
        compiled = _load("_mask")[1]
        if compiled is None:
            pytest.skip("compiled kernels not built")
        assert compiled._set_simd(False) == "baseline"
        active = compiled._set_simd(True)
        flags = _cpu_flags()
        if flags is None:
            pytest.skip("no CPU flags to compare with")
        assert active == ("avx2" if "avx2" in flags else "baseline")

    @pytest.mark.parametrize("size", [255, 256, 257, 263, 264, 265, 1023, 4099, 65536 + 5, MIB + 3])
    @pytest.mark.parametrize("offset", [0, 1, 7])
    def test_sizes_offsets_phases(self, path, size, offset):
        backing = bytearray(pseudo_random(size + 8, size))
        original = bytes(backing)
        piece = original[offset : offset + size]
        view = memoryview(backing)[offset : offset + size]
        for phase in range(4):
            expected = ref_mask(piece, KEYS[2], phase)
            assert path.apply_mask(view, KEYS[2], phase) == expected
            assert path.apply_mask(piece, KEYS[3], phase) == ref_mask(piece, KEYS[3], phase)
        path.apply_mask_inplace(view, KEYS[2], 3)
        assert backing == original[:offset] + ref_mask(piece, KEYS[2], 3) + original[offset + size :]

    def test_frame_encoder_masks_on_both_paths(self, path):
        # The frame encoder calls the same C function (mask_copy) from another module.
        frame_mod = _load("_frame")[1]
        assert frame_mod is not None
        key = KEYS[2]
        encoder = frame_mod.FrameEncoder(True, lambda n: key * (n // 4))
        for size in (300, 70000):
            payload = pseudo_random(size, 3)
            frame = encoder.encode(0x82, payload)
            head = b"\x82\xfe" + size.to_bytes(2, "big") if size < 65536 else b"\x82\xff" + size.to_bytes(8, "big")
            assert frame[: len(head)] == head
            assert frame[len(head) : len(head) + 4] == key
            assert frame[len(head) + 4 :] == ref_mask(payload, key)


# --------------------------------------------------------------------------------------------
# UTF-8


def is_valid_prefix(data: bytes) -> bool:
    """Whether some valid UTF-8 string starts with ``data``, decided by ``bytes.decode``.

    A pending sequence needs at most 3 more bytes, all continuation bytes (80-BF); only the
    second byte of a sequence has a narrower range (A0-BF, 80-9F, 90-BF or 80-8F), and each
    contains 80, 90 or A0. So trying those completions is exhaustive.
    """
    for extra in (b"", b"\x80", b"\x90", b"\xa0", b"\x80\x80", b"\x90\x80", b"\xa0\x80",
                  b"\x80\x80\x80", b"\x90\x80\x80", b"\xa0\x80\x80"):
        try:
            (data + extra).decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


def ref_offset(data: bytes) -> int:
    """Offset of the first byte after which ``data`` can no longer be valid UTF-8, or -1.

    The first prefix length L such that ``data[:L]`` is not a prefix of any valid UTF-8
    string gives L - 1. Prefix validity is monotonic, so L is found by bisection.
    """
    if is_valid_prefix(data):
        return -1
    lo, hi = 0, len(data)  # data[:lo] is a valid prefix, data[:hi] is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if is_valid_prefix(data[:mid]):
            lo = mid
        else:
            hi = mid
    return hi - 1


def check_utf8(impl, data: bytes) -> int:
    """Feed ``data`` whole and compare with the references; return the offset."""
    v = impl.Utf8Validator()
    got = v.feed(data)
    assert got == ref_offset(data), data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        assert got >= 0 or not v.complete
        if got >= 0:
            # CPython reports the start of the bad sequence; the failing byte is in it.
            assert exc.start <= got <= exc.start + 3
            assert v.feed(b"") == 0 and v.feed(b"abc") == 0 and not v.complete
    else:
        assert got == -1 and v.complete
    return got


def feed_chunks(validator, chunks) -> tuple[int, bool]:
    """Feed pieces; return (offset in the whole input or -1, complete)."""
    position = 0
    result = -1
    for chunk in chunks:
        r = validator.feed(chunk)
        if result == -1 and r >= 0:
            result = position + r
        elif result >= 0:
            assert r == 0
        position += len(chunk)
    return result, validator.complete


# (bytes, index of the byte that makes them invalid); None: valid but incomplete.
INVALID_SEQUENCES = [
    # overlong 2-byte forms (C0, C1 never appear)
    (b"\xc0\x80", 0), (b"\xc0\xaf", 0), (b"\xc1\xbf", 0),
    # overlong 3-byte forms: E0 needs A0-BF next
    (b"\xe0\x80\x80", 1), (b"\xe0\x80\xaf", 1), (b"\xe0\x9f\xbf", 1),
    # overlong 4-byte forms: F0 needs 90-BF next
    (b"\xf0\x80\x80\x80", 1), (b"\xf0\x8f\xbf\xbf", 1),
    # surrogates U+D800-U+DFFF: ED needs 80-9F next
    (b"\xed\xa0\x80", 1), (b"\xed\xad\xbf", 1), (b"\xed\xb0\x80", 1), (b"\xed\xbf\xbf", 1),
    # above U+10FFFF: F4 needs 80-8F next; F5-F7 leads
    (b"\xf4\x90\x80\x80", 1), (b"\xf4\xbf\xbf\xbf", 1), (b"\xf5\x80\x80\x80", 0),
    (b"\xf7\xbf\xbf\xbf", 0),
    # stray continuation bytes
    (b"\x80", 0), (b"\x8f", 0), (b"\x90", 0), (b"\xa0", 0), (b"\xbf", 0),
    # invalid lead bytes
    *((bytes([b]), 0) for b in (0xC0, 0xC1, *range(0xF5, 0x100))),
    # truncated sequences, then a byte that is not a continuation byte
    (b"\xc2A", 1), (b"\xe2\x82A", 2), (b"\xe2A", 1), (b"\xf0\x9f\x98A", 3),
    (b"\xf0\x9fA", 2), (b"\xf4\x8f\xbf\xc2", 3), (b"\xe2\x82\xe2\x82\xac", 2),
]
# (valid but incomplete sequence, the bytes that complete it)
TRUNCATED = [(b"\xc2", b"\x80"), (b"\xe2", b"\x82\xac"), (b"\xe2\x82", b"\xac"),
             (b"\xf0", b"\x9f\x98\x80"), (b"\xf0\x9f", b"\x98\x80"), (b"\xf0\x9f\x98", b"\x80"),
             (b"\xf4\x8f\xbf", b"\xbf"), (b"\xed\x9f", b"\xbf"), (b"\xe0\xa0", b"\x80")]
VALID_SAMPLES = ["", "a", "é", "€", "𝄞", "\u007f\u0080\u07ff\u0800\ud7ff\ue000\uffff",
                 "\U00010000\U0010ffff", "Liberté, égalité, fraternité. Привет, мир! 你好 😀"]
ADVERSARIAL_ALPHABET = bytes([0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1,
                              0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3,
                              0xF4, 0xF5, 0xF8, 0xFF])
SHORT_TEXT = "ab€d𝄞é-x".encode()  # 1- to 4-byte characters


def char_boundaries(data: bytes) -> list[int]:
    return [i for i in range(len(data) + 1) if i == len(data) or (data[i] & 0xC0) != 0x80]


class TestUtf8:
    """RFC 3629 §3-§4 (UTF-8 definition and syntax); RFC 6455 §8.1 (fail on invalid UTF-8)."""

    @pytest.mark.parametrize("text", VALID_SAMPLES)
    def test_valid(self, impl, text):
        assert check_utf8(impl, text.encode()) == -1

    def test_all_code_points_boundaries(self, impl):
        v = impl.Utf8Validator()
        for cp in [*range(0x100), 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000,
                   0x10FFFF]:
            assert v.feed(chr(cp).encode()) == -1
            assert v.complete

    @pytest.mark.parametrize("seq, bad", INVALID_SEQUENCES)
    def test_invalid_classes_everywhere(self, impl, seq, bad):
        for pos in char_boundaries(SHORT_TEXT):
            data = SHORT_TEXT[:pos] + seq + SHORT_TEXT[pos:]
            assert check_utf8(impl, data) == pos + bad

    @pytest.mark.parametrize("seq, bad", INVALID_SEQUENCES[::3])
    def test_invalid_after_ascii_runs(self, impl, seq, bad):
        # Cross the 8- and 32-byte ASCII fast paths at every alignment.
        for run in range(0, 70):
            data = b"x" * run + seq + b"tail"
            assert check_utf8(impl, data) == run + bad

    @pytest.mark.parametrize("seq, rest", TRUNCATED)
    def test_truncated_at_end(self, impl, seq, rest):
        for run in (0, 1, 7, 8, 9, 31, 32, 33, 300):
            data = b"y" * run + seq
            assert check_utf8(impl, data) == -1
            v = impl.Utf8Validator()
            assert v.feed(data) == -1
            assert not v.complete
            # Completing the sequence makes the text complete again.
            assert v.feed(rest) == -1
            assert v.complete

    @pytest.mark.parametrize("size", SIZES)
    def test_sizes(self, impl, size):
        ascii_ = bytes(random.Random(size).choices(range(0x80), k=size))
        assert check_utf8(impl, ascii_) == -1
        if size:
            assert check_utf8(impl, ascii_[:-1] + b"\xff") == size - 1
            assert check_utf8(impl, ascii_[:-1] + b"\xe2") == -1  # pending, not yet invalid

    @pytest.mark.parametrize("seed", range(12))
    def test_long_mixed_text_with_one_error(self, impl, seed):
        # Long non-ASCII runs go through the compiled build's 4-stream path: place the error
        # anywhere, including next to its stream boundaries.
        rnd = random.Random(seed)
        pools = [(0x20, 0x7F), (0xA0, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF),
                 (0x10000, 0x10FFFF)]
        chars = []
        for _ in range(rnd.choice([100, 400, 1500, 3000])):
            lo, hi = rnd.choice(pools)
            chars.append(chr(rnd.randint(lo, hi)))
        text = "".join(chars).encode()
        assert check_utf8(impl, text) == -1
        for _ in range(25):
            pos = rnd.randrange(len(text))
            seq, _bad = rnd.choice(INVALID_SEQUENCES)
            if rnd.random() < 0.5:
                corrupted = text[:pos] + seq + text[pos:]
            else:
                corrupted = text[:pos] + bytes([rnd.choice(ADVERSARIAL_ALPHABET)]) + text[pos + 1 :]
            check_utf8(impl, corrupted)

    def test_stream_boundaries(self, impl):
        # The compiled build cuts 4 KiB windows (the rest, if short, joins the last one) into
        # quarters; put an error right before, at and after each cut.
        text = ("é" * 2500).encode()  # 5000 bytes: windows [0, 4096) and [4096, 5000)
        centers = [1024, 2048, 3072, 4096, 4096 + 226, 4096 + 452, 4096 + 678, 1250, 2500, 3750]
        for pos in sorted({c + d for c in centers for d in range(-4, 5)}):
            corrupted = text[:pos] + b"\xff" + text[pos + 1 :]
            assert check_utf8(impl, corrupted) == pos
            check_utf8(impl, text[:pos] + b"A" + text[pos + 1 :])
            check_utf8(impl, text[:pos] + b"\xe2\x82" + text[pos:])

    @settings(KERNEL_SETTINGS)
    @given(st.lists(st.sampled_from(ADVERSARIAL_ALPHABET), max_size=24).map(bytes))
    def test_random_adversarial(self, impl, data):
        check_utf8(impl, data)

    @settings(KERNEL_SETTINGS)
    @given(st.text(max_size=60).map(str.encode), st.binary(max_size=3), st.integers(0, 80))
    def test_random_text_with_junk(self, impl, text, junk, pos):
        pos = min(pos, len(text))
        check_utf8(impl, text[:pos] + junk + text[pos:])

    @settings(KERNEL_SETTINGS)
    @given(
        st.one_of(
            st.text(max_size=80).map(str.encode),
            st.binary(max_size=80),
            st.lists(st.sampled_from(ADVERSARIAL_ALPHABET), max_size=40).map(bytes),
        ),
        st.lists(st.integers(0, 80), max_size=8),
    )
    def test_chunked_equals_whole(self, impl, data, cuts):
        whole = impl.Utf8Validator()
        expected = (whole.feed(data), whole.complete)
        bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
        chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
        assert feed_chunks(impl.Utf8Validator(), chunks) == expected
        assert feed_chunks(impl.Utf8Validator(), [data[i : i + 1] for i in range(len(data))]) \
            == expected
        assert expected[0] == ref_offset(data)

    def test_offset_is_relative_to_the_chunk(self, impl):
        v = impl.Utf8Validator()
        assert v.feed(b"abc\xe2") == -1
        assert v.feed(b"\x82") == -1
        assert not v.complete
        assert v.feed(b"\xacok\xed") == -1
        assert v.feed(b"\xa0") == 0  # ED A0: a surrogate, fails at A0
        assert v.feed(b"more") == 0
        assert not v.complete

    @pytest.mark.parametrize("data, offset", [(b"\xed\xa0", 1), (b"\xf4\x90", 1), (b"\xc0", 0),
                                              (b"\xe0\x80", 1), (b"\xf5", 0)])
    def test_fails_at_first_impossible_byte(self, impl, data, offset):
        v = impl.Utf8Validator()
        assert v.feed(data) == offset
        v = impl.Utf8Validator()
        assert v.feed(data[:1]) == (0 if offset == 0 else -1)

    def test_reset(self, impl):
        v = impl.Utf8Validator()
        assert v.complete
        assert v.feed(b"\xff") == 0
        assert not v.complete
        v.reset()
        assert v.complete
        assert v.feed(b"\xe2\x82") == -1
        v.reset()
        assert v.complete
        assert v.feed("€".encode()) == -1

    @pytest.mark.parametrize("offset", range(1, 8))
    def test_buffer_types_and_unaligned(self, impl, offset):
        text = ("x" * 40 + "€𝄞é" * 30).encode()
        backing = bytearray(b"\xff" * offset + text + b"\xff")
        view = memoryview(backing)[offset : offset + len(text)]
        assert impl.Utf8Validator().feed(view) == -1
        assert impl.Utf8Validator().feed(bytearray(text)) == -1
        assert impl.Utf8Validator().feed(array.array("B", text)) == -1
        bad = memoryview(backing)[offset : offset + len(text) + 1]
        assert impl.Utf8Validator().feed(bad) == len(text)

    def test_large(self, impl):
        text = ("ascii " * 20000 + "€𝄞é" * 20000).encode() * 4  # > 64 KiB: GIL released
        v = impl.Utf8Validator()
        assert v.feed(text) == -1 and v.complete
        assert v.feed(text[:-1]) == -1 and not v.complete
        assert impl.Utf8Validator().feed(text[:200001] + b"\xc0" + text) == 200001

    @pytest.mark.parametrize("data", ["text", None, 42, memoryview(b"abcdef")[::2], [1, 2]])
    def test_type_errors(self, impl, data):
        with pytest.raises(TypeError, match="^data must be"):
            impl.Utf8Validator().feed(data)
        # Even once failed, a wrong type is an error.
        v = impl.Utf8Validator()
        v.feed(b"\xff")
        with pytest.raises(TypeError):
            v.feed(data)


# --------------------------------------------------------------------------------------------
# Inflate


def deflate(data: bytes, wbits: int = 15, *, final: bool = False, level: int = 6,
            compressor=None) -> bytes:
    """One RFC 7692 message: raw deflate, sync-flushed, 00 00 ff ff stripped (§7.2.1)."""
    c = compressor or zlib.compressobj(level, zlib.DEFLATED, -wbits)
    if final:
        return c.compress(data) + c.flush(zlib.Z_FINISH)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


@functools.lru_cache(maxsize=64)
def sample_payload(n: int, seed: int = 0) -> bytes:
    """Compressible but not trivial data."""
    rnd = random.Random(seed)
    words = [bytes(rnd.choices(b"abcdefghij", k=rnd.randint(1, 9))) for _ in range(200)]
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(words) + (b" " if rnd.random() < 0.9 else bytes([rnd.randrange(256)]))
    return bytes(out[:n])


@functools.lru_cache(maxsize=None)
def zero_bomb() -> bytes:
    """100 MiB of zeros, compressed (about 100 KiB), without holding 100 MiB in memory."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MIB)
    out = b"".join(c.compress(zeros) for _ in range(100)) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


def inflate_message(inflater, chunks, max_length: int = 1 << 30) -> bytes:
    return b"".join(inflater.decompress(c, max_length) for c in chunks) + inflater.finish(
        max_length
    )


class TestInflate:
    """RFC 7692 §7.2.2 (decompression), §7.1.1 (context takeover), §7.1.2 (window bits)."""

    @pytest.mark.parametrize("size", SIZES)
    def test_sizes(self, impl, size):
        data = sample_payload(size, size)
        z = deflate(data)
        assert inflate_message(impl.Inflater(), [z]) == data

    def test_six_mib_exact_cap(self, impl):
        # 1 MiB pieces: repeats 1 MiB apart are far beyond deflate's 32 KiB window.
        data = sample_payload(MIB, 1) * 5 + sample_payload(MIB, 2)
        z = deflate(data, level=1)
        assert impl.Inflater().decompress(z, len(data)) == data
        with pytest.raises(PayloadTooBig):
            impl.Inflater().decompress(z, len(data) - 1)

    @pytest.mark.parametrize("wbits", range(8, 16))
    def test_window_bits(self, impl, wbits):
        # zlib >= 1.2.9 compresses with 9 bits when asked for 8 (and refuses 8 for raw).
        data = sample_payload(50000, wbits) + pseudo_random(3000) + sample_payload(20000)
        z = deflate(data, max(wbits, 9))
        assert inflate_message(impl.Inflater(wbits=wbits), [z]) == data
        # A larger receiving window inflates a stream made with a smaller one.
        assert inflate_message(impl.Inflater(15), [z]) == data

    @pytest.mark.parametrize("size", [0, 1, 100, 4096, 70000])
    def test_caps_below_at_above(self, impl, size):
        data = sample_payload(size, 3)
        z = deflate(data)
        for cap in (size - 1, size, size + 1, 2 * size + 10):
            if cap < 0:
                continue
            inflater = impl.Inflater()
            if cap < size:
                with pytest.raises(PayloadTooBig, match=f"limit of {cap} bytes"):
                    inflater.decompress(z, cap)
            else:
                assert inflater.decompress(z, cap) == data
                assert inflater.finish(0) == b""

    def test_cap_is_per_call(self, impl):
        data = sample_payload(30000)
        z = deflate(data)
        inflater = impl.Inflater()
        out = inflater.decompress(z[:1000], 30000)
        rest = inflater.decompress(z[1000:], 30000 - len(out))
        assert out + rest + inflater.finish(0) == data

    def test_bomb(self, impl):
        # Deflate expands at most ~1032:1, so 100 MiB of zeros is ~100 KiB compressed (its
        # first KiB alone inflates to ~1 MiB). With a 1 MiB cap it must stop at once,
        # having allocated about the cap.
        bomb = zero_bomb()
        assert len(bomb) < 110 * 1024
        for data in (bomb, bomb[:2048]):
            inflater = impl.Inflater()
            tracemalloc.start()
            try:
                start = time.perf_counter()
                with pytest.raises(PayloadTooBig):
                    inflater.decompress(data, MIB)
                elapsed = time.perf_counter() - start
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert elapsed < 1.0
            # The compiled build allocates the cap (+1 byte); the twin goes through CPython's
            # zlib module, which joins its output blocks into one bytes at the end (2x).
            assert peak < (1.2 if impl.name == "cython" else 2.2) * MIB

    @settings(KERNEL_SETTINGS, max_examples=60)
    @given(
        size=st.integers(0, 20000),
        seed=st.integers(0, 2**16),
        cuts=st.lists(st.integers(0, 20000), max_size=8),
    )
    def test_chunked_equals_whole(self, impl, size, seed, cuts):
        data = sample_payload(size, seed)
        z = deflate(data)
        bounds = sorted({0, len(z), *(c for c in cuts if c <= len(z))})
        chunks = [z[a:b] for a, b in zip(bounds, bounds[1:])]
        assert inflate_message(impl.Inflater(), chunks) == data
        # Byte by byte through memoryviews, with a cap equal to what each call returns.
        inflater = impl.Inflater()
        view = memoryview(z)
        out = bytearray()
        for i in range(0, len(z), max(1, len(z) // 50)):
            out += inflater.decompress(view[i : i + max(1, len(z) // 50)], size)
        out += inflater.finish(size)
        assert out == data

    def test_context_takeover(self, impl):
        # §7.1.1: with context takeover, later messages refer back to earlier ones.
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        inflater = impl.Inflater()
        messages = [sample_payload(3000, 7)] * 3 + [b"", b"x", sample_payload(100, 8)]
        sizes = []
        for msg in messages:
            z = deflate(msg, compressor=compressor)
            sizes.append(len(z))
            assert inflate_message(inflater, [z[:5], z[5:]], len(msg)) == msg
        assert sizes[1] < sizes[0] // 10  # the repeat really used the shared window
        # A fresh inflater cannot decode a message that refers to an earlier one.
        with pytest.raises(ProtocolError):
            z = deflate(messages[0], compressor=compressor)
            impl.Inflater().decompress(z, 10**6)

    def test_no_context_takeover_reset(self, impl):
        inflater = impl.Inflater()
        for seed in range(3):
            msg = sample_payload(2000, seed)
            assert inflate_message(inflater, [deflate(msg)]) == msg
            inflater.reset()
        # reset() also recovers from a failure.
        with pytest.raises(ProtocolError):
            inflater.decompress(b"\xff\xff\xff", 100)
        inflater.reset()
        assert inflate_message(inflater, [deflate(b"again")]) == b"again"

    def test_final_block_then_new_stream(self, impl):
        # §7.2.3.3: a message may end with a BFINAL block; the next message starts a new
        # stream, which the Inflater begins automatically.
        inflater = impl.Inflater()
        first = sample_payload(5000, 1)
        assert inflate_message(inflater, [deflate(first, final=True)]) == first
        assert inflater.finish(0) == b""
        second = sample_payload(5000, 2)
        assert inflate_message(inflater, [deflate(second)]) == second
        z = deflate(first, final=True)
        inflater = impl.Inflater()
        assert inflater.decompress(z[:10], 10**6) + inflater.decompress(z[10:], 10**6) == first
        assert inflater.finish(10) == b""

    def test_data_after_final_block_starts_a_stream_that_keeps_the_window(self, impl):
        # RFC 7692 §7.2.3.4: "f3 48 cd c9 c9 07 00 00" is a BFINAL block then the start of
        # an empty stored block that the appended tail completes.
        inflater = impl.Inflater()
        assert inflater.decompress(bytes.fromhex("f348cdc9c90700") + b"\x00", 100) == b"Hello"
        assert inflater.finish(100) == b""
        # A second stream in the same call that refers back into the first one's output.
        first = zlib.compressobj(6, zlib.DEFLATED, -15)
        z1 = first.compress(b"window contents " * 8) + first.flush(zlib.Z_FINISH)
        second = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=b"window contents " * 8)
        z2 = second.compress(b"window contents " * 4) + second.flush(zlib.Z_SYNC_FLUSH)
        inflater = impl.Inflater()
        out = inflater.decompress(z1 + z2[:-4], 10**6) + inflater.finish(10**6)
        assert out == b"window contents " * 12
        with pytest.raises(PayloadTooBig):
            impl.Inflater().decompress(z1 + z2[:-4], 130)

    @pytest.mark.parametrize(
        "data",
        [
            b"\xff\xff\xff\xff",  # invalid block type
            b"\x00\x05\x00\x00\x00",  # stored block with LEN != ~NLEN
            bytes([0x02, 0x00, 0x80]) * 4,
            deflate(b"x" * 100)[:3] + b"\xff" * 20,
        ],
    )
    def test_corrupt(self, impl, data):
        with pytest.raises(ProtocolError, match="^invalid compressed data: ") as info:
            inflate_message(impl.Inflater(), [data], 10**6)
        assert info.value.code == 1002
        assert not isinstance(info.value, PayloadTooBig)

    def test_empty(self, impl):
        inflater = impl.Inflater()
        assert inflater.decompress(b"", 0) == b""
        assert inflater.finish(0) == b""
        assert inflater.decompress(memoryview(b""), 0) == b""

    def test_huge_max_length(self, impl):
        z = deflate(b"abc")
        for cap in (sys.maxsize, 2**64, 2**200):
            assert inflate_message(impl.Inflater(), [z], cap) == b"abc"

    @pytest.mark.parametrize("offset", range(1, 8))
    def test_unaligned_input(self, impl, offset):
        data = sample_payload(5000, offset)
        z = deflate(data)
        backing = bytearray(b"\xff" * offset + z + b"\xff")
        view = memoryview(backing)[offset : offset + len(z)]
        assert inflate_message(impl.Inflater(), [view, bytearray()]) == data

    @pytest.mark.parametrize("wbits", [7, 16, 0, -15, 31, 2**70])
    def test_bad_wbits(self, impl, wbits):
        with pytest.raises(ValueError, match="^wbits must be between 8 and 15"):
            impl.Inflater(wbits)

    @pytest.mark.parametrize("wbits", ["15", None, 15.0])
    def test_wbits_type(self, impl, wbits):
        with pytest.raises(TypeError, match="^wbits must be an int"):
            impl.Inflater(wbits)

    @pytest.mark.parametrize(
        "args, exc, message",
        [
            (("text", 10), TypeError, "^data must be"),
            ((None, 10), TypeError, "^data must be"),
            ((memoryview(b"abcdef")[::2], 10), TypeError, "^data must be"),
            ((b"", None), TypeError, "^max_length must be an int"),
            ((b"", "10"), TypeError, "^max_length must be an int"),
            ((b"", 1.5), TypeError, "^max_length must be an int"),
            ((b"", -1), ValueError, "^max_length must be >= 0, not -1$"),
            ((b"", -(2**70)), ValueError, "^max_length must be >= 0"),
        ],
    )
    def test_bad_arguments(self, impl, args, exc, message):
        with pytest.raises(exc, match=message):
            impl.Inflater().decompress(*args)
        if args[0] == b"":
            with pytest.raises(exc, match=message):
                impl.Inflater().finish(args[1])


# --------------------------------------------------------------------------------------------
# The two builds against each other


def _outcome(func, *args):
    try:
        return ("ok", func(*args))
    except Exception as exc:  # compared, not swallowed
        return (type(exc).__name__, str(exc))


class TestParity:
    """Differential tests: the twin and the compiled build agree on every input."""

    @settings(KERNEL_SETTINGS)
    @given(
        data=st.binary(max_size=200),
        mask=st.binary(max_size=6),
        phase=st.one_of(st.integers(-2, 6), st.sampled_from([None, "1", 2**80])),
        offset=st.integers(0, 7),
    )
    def test_mask(self, data, mask, phase, offset):
        py, cy = both_builds()
        view = memoryview(bytearray(b"\x00" * offset + data))[offset:]
        assert _outcome(py.apply_mask, view, mask, phase) == _outcome(
            cy.apply_mask, view, mask, phase
        )
        a, b = bytearray(data), bytearray(data)
        assert _outcome(py.apply_mask_inplace, a, mask, phase) == _outcome(
            cy.apply_mask_inplace, b, mask, phase
        )
        assert a == b

    @settings(KERNEL_SETTINGS, max_examples=300)
    @given(
        data=st.one_of(
            st.binary(max_size=100),
            st.lists(st.sampled_from(ADVERSARIAL_ALPHABET), max_size=60).map(bytes),
            st.text(max_size=400).map(str.encode),
        ),
        cuts=st.lists(st.integers(0, 400), max_size=5),
    )
    def test_utf8(self, data, cuts):
        py, cy = both_builds()
        bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
        vp, vc = py.Utf8Validator(), cy.Utf8Validator()
        for a, b in zip(bounds, bounds[1:]):
            assert vp.feed(data[a:b]) == vc.feed(data[a:b])
            assert vp.complete == vc.complete

    @settings(KERNEL_SETTINGS, max_examples=100)
    @given(
        data=st.binary(max_size=300),
        cap=st.integers(0, 400),
        junk=st.binary(max_size=8),
        where=st.integers(0, 300),
    )
    def test_inflate(self, data, cap, junk, where):
        py, cy = both_builds()
        z = deflate(data)
        where = min(where, len(z))
        corrupted = z[:where] + junk + z[where:]
        for payload in (z, corrupted):
            ip, ic = py.Inflater(), cy.Inflater()
            assert _outcome(ip.decompress, payload, cap) == _outcome(ic.decompress, payload, cap)
            assert _outcome(ip.finish, cap) == _outcome(ic.finish, cap)

    def test_error_messages(self):
        py, cy = both_builds()
        calls = [
            ("apply_mask", ("x", b"abcd")),
            ("apply_mask", (b"x", "abcd")),
            ("apply_mask", (b"x", b"abc")),
            ("apply_mask", (b"x", b"abcd", 9)),
            ("apply_mask", (b"x", b"abcd", 1.0)),
            ("apply_mask", (memoryview(b"xyzw")[::2], b"abcd")),
            ("apply_mask_inplace", (b"x", b"abcd")),
            ("Inflater", ("15",)),
            ("Inflater", (99,)),
        ]
        for name, args in calls:
            assert _outcome(getattr(py, name), *args) == _outcome(getattr(cy, name), *args)
        for args in [("x", 1), (b"", "1"), (b"", -5), (b"\xff\xff", 10)]:
            assert _outcome(py.Inflater().decompress, *args) == _outcome(
                cy.Inflater().decompress, *args
            )
        assert _outcome(py.Utf8Validator().feed, "x") == _outcome(cy.Utf8Validator().feed, "x")
