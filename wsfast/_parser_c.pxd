# Augmenting declarations: compile wsfast/_parser.py as wsfast._parser_c.
# Keep every name here in sync with _parser.py (tests/test_parser_pxd.py checks it).
cimport cython

cdef int FRAME, PAYLOAD, DISCARD
cdef int OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG
cdef int EVENT_OVERHEAD, MIN_BUDGET, READ_SIZE, REGION_MIN

cdef object apply_mask, Utf8Validator, codecs
cdef object BinaryMessage, Ping, Pong, TextMessage
cdef object InvalidUTF8, PayloadTooBig, ProtocolError


cdef class Parser:
    cdef public list events
    cdef public int mask_expected
    # Wire lengths are < 2**63 (checked before use); limits are clamped to that range.
    cdef public unsigned long long max_message_size
    cdef public unsigned long long max_frame_size
    cdef public unsigned long long max_transformed_frame_size
    cdef public bint stream_fragments
    cdef public object on_ping, on_close
    cdef public unsigned long long pending
    cdef public unsigned long long budget
    cdef public bytes held
    cdef public Py_ssize_t held_pos
    cdef public int state
    cdef public int rsv_allowed
    cdef public object ext
    cdef public bytearray buf
    cdef unsigned long long remaining
    cdef bytes fmask
    cdef int fphase
    cdef bint ffin
    cdef public int mopcode
    cdef bytearray mbuf
    cdef unsigned long long msize
    cdef bint mcompressed
    cdef object validator
    cdef object decoder
    cdef object target
    cdef Py_ssize_t mfill
    cdef public Py_ssize_t held_end
    cdef public object rview
    cdef int rkind
    cdef object rtarget
    cdef Py_ssize_t rfill
    cdef object rbuf

    cpdef feed(self, data)
    @cython.locals(buf=bytearray)
    cdef _input(self, bytes data, Py_ssize_t n)
    @cython.locals(remaining="unsigned long long", fill=Py_ssize_t, room="unsigned long long")
    cpdef get_region(self)
    @cython.locals(size=Py_ssize_t)
    cpdef get_buffer(self, Py_ssize_t sizehint)
    @cython.locals(kind=int, start=Py_ssize_t)
    cpdef buffer_updated(self, Py_ssize_t nbytes)
    @cython.locals(pos=Py_ssize_t, end=Py_ssize_t)
    cpdef resume(self)

    @cython.locals(
        data_cstr="const unsigned char *",
        n=Py_ssize_t, avail=Py_ssize_t, hlen=Py_ssize_t,
        start=Py_ssize_t, take=Py_ssize_t,
        b0=int, b1=int, opcode=int, fin=int, rsv=int, masked=int, transformed=bint,
        length="unsigned long long",
        events=list, mask=bytes, payload=bytes, chunk=bytes,
    )
    cdef _feed(self, bytes data, Py_ssize_t pos, Py_ssize_t n)

    cdef _message_start(self, int opcode, int rsv)
    @cython.locals(fill=Py_ssize_t, need=Py_ssize_t, cap=Py_ssize_t, new=Py_ssize_t,
                   end=Py_ssize_t)
    cdef _reserve(self, Py_ssize_t take)
    cdef _filled(self, Py_ssize_t start, Py_ssize_t size)
    @cython.locals(fill=Py_ssize_t)
    cdef _take(self)
    @cython.locals(room="unsigned long long")
    cdef _decode(self, chunk, bint end)
    @cython.locals(size=Py_ssize_t)
    cdef _append(self, chunk)
    @cython.locals(fin=bint, text=bint)
    cdef _frame_end(self)
