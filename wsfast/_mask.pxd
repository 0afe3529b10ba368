# C-level API of wsfast._mask, for other Cython modules to ``cimport``.
#
# Both helpers XOR ``n`` bytes with the 4-byte ``mask`` starting at key byte ``phase`` (0-3).
# They never touch the GIL, do no bounds or argument checks and never fail: callers pass
# valid pointers, ``n >= 0`` and ``0 <= phase <= 3``.

cdef void mask_copy(const unsigned char *src, unsigned char *dst, Py_ssize_t n,
                    const unsigned char *mask, Py_ssize_t phase) noexcept nogil

cdef void mask_inplace(unsigned char *buf, Py_ssize_t n,
                       const unsigned char *mask, Py_ssize_t phase) noexcept nogil
