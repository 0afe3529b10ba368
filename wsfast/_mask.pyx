# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, freethreading_compatible=True
"""XOR masking of WebSocket payloads (RFC 6455 §5.3), compiled.

Twin: ``wsfast/_mask_py.py``. Parity test: ``tests/test_speedups.py`` (``TestMask``), which runs
the same test bodies on both builds.
"""

# Theory of operation
# -------------------
# RFC 6455 §5.3: "octet i of the transformed data is the XOR of octet i of the original data
# with octet at index i modulo 4 of the masking key". A payload may arrive in pieces, so the
# caller passes ``phase``: the key index of the first byte (the number of payload bytes
# already unmasked, modulo 4).
#
# The kernel rotates the key by ``phase`` once and repeats it twice into an 8-byte word.
# Because 8 is a multiple of 4, every aligned-to-the-start 8-byte word of the payload is
# XORed with that same word, whatever its address. Loads and stores go through ``memcpy``
# (which compilers turn into plain unaligned moves) instead of ``*(uint64_t *)p`` casts,
# which are undefined behaviour on unaligned data; the word loop has no branches and no
# loop-carried dependency, so ``-O3`` vectorizes it (SSE2 on x86-64, NEON on arm64). The 0-7
# tail bytes are done one at a time. Byte order never matters: the key word is built from
# bytes, in memory order, exactly like the data words.
#
# On x86 with GCC or Clang the same word loop is also compiled a second time for AVX2
# (``target("avx2")``: 32-byte vectors), and used from ``AVX2_MIN`` bytes on when the CPU
# says it has AVX2 (checked once, at import). Measured in C on a 2-vCPU Xeon: 1.3-1.7x the
# SSE2 loop in place from 256 B to 1 MiB, 1.3x copying at 64 KiB, the same copying at 1 MiB
# (memory-bound there). The build needs no flag and the wheel runs on any x86-64 CPU.
# ``_set_simd`` switches the AVX2 path off and on (tests run both on an AVX2 machine).
#
# The Python-facing functions are on the small-message hot path (a 16-byte frame costs
# mostly argument handling), so ``bytes`` arguments skip the buffer protocol entirely and the
# other buffer types go through one ``PyObject_GetBuffer`` each. The GIL is released for
# payloads of ``NOGIL_THRESHOLD`` bytes or more, where the XOR itself dominates.

from cpython.buffer cimport (
    PyBUF_FORMAT, PyBUF_ND, PyBUF_SIMPLE, PyBUF_STRIDES, PyBUF_WRITABLE, PyBuffer_Release,
    PyObject_CheckBuffer,
)
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_CheckExact, PyByteArray_GET_SIZE
from cpython.bytes cimport (
    PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE,
)
from cpython.exc cimport PyErr_Clear
from cpython.long cimport PyLong_Check
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef extern from "Python.h":
    # Redeclared without an exception clause: the callers turn failures into their own errors.
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer *view, int flags)
    Py_ssize_t _as_ssize_t "PyLong_AsSsize_t"(object obj)

__all__ = ["apply_mask", "apply_mask_inplace"]

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* The word loop, written once: XOR the first `end` bytes (a multiple of 8) of src into
       dst with the 8-byte key word. Instantiated for the baseline build and for AVX2. */
    #define WSFAST_XOR_WORDS(src, dst, end, key) { \\
        uint64_t w; Py_ssize_t i; \\
        for (i = 0; i < (end); i += 8) { \\
            memcpy(&w, (src) + i, 8); w ^= (key); memcpy((dst) + i, &w, 8); } }
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    #define WSFAST_AVX2 __attribute__((target("avx2")))
    static int wsfast_cpu_has_avx2(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") != 0;
    }
    #else
    #define WSFAST_AVX2  /* no AVX2 build: the _avx2 copies are never called */
    static int wsfast_cpu_has_avx2(void) { return 0; }
    #endif
    /* One pointer for in place, so the compiler needs no aliasing check to vectorize. */
    static inline void wsfast_words_copy(const unsigned char *src, unsigned char *dst,
                                         Py_ssize_t end, uint64_t key)
        WSFAST_XOR_WORDS(src, dst, end, key)
    static inline void wsfast_words_inplace(unsigned char *buf, Py_ssize_t end, uint64_t key)
        WSFAST_XOR_WORDS(buf, buf, end, key)
    WSFAST_AVX2 static void wsfast_words_copy_avx2(const unsigned char *src, unsigned char *dst,
                                                   Py_ssize_t end, uint64_t key)
        WSFAST_XOR_WORDS(src, dst, end, key)
    WSFAST_AVX2 static void wsfast_words_inplace_avx2(unsigned char *buf, Py_ssize_t end,
                                                      uint64_t key)
        WSFAST_XOR_WORDS(buf, buf, end, key)
    """
    void _words_copy "wsfast_words_copy"(
        const unsigned char *src, unsigned char *dst, Py_ssize_t end, uint64_t key) noexcept nogil
    void _words_inplace "wsfast_words_inplace"(
        unsigned char *buf, Py_ssize_t end, uint64_t key) noexcept nogil
    void _words_copy_avx2 "wsfast_words_copy_avx2"(
        const unsigned char *src, unsigned char *dst, Py_ssize_t end, uint64_t key) noexcept nogil
    void _words_inplace_avx2 "wsfast_words_inplace_avx2"(
        unsigned char *buf, Py_ssize_t end, uint64_t key) noexcept nogil
    int _cpu_has_avx2 "wsfast_cpu_has_avx2"() noexcept nogil

# Below this size, releasing and re-acquiring the GIL costs more than it lets other threads do.
# From AVX2_MIN bytes of whole words, the AVX2 loop (when the CPU has it) beats the SSE2 one.
cdef enum:
    NOGIL_THRESHOLD = 65536
    AVX2_MIN = 256

cdef bint _cpu_avx2 = _cpu_has_avx2()
cdef bint _use_avx2 = _cpu_avx2


def _set_simd(bint enabled):
    """Use the AVX2 loop where the CPU has it (``True``, the default) or never (``False``).

    For tests and measurements; returns the path now in use, ``"avx2"`` or ``"baseline"``.
    """
    global _use_avx2
    _use_avx2 = enabled and _cpu_avx2
    return "avx2" if _use_avx2 else "baseline"


cdef inline uint64_t _key_word(const unsigned char *mask, Py_ssize_t phase) noexcept nogil:
    cdef unsigned char k[8]
    cdef uint64_t word = 0
    cdef int j
    for j in range(8):
        k[j] = mask[(phase + j) & 3]
    memcpy(&word, k, 8)
    return word


cdef void mask_copy(const unsigned char *src, unsigned char *dst, Py_ssize_t n,
                    const unsigned char *mask, Py_ssize_t phase) noexcept nogil:
    cdef uint64_t key = _key_word(mask, phase)
    cdef Py_ssize_t i
    cdef Py_ssize_t end = n & ~<Py_ssize_t>7
    if end >= AVX2_MIN and _use_avx2:
        _words_copy_avx2(src, dst, end, key)
    else:
        _words_copy(src, dst, end, key)
    for i in range(end, n):
        dst[i] = src[i] ^ mask[(phase + i) & 3]


cdef void mask_inplace(unsigned char *buf, Py_ssize_t n,
                       const unsigned char *mask, Py_ssize_t phase) noexcept nogil:
    cdef uint64_t key = _key_word(mask, phase)
    cdef Py_ssize_t i
    cdef Py_ssize_t end = n & ~<Py_ssize_t>7
    if end >= AVX2_MIN and _use_avx2:
        _words_inplace_avx2(buf, end, key)
    else:
        _words_inplace(buf, end, key)
    for i in range(end, n):
        buf[i] = buf[i] ^ mask[(phase + i) & 3]


cdef inline str _tname(object obj):
    return type(obj).__name__


cdef int _get_view(object obj, Py_buffer *view, int flags, str name) except -1:
    # One error message per argument, identical in the twin.
    if PyObject_CheckBuffer(obj) and _get_buffer(obj, view, flags) == 0:
        return 0
    PyErr_Clear()
    if flags & PyBUF_WRITABLE:
        raise TypeError(f"{name} must be a writable, C-contiguous bytes-like object, "
                        f"not {_tname(obj)!r}")
    raise TypeError(f"{name} must be a C-contiguous bytes-like object, not {_tname(obj)!r}")


cdef int _get_mask(object mask, unsigned char *key) except -1:
    cdef Py_buffer view
    cdef Py_ssize_t n
    if PyBytes_CheckExact(mask):
        n = PyBytes_GET_SIZE(mask)
        if n == 4:
            memcpy(key, PyBytes_AS_STRING(mask), 4)
            return 0
    else:
        _get_view(mask, &view, PyBUF_SIMPLE, "mask")
        n = view.len
        if n == 4:
            memcpy(key, view.buf, 4)
        PyBuffer_Release(&view)
        if n == 4:
            return 0
    raise ValueError(f"mask must be 4 bytes long, not {n}")


cdef Py_ssize_t _get_phase(object phase) except -1:
    cdef Py_ssize_t p
    if not PyLong_Check(phase):
        raise TypeError(f"phase must be an int, not {_tname(phase)!r}")
    p = _as_ssize_t(phase)
    if p == -1:
        PyErr_Clear()  # an OverflowError for a huge int: just as invalid as -1
    if p < 0 or p > 3:
        raise ValueError(f"phase must be 0, 1, 2 or 3, not {phase!r}")
    return p


def apply_mask(data, mask, phase=0):
    """Return ``data`` XORed with the 4-byte ``mask``, starting at key byte ``phase``.

    Args:
        data: any C-contiguous buffer (``bytes``, ``bytearray``, ``memoryview``...).
        mask: the 4-byte masking key (RFC 6455 §5.3), any C-contiguous buffer.
        phase: key index of ``data[0]`` (0-3): the number of payload bytes already
            unmasked, modulo 4.

    Returns:
        A new ``bytes`` object of the same length.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: ``mask`` is not 4 bytes long or ``phase`` is not 0-3.
    """
    cdef unsigned char key[4]
    cdef Py_ssize_t p = _get_phase(phase) if phase is not 0 else 0
    cdef Py_buffer view
    cdef bytes out
    cdef const unsigned char *src
    cdef unsigned char *dst
    cdef Py_ssize_t n
    _get_mask(mask, key)
    if PyBytes_CheckExact(data):
        n = PyBytes_GET_SIZE(data)
        out = PyBytes_FromStringAndSize(NULL, n)
        src = <const unsigned char *>PyBytes_AS_STRING(data)
        dst = <unsigned char *>PyBytes_AS_STRING(out)
        if n < NOGIL_THRESHOLD:
            mask_copy(src, dst, n, key, p)
        else:
            with nogil:
                mask_copy(src, dst, n, key, p)
        return out
    _get_view(data, &view, PyBUF_SIMPLE, "data")
    try:
        n = view.len
        out = PyBytes_FromStringAndSize(NULL, n)
        src = <const unsigned char *>view.buf
        dst = <unsigned char *>PyBytes_AS_STRING(out)
        if n < NOGIL_THRESHOLD:
            mask_copy(src, dst, n, key, p)
        else:
            with nogil:
                mask_copy(src, dst, n, key, p)
    finally:
        PyBuffer_Release(&view)
    return out


def apply_mask_inplace(buf, mask, phase=0):
    """XOR the writable buffer ``buf`` in place with ``mask``, starting at key byte ``phase``.

    Args:
        buf: a writable C-contiguous buffer (``bytearray``, writable ``memoryview``...).
        mask: the 4-byte masking key (RFC 6455 §5.3), any C-contiguous buffer.
        phase: key index of ``buf[0]`` (0-3).

    Raises:
        TypeError: an argument has the wrong type or ``buf`` is read-only.
        ValueError: ``mask`` is not 4 bytes long or ``phase`` is not 0-3.
    """
    cdef unsigned char key[4]
    cdef Py_ssize_t p = _get_phase(phase) if phase is not 0 else 0
    cdef Py_buffer view
    cdef unsigned char *ptr
    cdef Py_ssize_t n
    _get_mask(mask, key)
    _get_view(buf, &view, PyBUF_WRITABLE, "buf")
    n = view.len
    ptr = <unsigned char *>view.buf
    if n < NOGIL_THRESHOLD:
        mask_inplace(ptr, n, key, p)
    else:
        with nogil:
            mask_inplace(ptr, n, key, p)
    PyBuffer_Release(&view)


# -- building a message in place (for the frame parser, wsfast._parser_c) ---------------------
#
# The parser allocates a message's final ``bytes`` once, at the size its header announces,
# and unmasks every incoming piece straight into it (one pass over each byte). A ``bytes``
# object is immutable only once others can see it: until the parser hands it out in an
# event, nobody else holds a reference, so writing into it is sound (its hash is not cached
# yet). These helpers are private to the parser; the pure-Python build does the same on a
# ``bytearray`` (see wsfast/_parser.py).


def _alloc(Py_ssize_t n):
    """A new ``bytes`` of ``n`` bytes, not initialized: the caller fills it before anyone else
    sees it. Large allocations are mapped lazily by the C allocator, so memory is committed
    only as the payload arrives."""
    if n < 0:
        raise ValueError("n must be non-negative")
    return PyBytes_FromStringAndSize(NULL, n)


cdef unsigned char *_target_ptr(object dst, Py_ssize_t start, Py_ssize_t n) except NULL:
    # A bytes under construction or a bytearray; [start, start + n) must lie inside it.
    cdef Py_ssize_t size
    cdef unsigned char *base
    if PyBytes_CheckExact(dst):
        size = PyBytes_GET_SIZE(dst)
        base = <unsigned char *>PyBytes_AS_STRING(dst)
    elif PyByteArray_CheckExact(dst):
        size = PyByteArray_GET_SIZE(dst)
        base = <unsigned char *>PyByteArray_AS_STRING(dst)
    else:
        raise TypeError(f"dst must be bytes or bytearray, not {_tname(dst)!r}")
    if start < 0 or n < 0 or start > size or n > size - start:
        raise ValueError("region out of range")
    return base + start


def _mask_into(dst, Py_ssize_t dpos, bytes src, Py_ssize_t spos, Py_ssize_t n, bytes mask,
               Py_ssize_t phase):
    """Copy ``src[spos:spos+n]`` into ``dst[dpos:dpos+n]``, XORed with ``mask`` from key byte
    ``phase`` (no mask: ``b""``). ``dst``: a bytes under construction or a bytearray."""
    cdef unsigned char *d = _target_ptr(dst, dpos, n)
    cdef const unsigned char *s
    cdef const unsigned char *key
    if spos < 0 or n > PyBytes_GET_SIZE(src) - spos or spos > PyBytes_GET_SIZE(src):
        raise ValueError("source region out of range")
    s = <const unsigned char *>PyBytes_AS_STRING(src) + spos
    if PyBytes_GET_SIZE(mask) == 0:
        if n < NOGIL_THRESHOLD:
            memcpy(d, s, n)
        else:
            with nogil:
                memcpy(d, s, n)
        return
    if PyBytes_GET_SIZE(mask) != 4 or phase < 0 or phase > 3:
        raise ValueError("mask must be 4 bytes and phase 0-3")
    key = <const unsigned char *>PyBytes_AS_STRING(mask)
    if n < NOGIL_THRESHOLD:
        mask_copy(s, d, n, key, phase)
    else:
        with nogil:
            mask_copy(s, d, n, key, phase)


def _unmask_slice(bytes src, Py_ssize_t spos, Py_ssize_t n, bytes mask, Py_ssize_t phase):
    """``apply_mask(src[spos:spos+n], mask, phase)`` in one pass (no intermediate slice)."""
    cdef bytes out
    cdef const unsigned char *s
    cdef unsigned char *d
    cdef const unsigned char *key
    if spos < 0 or n < 0 or spos > PyBytes_GET_SIZE(src) or n > PyBytes_GET_SIZE(src) - spos:
        raise ValueError("source region out of range")
    if PyBytes_GET_SIZE(mask) != 4 or phase < 0 or phase > 3:
        raise ValueError("mask must be 4 bytes and phase 0-3")
    out = PyBytes_FromStringAndSize(NULL, n)
    s = <const unsigned char *>PyBytes_AS_STRING(src) + spos
    d = <unsigned char *>PyBytes_AS_STRING(out)
    key = <const unsigned char *>PyBytes_AS_STRING(mask)
    if n < NOGIL_THRESHOLD:
        mask_copy(s, d, n, key, phase)
    else:
        with nogil:
            mask_copy(s, d, n, key, phase)
    return out


def _unmask_region(dst, Py_ssize_t start, Py_ssize_t n, bytes mask, Py_ssize_t phase):
    """XOR ``dst[start:start+n]`` in place with ``mask`` from key byte ``phase``."""
    cdef unsigned char *d = _target_ptr(dst, start, n)
    cdef const unsigned char *key
    if PyBytes_GET_SIZE(mask) != 4 or phase < 0 or phase > 3:
        raise ValueError("mask must be 4 bytes and phase 0-3")
    key = <const unsigned char *>PyBytes_AS_STRING(mask)
    if n < NOGIL_THRESHOLD:
        mask_inplace(d, n, key, phase)
    else:
        with nogil:
            mask_inplace(d, n, key, phase)


cdef char *_FORMAT_B = "B"


cdef class _Region:
    """Exports ``obj[start:start+n]`` (a bytes under construction) as a writable
    buffer, keeping ``obj`` alive while any view of it exists."""

    cdef object obj
    cdef Py_ssize_t start
    cdef Py_ssize_t n
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer *view, int flags):
        cdef unsigned char *p = _target_ptr(self.obj, self.start, self.n)
        self.shape[0] = self.n
        self.strides[0] = 1
        view.buf = p
        view.obj = self
        view.len = self.n
        view.readonly = 0
        view.itemsize = 1
        view.format = _FORMAT_B if (flags & PyBUF_FORMAT) else NULL
        view.ndim = 1
        view.shape = self.shape if (flags & PyBUF_ND) else NULL
        view.strides = self.strides if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass


def _writable_region(obj, Py_ssize_t start, Py_ssize_t n):
    """A writable ``memoryview`` of ``obj[start:start+n]`` (see ``_Region``)."""
    _target_ptr(obj, start, n)
    if not PyBytes_CheckExact(obj):
        # A bytearray exports itself (and then refuses to be resized while viewed).
        return memoryview(obj)[start:start + n]
    cdef _Region r = _Region.__new__(_Region)
    r.obj = obj
    r.start = start
    r.n = n
    return memoryview(r)
