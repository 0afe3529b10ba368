# Augmenting declarations: compile wsfast/connection.py in place, as wsfast.connection.
#
# The engine's classes become extension types whose attributes are slots in the object
# (no instance dict lookup on the hot path): 38.3k -> 29.3k instructions per blocking round
# trip together with handler.pxd (callgrind, benchmarks/profile_adapters.py). Every attribute
# is a Python object, so both builds behave alike; ``__dict__`` keeps attributes that are not
# declared here working (only slower), ``__weakref__`` keeps weak references working.
# The methods every adapter calls per read or per message are cpdef: a C call from compiled
# callers that know the type (handler.pxd's typed locals), still callable and overridable from
# Python (an instance attribute of the same name wins, as in the source).
# Keep the names in sync with connection.py: tests/test_compiled_pxd.py checks both ways.


cdef class _Pending:
    cdef public object event, handed_out, kind, code, reason


cdef class Connection:
    cdef dict __dict__
    cdef object __weakref__
    cdef public object max_message_size, max_frame_size, max_handshake_size, auto_pong
    cdef public object stream_fragments, state, close_code_received, close_reason_received
    cdef public object close_code_sent, failure, close_tcp, subprotocol
    cdef public object extensions, _events, _out, _pending
    cdef public object _ext, _scan, _eof, _eof_deferred
    cdef public object _draining, _handshaking, _buf, _rbuf
    cdef public object _rview, _parser, _send_opcode, _masked
    cdef public object _encoder

    cpdef data_to_send(self)
    cpdef events(self)
    cpdef receive_data(self, data)
    # (internal: one frame into the output, a C call from send_text/send_binary/_send_data)
    cdef _write_frame(self, b0, payload)


cdef class ClientConnection(Connection):
    cdef public object key, offered_subprotocols, extension_factories, _reject_head


cdef class ServerConnection(Connection):
    cdef public object subprotocols, extension_factories, request, _key
