# Augmenting declarations: compile wsfast/handler.py in place, as wsfast.handler.
#
# WebSocket (the driver every callback adapter calls) becomes an extension type whose
# attributes are slots (see connection.pxd for the why and the numbers). Every attribute is a
# Python object; ``__dict__`` keeps undeclared attributes working (none is set on purpose: a
# per-instance dict is one more object per connection for the garbage collector),
# ``__weakref__`` keeps weak references working. Subclasses (``ClientWebSocket``) stay Python
# classes. The per-message steps are C functions with the engine typed (``conn`` a
# Connection: its attributes and cpdef methods without a lookup); the ``cdef`` ones are
# internal, so neither Python code nor a subclass calls or overrides them (keep it so:
# tests/test_compiled_pxd.py checks that no other module names them). 26.7k -> 23.7k
# instructions per blocking round trip over the attribute slots alone.
# Keep the names in sync with handler.py: tests/test_compiled_pxd.py checks both ways.

cimport cython

from wsfast.connection cimport Connection


# The adapters' IO side: an extension type with no attributes of its own (no ``__dict__``
# here, so a subclass with ``__slots__``, AsyncioTransport, stays without one, as in the
# source; other Python subclasses get theirs as usual), so that _nbio.pxd can declare
# NonBlockingSocketTransport on it with attribute slots.
cdef class Transport:
    pass


cdef class WebSocket:
    cdef dict __dict__
    cdef object __weakref__
    cdef public object conn, handler, transport, open_timeout
    cdef public object ping_interval, ping_timeout, close_timeout, log
    cdef public object local_address, remote_address, request, response
    cdef public object latency, response_headers, data, messages_received
    cdef public object messages_sent, closed, close_code, close_reason
    cdef public object clean, error, _on_text, _on_binary
    cdef public object _owner, _lock, _commands, _qlock
    cdef public object _queue_size, _open_deadline, _ping_deadline, _pong_deadline
    cdef public object _close_deadline, _rx, _rx_seen, _pings
    cdef public object _ping_seq, _transport_closed, _opened, _in_dispatch
    cdef public object _eof_pending, _gave_up, _paused, _held
    cdef public object _app_timers, hold_close

    cpdef next_deadline(self)
    cpdef feed(self, data)
    @cython.locals(conn=Connection)
    cdef _feed(self, data)
    @cython.locals(conn=Connection)
    cdef _after_input(self)
    @cython.locals(conn=Connection)
    cdef _dispatch(self, held=*)
    @cython.locals(conn=Connection)
    cdef _send_locked(self, send, data)
