# Augmenting declarations: compile wsfast/_sockio.py in place, as wsfast._sockio (see
# connection.pxd). The blocking transport becomes an extension type whose attributes are slots
# (its base, handler.Transport, is one: a Python subclass of it would keep its attributes in a
# real dict, slower than a plain class's inline values), and the blocking adapters' read step
# takes the driver and the transport typed, so its per-read calls (next_deadline, feed, read)
# are C calls.
# Keep the names in sync with _sockio.py: tests/test_compiled_pxd.py checks both ways.

cimport cython

from wsfast.handler cimport Transport, WebSocket


cdef class BlockingSocketTransport(Transport):
    cdef dict __dict__
    cdef object __weakref__
    cdef public object sock, write_timeout, backlog_limit, closed
    cdef public object _released, tls, _fd, _backlog
    cdef public object _backlog_size, _eof, _read_error, large_read
    cdef public object _rlock, _io, _rpoll, _wpoll
    cdef public object _wmask, _plain_dontwait, _gather, _tick_read

    cpdef read(self, timeout)
    cpdef read_into(self, buf, timeout)
    cpdef write(self, chunks)


@cython.locals(transport=BlockingSocketTransport)
cpdef bint blocking_step(WebSocket ws, sock, max_wait=*)
