# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, freethreading_compatible=True
"""Incremental strict UTF-8 validation (RFC 3629, RFC 6455 §8.1), compiled.

Twin: ``wsfast/_utf8_py.py``. Parity test: ``tests/test_speedups.py`` (``TestUtf8``), which runs
the same test bodies on both builds and differential tests against ``bytes.decode``.
"""

# Theory of operation
# -------------------
# RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the
# byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
# Connection_." Text arrives in arbitrary pieces, so the validator is a deterministic
# automaton whose whole memory is one small integer carried from one ``feed`` to the next.
#
# States (RFC 3629 §4 syntax; the restricted second-byte ranges are what rule out overlong
# forms, surrogates and code points above U+10FFFF):
#
#   ACCEPT  between characters                 00-7F → ACCEPT   C2-DF → CONT1
#                                              E0 → E0   E1-EC, EE-EF → CONT2   ED → ED
#                                              F0 → F0   F1-F3 → CONT3          F4 → F4
#   CONT1/2/3  need 1/2/3 more bytes 80-BF     → ACCEPT / CONT1 / CONT2
#   E0  second byte must be A0-BF (no overlong 3-byte form)       → CONT1
#   ED  second byte must be 80-9F (no surrogate U+D800-U+DFFF)    → CONT1
#   F0  second byte must be 90-BF (no overlong 4-byte form)       → CONT2
#   F4  second byte must be 80-8F (nothing above U+10FFFF)        → CONT2
#   REJECT  absorbing; every other (state, byte) pair goes here, e.g. 80-BF, C0, C1, F5-FF
#           from ACCEPT, or a non-continuation byte where one is needed.
#
# The transition into REJECT happens at exactly the first byte after which the input is no
# longer a prefix of any valid UTF-8 string, which is the offset ``feed`` reports.
#
# Encoding ("shift DFA"): a state is a bit offset (a multiple of 6) and ``_ROWS[byte]`` is a
# 64-bit word holding, for every state s, the next state in bits s..s+5. One step is
# ``state = _ROWS[byte] >> (state & 63)``: a table load that does not depend on the state and
# a one-cycle shift, so the loop-carried dependency is a single shift per byte. The table is
# built at import from ``_next_state``, the readable transition function above.
#
# Because REJECT is absorbing, a block of bytes is run without a per-byte exit test; only if
# the block ends in REJECT is it replayed byte by byte to find the offset.
#
# Three speeds, picked as the text goes:
# * ASCII (in ACCEPT): skipped 32, then 8 bytes at a time (``memcpy`` a uint64, test 0x80 in
#   every byte), stopping exactly at the first non-ASCII byte (count trailing zero bits);
# * sparse non-ASCII (the ASCII run before it was at least DENSE_RUN bytes): one character's
#   worth of bytes (BLOCK) through the automaton, then back to the ASCII skip;
# * dense non-ASCII (shorter ASCII runs: Cyrillic, CJK, emoji): WINDOW bytes at a time
#   through ``_run4``, which cuts them into four streams at character boundaries and runs
#   the four dependency chains interleaved, several times the throughput of one chain.
# The GIL is released for chunks of ``NOGIL_THRESHOLD`` bytes or more.

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_Clear
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef extern from *:
    """
    /* Index, in memory order, of the first byte of w with its high bit set (w is a word
       loaded with memcpy, masked with 0x80...80, not 0). */
    #if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #define wsfast_first_high_byte(w) (__builtin_clzll(w) >> 3)
    #elif defined(__GNUC__)
    #define wsfast_first_high_byte(w) (__builtin_ctzll(w) >> 3)
    #elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_ARM64))
    #include <intrin.h>
    static __inline int wsfast_first_high_byte(unsigned __int64 w) {
        unsigned long k;
        _BitScanForward64(&k, w);  /* these targets are little-endian */
        return (int)(k >> 3);
    }
    #else
    static int wsfast_first_high_byte(unsigned long long w) {
        unsigned char b[8];
        int k = 0;
        memcpy(b, &w, 8);
        while (!(b[k] & 0x80)) k++;
        return k;
    }
    #endif
    """
    int _first_high_byte "wsfast_first_high_byte"(uint64_t w) noexcept nogil

cdef extern from "Python.h":
    # Redeclared without an exception clause: the caller turns a failure into its own error.
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer *view, int flags)

__all__ = ["Utf8Validator"]

cdef enum:
    ACCEPT = 0
    REJECT = 6
    CONT1 = 12
    CONT2 = 18
    CONT3 = 24
    AFTER_E0 = 30
    AFTER_ED = 36
    AFTER_F0 = 42
    AFTER_F4 = 48
    # Bytes run through the automaton between two REJECT / ASCII-skip checks when sparse:
    # the longest character.
    BLOCK = 4
    # Dense non-ASCII input (ASCII runs shorter than DENSE_RUN) of PARALLEL_MIN bytes and
    # more goes through _run4, WINDOW bytes at a time.
    DENSE_RUN = 8
    PARALLEL_MIN = 256
    WINDOW = 4096
    # Below this size, releasing and re-acquiring the GIL costs more than it lets other
    # threads do.
    NOGIL_THRESHOLD = 65536

cdef uint64_t HIGH_BITS = 0x8080808080808080ULL


def _next_state(int state, int byte):
    """The transition function (see the table in the header comment)."""
    cont = 0x80 <= byte <= 0xBF
    if state == ACCEPT:
        if byte <= 0x7F:
            return ACCEPT
        if 0xC2 <= byte <= 0xDF:
            return CONT1
        if byte == 0xE0:
            return AFTER_E0
        if byte == 0xED:
            return AFTER_ED
        if 0xE1 <= byte <= 0xEF:
            return CONT2
        if byte == 0xF0:
            return AFTER_F0
        if 0xF1 <= byte <= 0xF3:
            return CONT3
        if byte == 0xF4:
            return AFTER_F4
        return REJECT  # continuation bytes, C0, C1, F5-FF
    if state == CONT1:
        return ACCEPT if cont else REJECT
    if state == CONT2:
        return CONT1 if cont else REJECT
    if state == CONT3:
        return CONT2 if cont else REJECT
    if state == AFTER_E0:
        return CONT1 if 0xA0 <= byte <= 0xBF else REJECT
    if state == AFTER_ED:
        return CONT1 if 0x80 <= byte <= 0x9F else REJECT
    if state == AFTER_F0:
        return CONT2 if 0x90 <= byte <= 0xBF else REJECT
    if state == AFTER_F4:
        return CONT2 if 0x80 <= byte <= 0x8F else REJECT
    return REJECT


cdef uint64_t _ROWS[256]


cdef void _build_rows() except *:
    cdef int byte, state
    cdef uint64_t row
    for byte in range(256):
        row = 0
        for state in (ACCEPT, REJECT, CONT1, CONT2, CONT3, AFTER_E0, AFTER_ED, AFTER_F0,
                      AFTER_F4):
            row |= (<uint64_t>_next_state(state, byte)) << state
        _ROWS[byte] = row


_build_rows()


cdef inline Py_ssize_t _boundary(const unsigned char *p, Py_ssize_t k) noexcept nogil:
    # The first byte at or after p[k] that is not a continuation byte (80-BF), looking at most
    # 3 bytes ahead; -1 if there is none (4 continuation bytes in a row are invalid anyway).
    cdef Py_ssize_t stop = k + 4
    while k < stop:
        if (p[k] & 0xC0) != 0x80:
            return k
        k += 1
    return -1


cdef uint64_t _run4(const unsigned char *p, Py_ssize_t n, uint64_t s) noexcept nogil:
    """Run ``p[:n]`` (n >= PARALLEL_MIN) from state ``s`` as four interleaved streams.

    Returns the final state, or REJECT if the input is invalid (without saying where).
    """
    # UTF-8 is self-synchronizing: a byte that is not a continuation byte is either the
    # start of a character, reached in ACCEPT, or rejected in every other state. So each of
    # the last three quarters, cut at such a byte, can be run from ACCEPT independently, and
    # the whole is valid iff no stream rejects and the first three end in ACCEPT. The four
    # dependency chains then overlap in the CPU instead of running one after the other.
    cdef Py_ssize_t q = n >> 2
    cdef Py_ssize_t b1 = _boundary(p, q)
    cdef Py_ssize_t b2 = _boundary(p, 2 * q)
    cdef Py_ssize_t b3 = _boundary(p, 3 * q)
    cdef Py_ssize_t k, m
    cdef uint64_t s1 = ACCEPT, s2 = ACCEPT, s3 = ACCEPT
    if b1 < 0 or b2 < 0 or b3 < 0:
        return REJECT
    m = b1
    if b2 - b1 < m:
        m = b2 - b1
    if b3 - b2 < m:
        m = b3 - b2
    if n - b3 < m:
        m = n - b3
    for k in range(m):
        s = _ROWS[p[k]] >> (s & 63)
        s1 = _ROWS[p[b1 + k]] >> (s1 & 63)
        s2 = _ROWS[p[b2 + k]] >> (s2 & 63)
        s3 = _ROWS[p[b3 + k]] >> (s3 & 63)
    for k in range(m, b1):
        s = _ROWS[p[k]] >> (s & 63)
    for k in range(b1 + m, b2):
        s1 = _ROWS[p[k]] >> (s1 & 63)
    for k in range(b2 + m, b3):
        s2 = _ROWS[p[k]] >> (s2 & 63)
    for k in range(b3 + m, n):
        s3 = _ROWS[p[k]] >> (s3 & 63)
    if (s & 63) != ACCEPT or (s1 & 63) != ACCEPT or (s2 & 63) != ACCEPT:
        return REJECT
    return s3 & 63


cdef Py_ssize_t _validate(const unsigned char *p, Py_ssize_t n, uint64_t *pstate) noexcept nogil:
    """Run ``p[:n]`` from ``pstate[0]``; return -1 or the offset of the rejected byte."""
    cdef uint64_t s = pstate[0]
    cdef uint64_t t, w0 = 0, w1 = 0, w2 = 0, w3 = 0
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t j, end, start
    cdef bint dense = False
    while i < n:
        if s == ACCEPT:
            start = i
            while i + 32 <= n:
                memcpy(&w0, p + i, 8)
                memcpy(&w1, p + i + 8, 8)
                memcpy(&w2, p + i + 16, 8)
                memcpy(&w3, p + i + 24, 8)
                if (w0 | w1 | w2 | w3) & HIGH_BITS:
                    break
                i += 32
            while i + 8 <= n:
                memcpy(&w0, p + i, 8)
                w0 &= HIGH_BITS
                if w0:
                    i += _first_high_byte(w0)
                    break
                i += 8
            else:
                while i < n and p[i] < 0x80:
                    i += 1
                if i == n:
                    break
            dense = i - start < DENSE_RUN
        if dense and n - i >= PARALLEL_MIN:
            end = i + WINDOW
            if end > n or n - end < PARALLEL_MIN:
                end = n
            t = _run4(p + i, end - i, s)
        else:
            end = i + BLOCK
            if end > n:
                end = n
            t = s
            for j in range(i, end):
                t = _ROWS[p[j]] >> (t & 63)
            t &= 63
        if t == REJECT:
            for j in range(i, end):
                s = (_ROWS[p[j]] >> s) & 63
                if s == REJECT:
                    pstate[0] = REJECT
                    return j
        s = t
        i = end
    pstate[0] = s
    return -1


@cython.final
cdef class Utf8Validator:
    """Incremental strict UTF-8 validator (RFC 3629; RFC 6455 §8.1).

    ``feed`` the text in pieces; ``complete`` says whether it may end here.
    """

    cdef uint64_t _state

    def __cinit__(self):
        self._state = ACCEPT

    def feed(self, data):
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
        cdef Py_buffer view
        cdef Py_ssize_t result, n
        cdef const unsigned char *ptr
        cdef uint64_t state = self._state
        if PyBytes_CheckExact(data):
            if state == REJECT:
                return 0
            ptr = <const unsigned char *>PyBytes_AS_STRING(data)
            n = PyBytes_GET_SIZE(data)
            if n < NOGIL_THRESHOLD:
                result = _validate(ptr, n, &state)
            else:
                with nogil:
                    result = _validate(ptr, n, &state)
            self._state = state
            return result
        if not (PyObject_CheckBuffer(data) and _get_buffer(data, &view, PyBUF_SIMPLE) == 0):
            PyErr_Clear()
            raise TypeError("data must be a C-contiguous bytes-like object, "
                            f"not {type(data).__name__!r}")
        ptr = <const unsigned char *>view.buf
        n = view.len
        if state == REJECT:
            result = 0
        elif n < NOGIL_THRESHOLD:
            result = _validate(ptr, n, &state)
        else:
            with nogil:
                result = _validate(ptr, n, &state)
        PyBuffer_Release(&view)
        self._state = state
        return result

    @property
    def complete(self):
        """True if no multi-byte sequence is pending and nothing was invalid.

        The text fed so far is valid UTF-8 and may end here.
        """
        return self._state == ACCEPT

    def reset(self):
        """Forget everything fed so far (start a new text)."""
        self._state = ACCEPT
