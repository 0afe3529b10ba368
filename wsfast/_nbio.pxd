# Augmenting declarations: compile wsfast/_nbio.py in place, as wsfast._nbio (see
# connection.pxd). The non-blocking transport (the base of the loop's connections and of the
# non-blocking and background clients' transports) becomes an extension type whose
# attributes are slots, and the read step every non-blocking adapter calls per readiness takes
# the driver and the transport typed: its attribute reads and its calls into the driver are C.
# Python subclasses keep working (their own attributes go to ``__dict__``); a subclass must not
# shadow a slot with a class attribute (tests/test_compiled_pxd.py checks).
# Keep the names in sync with _nbio.py: tests/test_compiled_pxd.py checks both ways.

cimport cython

from wsfast.handler cimport Transport, WebSocket


cdef class NonBlockingSocketTransport(Transport):
    cdef dict __dict__
    cdef object __weakref__
    cdef public object sock, high_water, low_water, max_buffer
    cdef public object large_read, ws, buffered, paused
    cdef public object closed, bytes_sent, bytes_received, read_paused
    cdef public object _buf, _closing, _tls, _gather

    cpdef write(self, chunks)
    cpdef flush(self)


@cython.locals(nb=NonBlockingSocketTransport)
cpdef bint nonblocking_read(WebSocket ws, sock, budget=*)
