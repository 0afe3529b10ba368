# Augmenting declarations: compile wsfast/loop/_loop.py in place, as wsfast.loop._loop (see
# connection.pxd). The loop's connection record (_Conn, one per socket) becomes an extension
# type on _nbio's NonBlockingSocketTransport whose attributes are slots, so the per-readiness
# path (_ready, the corked write) reads them without a dict lookup and calls the driver with
# C calls. The Loop class itself is compiled as a Python class.
# Keep the names in sync with _loop.py: tests/test_compiled_pxd.py checks both ways.

cimport cython

from wsfast._nbio cimport NonBlockingSocketTransport
from wsfast.handler cimport WebSocket


cdef class _Conn(NonBlockingSocketTransport):
    cdef public object loop, listener, phase, fd
    cdef public object _mask, _want_w, _cork, _cork_bytes
    cdef public object _timer, _phase_timer, _slow_timer, _linger
    cdef public object _tls_want, _open_deadline, _addrs, _ssl_ctx
    cdef public object _server_hostname, _copts, _where, _last_error
    cdef public object _counted, _host, _port, _dropping
    cdef public object _drop_close, _drop_shut

    @cython.locals(ws=WebSocket)
    cpdef _ready(self, mask)
    cpdef write(self, chunks)
    cpdef _uncork(self)
    cpdef _put(self, chunks)
