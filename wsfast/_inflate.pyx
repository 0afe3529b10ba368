# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, freethreading_compatible=True
"""Bounded raw-deflate decompression and per-frame compression for permessage-deflate
(RFC 7692), compiled.

Twin: ``wsfast/_inflate_py.py``. Parity tests: ``tests/test_speedups.py`` (``TestInflate``),
``tests/test_deflate_backends.py`` (both builds, both deflate libraries, random streams).

This one source is compiled twice (setup.py): as ``wsfast._inflate`` against zlib, and as
``wsfast._inflate_ng`` against zlib-ng's native API (``WSFAST_ZLIB_NG`` defined; see
``wsfast/_zapi.h``). ``BACKEND`` and ``LIBRARY_VERSION`` say which library a build links.
"""

# Theory of operation
# -------------------
# RFC 7692 §7.2.2: the receiver "append[s] 4 octets of 0x00 0x00 0xff 0xff to the tail end of
# the payload of the message" and decompresses; with context takeover, the LZ77 window
# carries over from one message to the next, so one z_stream (raw deflate: negative
# windowBits, no zlib header) lives as long as the connection. ``decompress`` feeds the
# message's payload as it arrives, ``finish`` feeds the 4-byte tail at its end, ``reset``
# (inflateReset) drops the window for "no context takeover" (§7.1.1).
#
# Window bits: zlib's raw inflate refuses windowBits 8, but a window of 9 bits inflates any
# stream made with a smaller one (zlib >= 1.2.9 itself turns a request for 8 into 9 when
# compressing), so ``max(wbits, 9)`` is used.
#
# Bound (DESIGN.md: a 1 KiB bomb is refused after allocating at most the limit): the output
# of one call goes into one ``bytes`` object whose capacity starts at a guess and doubles,
# never beyond ``max_length + 1``. Filling those ``max_length + 1`` bytes proves the output
# is too big, so ``PayloadTooBig`` is raised without ever allocating more. Growth goes
# through ``_PyBytes_Resize`` (realloc, which moves large blocks with mremap instead of
# copying), and a final resize trims the unused capacity; no output byte is copied by us.
# The GIL is released around ``inflate`` calls with 64 KiB or more of input or output room.
#
# End of stream: a message may end its deflate stream with a BFINAL block (RFC 7692
# §7.2.3.4). Input after it (in the same call or the next one) starts a new deflate stream
# that keeps the LZ77 window (inflateGetDictionary/inflateReset/inflateSetDictionary); if the
# message ends right there, ``finish`` has nothing to feed (an empty chunk, e.g. an empty last
# frame, starts nothing either: only input does). If the final block ends *inside*
# the ``00 00 ff ff`` tail that ``finish`` feeds, what is left of the tail is not the
# sender's data (§7.2.2: the receiver appends it): it is dropped, as zlib leaves bytes after
# a stream's end unconsumed (Python's ``unused_data``); the next message starts a new stream.
#
# Deflater: one z_stream per compressing direction. ``compress(data, final)`` deflates a
# frame's payload with Z_SYNC_FLUSH into one ``bytes`` sized by deflateBound (only the pages
# written are touched), strips the ``00 00 ff ff`` a sync flush ends with from a message's
# final frame (§7.2.1) and trims the rest with one resize: one allocation per frame, where
# ``compress() + flush()`` makes three objects and a concatenation.
#
# After ``PayloadTooBig`` or ``ProtocolError`` the stream is in an unspecified state: the
# connection is failing; call ``reset()`` before any further use.
#
# Concurrency: one Inflater is one stream; a call made while another thread is inside a call
# on the same object (possible while the GIL is released) raises RuntimeError instead of
# corrupting the z_stream. The flag is tested and set under a critical section, so this holds
# on free-threaded builds too.

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_Clear
from cpython.long cimport PyLong_Check
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_XDECREF
from libc.limits cimport UINT_MAX
from libc.string cimport memset

from wsfast.exceptions import PayloadTooBig, ProtocolError

cdef extern from "Python.h":
    # Redeclared without exception clauses: the callers handle failures themselves.
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer *view, int flags)
    Py_ssize_t _as_ssize_t "PyLong_AsSsize_t"(object obj)
    PyObject *_new_bytes "PyBytes_FromStringAndSize"(const char *s, Py_ssize_t n)
    int _resize_bytes "_PyBytes_Resize"(PyObject **obj, Py_ssize_t n)
    char *_bytes_ptr "PyBytes_AS_STRING"(PyObject *obj)
    const Py_ssize_t PY_SSIZE_T_MAX

cdef extern from "Python.h" nogil:
    void *PyMem_RawCalloc(size_t nelem, size_t elsize)
    void *PyMem_RawMalloc(size_t n)
    void PyMem_RawFree(void *ptr)


# zlib's state and window go through Python's raw allocator, like CPython's own zlib
# module does: tracemalloc then sees them (benchmarks/bench_pmd_memory.py measures it).
cdef void *_zalloc(void *opaque, unsigned int items, unsigned int size) noexcept nogil:
    return PyMem_RawCalloc(items, size)


cdef void _zfree(void *opaque, void *address) noexcept nogil:
    PyMem_RawFree(address)


cdef extern from "_zapi.h" nogil:
    # zlib's z_stream or zlib-ng's zng_stream (same fields, same semantics).
    ctypedef struct z_stream "wsz_stream":
        unsigned char *next_in
        unsigned int avail_in
        unsigned char *next_out
        unsigned int avail_out
        const char *msg
        void *(*zalloc)(void *, unsigned int, unsigned int) noexcept nogil
        void (*zfree)(void *, void *) noexcept nogil
    int inflateInit2 "wsz_inflateInit2"(z_stream *strm, int windowBits)
    int inflate "wsz_inflate"(z_stream *strm, int flush)
    int inflateReset "wsz_inflateReset"(z_stream *strm)
    int inflateGetDictionary "wsz_inflateGetDictionary"(
        z_stream *strm, unsigned char *dictionary, unsigned int *dictLength)
    int inflateSetDictionary "wsz_inflateSetDictionary"(
        z_stream *strm, const unsigned char *dictionary, unsigned int dictLength)
    int inflateEnd "wsz_inflateEnd"(z_stream *strm)
    int deflateInit2 "wsz_deflateInit2"(z_stream *strm, int level, int method, int windowBits,
                                        int memLevel, int strategy)
    int deflate "wsz_deflate"(z_stream *strm, int flush)
    unsigned long deflateBound "wsz_deflateBound"(z_stream *strm, unsigned long sourceLen)
    int deflateEnd "wsz_deflateEnd"(z_stream *strm)
    const char *WSZ_BACKEND
    const char *wsz_version()
    enum:
        Z_OK
        Z_STREAM_END
        Z_NEED_DICT
        Z_STREAM_ERROR
        Z_DATA_ERROR
        Z_MEM_ERROR
        Z_BUF_ERROR
        Z_NO_FLUSH
        Z_SYNC_FLUSH
        Z_DEFLATED
        Z_DEFAULT_STRATEGY

__all__ = ["Inflater", "Deflater", "BACKEND", "LIBRARY_VERSION"]

#: The deflate library this build links: "zlib" or "zlib-ng".
BACKEND = (<bytes>WSZ_BACKEND).decode("ascii")
#: Its version, as the library reports it at run time.
LIBRARY_VERSION = (<bytes>wsz_version()).decode("ascii")

cdef enum:
    # Below this much input or output room, releasing the GIL costs more than it gives.
    NOGIL_THRESHOLD = 65536
    # First output capacity: a typical deflate ratio times the input, at least MIN_CAPACITY.
    RATIO_GUESS = 4
    MIN_CAPACITY = 1024

# RFC 7692 §7.2.2: the sender removes these 4 octets from the end of every message.
cdef const unsigned char *TAIL = b"\x00\x00\xff\xff"


cdef Py_ssize_t _check_max_length(object max_length) except -1:
    cdef Py_ssize_t n
    if not PyLong_Check(max_length):
        raise TypeError(f"max_length must be an int, not {type(max_length).__name__!r}")
    n = _as_ssize_t(max_length)
    if n == -1:
        PyErr_Clear()  # OverflowError for a huge int
        if max_length > 0:
            n = PY_SSIZE_T_MAX - 1
    if n < 0:
        raise ValueError(f"max_length must be >= 0, not {max_length!r}")
    if n > PY_SSIZE_T_MAX - 1:
        n = PY_SSIZE_T_MAX - 1
    return n


@cython.auto_pickle(False)
@cython.final
cdef class Inflater:
    """Raw-deflate decompressor for one direction of a permessage-deflate connection.

    Args:
        wbits: the LZ77 window size, as negotiated (``*_max_window_bits``, 8-15).

    Raises:
        TypeError: ``wbits`` is not an int.
        ValueError: ``wbits`` is not 8-15.
    """

    cdef z_stream _strm
    cdef bint _initialized  # inflateInit2 succeeded: inflateEnd in __dealloc__
    cdef bint _ended        # the stream reached its end (BFINAL block)
    cdef bint _busy         # a call is in progress (see "Concurrency")

    def __cinit__(self, wbits=15):
        cdef int rc
        memset(&self._strm, 0, sizeof(z_stream))
        if not PyLong_Check(wbits):
            raise TypeError(f"wbits must be an int, not {type(wbits).__name__!r}")
        if not 8 <= wbits <= 15:
            raise ValueError(f"wbits must be between 8 and 15, not {wbits!r}")
        self._strm.zalloc = _zalloc
        self._strm.zfree = _zfree
        rc = inflateInit2(&self._strm, -max(<int>wbits, 9))
        if rc == Z_MEM_ERROR:
            raise MemoryError("cannot allocate a zlib stream")
        if rc != Z_OK:
            raise RuntimeError(f"inflateInit2 failed with error {rc}")
        self._initialized = True

    def __dealloc__(self):
        if self._initialized:
            inflateEnd(&self._strm)

    cdef int _enter(self) except -1:
        with cython.critical_section(self):
            if self._busy:
                raise RuntimeError("this Inflater is in use by another thread")
            self._busy = True
        return 0

    def decompress(self, data, max_length):
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
        cdef Py_buffer view
        cdef Py_ssize_t limit
        if PyBytes_CheckExact(data):
            limit = _check_max_length(max_length)
            self._enter()
            try:
                if self._ended and PyBytes_GET_SIZE(data):
                    self._restart()
                return self._inflate(<const unsigned char *>PyBytes_AS_STRING(data),
                                     PyBytes_GET_SIZE(data), limit, False)
            finally:
                self._busy = False
        if not (PyObject_CheckBuffer(data) and _get_buffer(data, &view, PyBUF_SIMPLE) == 0):
            PyErr_Clear()
            raise TypeError("data must be a C-contiguous bytes-like object, "
                            f"not {type(data).__name__!r}")
        try:
            limit = _check_max_length(max_length)
            self._enter()
            try:
                if self._ended and view.len:
                    self._restart()
                return self._inflate(<const unsigned char *>view.buf, view.len, limit, False)
            finally:
                self._busy = False
        finally:
            PyBuffer_Release(&view)

    def finish(self, max_length):
        """End a message: feed the stripped ``00 00 ff ff`` tail (RFC 7692 §7.2.2).

        Args:
            max_length: the most output bytes this call may return.

        Returns:
            The remaining output of the message (usually empty).

        Raises:
            PayloadTooBig, ProtocolError, TypeError, ValueError: as ``decompress``.
        """
        cdef Py_ssize_t limit = _check_max_length(max_length)
        self._enter()
        try:
            if self._ended:
                return b""
            return self._inflate(TAIL, 4, limit, True)
        finally:
            self._busy = False

    cdef int _restart(self) except -1:
        # Start a new stream after a final block, keeping the LZ77 window so that a sender
        # with context takeover may still refer back to earlier output.
        cdef unsigned char *window = <unsigned char *>PyMem_RawMalloc(32768)
        cdef unsigned int n = 32768
        if window == NULL:
            raise MemoryError()
        try:
            if inflateGetDictionary(&self._strm, window, &n) != Z_OK:
                n = 0
            inflateReset(&self._strm)
            if n:
                inflateSetDictionary(&self._strm, window, n)
        finally:
            PyMem_RawFree(window)
        self._ended = False
        return 0

    def reset(self):
        """Drop the window and start a new stream (no context takeover, RFC 7692 §7.1.1)."""
        self._enter()
        inflateReset(&self._strm)
        self._ended = False
        self._busy = False

    cdef object _inflate(self, const unsigned char *src, Py_ssize_t n, Py_ssize_t max_length,
                         bint tail):
        # Inflate src[:n] into a new bytes object of at most max_length bytes; see the header.
        # tail: src is the 00 00 ff ff that finish() feeds, not the sender's data.
        cdef z_stream *strm = &self._strm
        cdef Py_ssize_t cap_limit = max_length + 1
        cdef Py_ssize_t cap, total = 0, left = n, room
        cdef PyObject *out = NULL
        cdef unsigned char *buf
        cdef int rc
        cdef object result
        if n == 0:
            return b""
        cap = MIN_CAPACITY
        if n < (PY_SSIZE_T_MAX - MIN_CAPACITY) // RATIO_GUESS:
            cap = n * RATIO_GUESS + MIN_CAPACITY
        if cap > cap_limit:
            cap = cap_limit
        out = _new_bytes(NULL, cap)
        if out == NULL:
            raise MemoryError()
        try:
            buf = <unsigned char *>_bytes_ptr(out)
            strm.next_in = <unsigned char *>src
            strm.avail_in = 0
            while True:
                if strm.avail_in == 0 and left > 0:
                    strm.avail_in = <unsigned int>(left if left < UINT_MAX else UINT_MAX)
                    left -= strm.avail_in
                if total == cap:
                    if cap == cap_limit:
                        raise PayloadTooBig(
                            f"decompressed data exceeds the limit of {max_length} bytes")
                    cap = cap * 2 if cap < cap_limit // 2 else cap_limit
                    if _resize_bytes(&out, cap) < 0:
                        raise MemoryError()  # _PyBytes_Resize freed out and set it to NULL
                    buf = <unsigned char *>_bytes_ptr(out)
                room = cap - total
                strm.next_out = buf + total
                strm.avail_out = <unsigned int>(room if room < UINT_MAX else UINT_MAX)
                if strm.avail_in >= NOGIL_THRESHOLD or strm.avail_out >= NOGIL_THRESHOLD:
                    with nogil:
                        rc = inflate(strm, Z_NO_FLUSH)
                else:
                    rc = inflate(strm, Z_NO_FLUSH)
                total = strm.next_out - buf
                if rc == Z_STREAM_END:
                    self._ended = True
                    if total == cap_limit:
                        raise PayloadTooBig(
                            f"decompressed data exceeds the limit of {max_length} bytes")
                    if not tail and (strm.avail_in > 0 or left > 0):
                        # More input after a BFINAL block: a new deflate stream that keeps
                        # the window (RFC 7692 §7.2.3.4's "f3 48 cd c9 c9 07 00 00").
                        self._restart()
                        continue
                    break  # the rest of a tail, if any, is dropped (see "End of stream")
                if rc == Z_OK or rc == Z_BUF_ERROR:
                    # Output room left means inflate consumed all the input it was given
                    # and has nothing pending (Z_BUF_ERROR: no progress was possible).
                    if strm.avail_out != 0 and (left == 0 or rc == Z_BUF_ERROR):
                        break
                    continue
                if rc == Z_MEM_ERROR:
                    raise MemoryError("out of memory in zlib inflate")
                if strm.msg != NULL:
                    raise ProtocolError(
                        f"invalid compressed data: {strm.msg.decode('latin-1')}")
                raise ProtocolError(f"invalid compressed data: zlib error {rc}")
            if total != cap and _resize_bytes(&out, total) < 0:
                raise MemoryError()  # out was freed and set to NULL
            result = <object>out
            return result
        finally:
            strm.next_in = NULL
            strm.avail_in = 0
            strm.next_out = NULL
            strm.avail_out = 0
            Py_XDECREF(out)


@cython.auto_pickle(False)
@cython.final
cdef class Deflater:
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

    cdef z_stream _strm
    cdef bint _initialized  # deflateInit2 succeeded: deflateEnd in __dealloc__
    cdef bint _busy         # a call is in progress (see "Concurrency")

    def __cinit__(self, level=6, wbits=15, mem_level=8):
        cdef int rc
        memset(&self._strm, 0, sizeof(z_stream))
        for name, value, low, high in (("level", level, -1, 9), ("wbits", wbits, 8, 15),
                                       ("mem_level", mem_level, 1, 9)):
            if not PyLong_Check(value):
                raise TypeError(f"{name} must be an int, not {type(value).__name__!r}")
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}, not {value!r}")
        self._strm.zalloc = _zalloc
        self._strm.zfree = _zfree
        rc = deflateInit2(&self._strm, <int>level, Z_DEFLATED, -max(<int>wbits, 9),
                          <int>mem_level, Z_DEFAULT_STRATEGY)
        if rc == Z_MEM_ERROR:
            raise MemoryError("cannot allocate a zlib stream")
        if rc != Z_OK:
            raise RuntimeError(f"deflateInit2 failed with error {rc}")
        self._initialized = True

    def __dealloc__(self):
        if self._initialized:
            deflateEnd(&self._strm)

    def compress(self, data, final):
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
        cdef Py_buffer view
        if not (PyObject_CheckBuffer(data) and _get_buffer(data, &view, PyBUF_SIMPLE) == 0):
            PyErr_Clear()
            raise TypeError("data must be a C-contiguous bytes-like object, "
                            f"not {type(data).__name__!r}")
        try:
            with cython.critical_section(self):
                if self._busy:
                    raise RuntimeError("this Deflater is in use by another thread")
                self._busy = True
            try:
                return self._deflate(<const unsigned char *>view.buf, view.len, bool(final))
            finally:
                self._busy = False
        finally:
            PyBuffer_Release(&view)

    cdef object _deflate(self, const unsigned char *src, Py_ssize_t n, bint final):
        cdef z_stream *strm = &self._strm
        cdef Py_ssize_t cap, total = 0, left = n, room
        cdef PyObject *out = NULL
        cdef unsigned char *buf
        cdef int rc
        cdef object result
        # Enough for the whole payload and the flush in one call, almost always: deflateBound
        # plus the sync flush's empty stored block and a spare byte.
        cap = MIN_CAPACITY
        if n < <Py_ssize_t>(UINT_MAX // 2):
            cap = <Py_ssize_t>deflateBound(strm, <unsigned long>n) + 16
        out = _new_bytes(NULL, cap)
        if out == NULL:
            raise MemoryError()
        try:
            buf = <unsigned char *>_bytes_ptr(out)
            strm.next_in = <unsigned char *>src
            strm.avail_in = 0
            while True:
                if strm.avail_in == 0 and left > 0:
                    strm.avail_in = <unsigned int>(left if left < UINT_MAX else UINT_MAX)
                    left -= strm.avail_in
                if total == cap:
                    cap = cap * 2
                    if _resize_bytes(&out, cap) < 0:
                        raise MemoryError()  # _PyBytes_Resize freed out and set it to NULL
                    buf = <unsigned char *>_bytes_ptr(out)
                room = cap - total
                strm.next_out = buf + total
                strm.avail_out = <unsigned int>(room if room < UINT_MAX else UINT_MAX)
                if n == 0 and total == 0:
                    # zlib skips a sync flush right after another one ("duplicate consecutive
                    # flush"); a no-op Z_NO_FLUSH call first makes an empty frame flush again,
                    # like compress(b"") + flush() does.
                    deflate(strm, Z_NO_FLUSH)
                if strm.avail_in >= NOGIL_THRESHOLD:
                    with nogil:
                        rc = deflate(strm, Z_SYNC_FLUSH if left == 0 else Z_NO_FLUSH)
                else:
                    rc = deflate(strm, Z_SYNC_FLUSH if left == 0 else Z_NO_FLUSH)
                total = strm.next_out - buf
                if rc != Z_OK and rc != Z_BUF_ERROR:
                    raise RuntimeError(f"deflate failed with error {rc}")
                # Done when all input went in with the flush and output room is left over
                # (zlib: avail_out == 0 after a flush means "call again").
                if left == 0 and strm.avail_in == 0 and strm.avail_out != 0:
                    break
            if final:
                if total >= 4 and buf[total - 4] == 0 and buf[total - 3] == 0 \
                        and buf[total - 2] == 0xFF and buf[total - 1] == 0xFF:
                    total -= 4
                if total == 0:
                    buf[0] = 0
                    total = 1
            if total != cap and _resize_bytes(&out, total) < 0:
                raise MemoryError()  # out was freed and set to NULL
            result = <object>out
            return result
        finally:
            strm.next_in = NULL
            strm.avail_in = 0
            strm.next_out = NULL
            strm.avail_out = 0
            Py_XDECREF(out)
