# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Frame encoder: header, masking key and (masked) payload in one allocation.

Theory of operation: RFC 6455 §5.2 headers are 2, 4 or 10 bytes, plus a 4-byte masking
key on client frames. ``encode`` sizes the frame exactly, allocates one ``bytes``, writes
the header with explicit big-endian stores and masks the payload straight into it with
``wsfast._mask.mask_copy`` (GIL released for large payloads). Client masking keys come
from a pool of ``os.urandom`` bytes refilled every 1024 frames (RFC 6455 §5.3 wants keys
from a strong entropy source; one system call per frame would dominate small sends).

Twin: ``wsfast/_frame_py.py``; parity tests: ``tests/test_frame_encoder.py``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from os import urandom

from wsfast._mask cimport mask_copy

DEF POOL = 4096
DEF NOGIL_THRESHOLD = 65536


cdef class FrameEncoder:
    """Encodes frames; ``masked=True`` for a client (every frame masked)."""

    cdef readonly bint masked
    cdef bytes _pool
    cdef Py_ssize_t _pos
    cdef object _entropy

    def __init__(self, bint masked, entropy=urandom):
        # ``entropy(n)`` returns n random bytes; tests pass a deterministic one.
        self.masked = masked
        self._entropy = entropy
        self._pool = b""
        self._pos = POOL

    cpdef bytes encode(self, int b0, bytes payload):
        """One complete frame: first byte ``b0`` (FIN|RSV|opcode), then ``payload``."""
        if payload is None:
            raise TypeError("payload must be bytes, not None")
        if not 0 <= b0 <= 255:
            raise ValueError("b0 must be a byte")
        cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
        cdef Py_ssize_t hlen = 2 if n < 126 else 4 if n < 65536 else 10
        cdef Py_ssize_t total = hlen + n + (4 if self.masked else 0)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
        cdef unsigned char *p = <unsigned char *>PyBytes_AS_STRING(out)
        cdef const unsigned char *src = <const unsigned char *>PyBytes_AS_STRING(payload)
        cdef unsigned char mbit = 0x80 if self.masked else 0
        cdef const unsigned char *key
        cdef unsigned long long u = <unsigned long long>n
        cdef int i
        cdef object pool
        p[0] = <unsigned char>b0
        if n < 126:
            p[1] = mbit | <unsigned char>n
        elif n < 65536:
            p[1] = mbit | 126
            p[2] = <unsigned char>(n >> 8)
            p[3] = <unsigned char>(n & 0xFF)
        else:
            p[1] = mbit | 127
            for i in range(8):
                p[9 - i] = <unsigned char>(u & 0xFF)
                u >>= 8
        if self.masked:
            if self._pos >= POOL:
                pool = self._entropy(POOL)
                if type(pool) is not bytes or PyBytes_GET_SIZE(pool) != POOL:
                    raise ValueError("entropy(n) must return n bytes")
                self._pool = pool
                self._pos = 0
            key = <const unsigned char *>PyBytes_AS_STRING(self._pool) + self._pos
            self._pos += 4
            memcpy(p + hlen, key, 4)
            if n >= NOGIL_THRESHOLD:
                with nogil:
                    mask_copy(src, p + hlen + 4, n, key, 0)
            else:
                mask_copy(src, p + hlen + 4, n, key, 0)
        elif n >= NOGIL_THRESHOLD:
            with nogil:
                memcpy(p + hlen, src, n)
        else:
            memcpy(p + hlen, src, n)
        return out

    cpdef bytes header(self, int b0, Py_ssize_t n):
        """Only the header of an unmasked frame carrying ``n`` bytes (server, large payloads
        are sent without copying them)."""
        if self.masked:
            raise ValueError("header() is for unmasked frames")
        if n < 0:
            raise ValueError("n must be non-negative")
        if n < 126:
            return bytes((b0, n))
        if n < 65536:
            return bytes((b0, 126, n >> 8, n & 0xFF))
        return bytes((b0, 127)) + (<object>n).to_bytes(8, "big")
