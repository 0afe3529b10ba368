# Augmenting declarations: compile wsfast/_parser.py as wsfast._parser_c.
# Keep every name here in sync with _parser.py (tests/test_parser_pxd.py checks it).
cimport cython

cdef int FRAME, PAYLOAD, DISCARD
cdef int OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG
cdef int EVENT_OVERHEAD, MIN_BUDGET

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

    cpdef feed(self, data)
    cpdef resume(self)

    @cython.locals(
        data_cstr="const unsigned char *",
        n=Py_ssize_t, avail=Py_ssize_t, hlen=Py_ssize_t,
        start=Py_ssize_t, take=Py_ssize_t,
        b0=int, b1=int, opcode=int, fin=int, rsv=int, masked=int, transformed=bint,
        length="unsigned long long",
        events=list, mask=bytes, payload=bytes, chunk=bytes,
    )
    cdef _feed(self, bytes data, Py_ssize_t pos)

    cdef _message_start(self, int opcode, int rsv)
    cdef _chunk(self, bytes chunk)
    @cython.locals(room="unsigned long long")
    cdef _decode(self, chunk, bint end)
    @cython.locals(size=Py_ssize_t)
    cdef _append(self, chunk)
    @cython.locals(fin=bint, text=bint)
    cdef _frame_end(self)
