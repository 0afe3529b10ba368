# Augmenting declarations: compile wsfast/_messages.py as wsfast._messages_c.
cimport cython


cdef class Event:
    pass


@cython.final
cdef class TextMessage(Event):
    cdef readonly str data
    cdef readonly bint final


@cython.final
cdef class BinaryMessage(Event):
    cdef readonly bytes data
    cdef readonly bint final


@cython.final
cdef class Ping(Event):
    cdef readonly bytes data


@cython.final
cdef class Pong(Event):
    cdef readonly bytes data
